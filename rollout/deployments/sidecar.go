package deployments

import (
	corev1 "k8s.io/api/core/v1"
)

// The pod annotations by which Istio's injector sets the sidecar's
// resources (https://istio.io/latest/docs/reference/config/annotations/).
const (
	annotationProxyCPU         = "sidecar.istio.io/proxyCPU"
	annotationProxyMemory      = "sidecar.istio.io/proxyMemory"
	annotationProxyCPULimit    = "sidecar.istio.io/proxyCPULimit"
	annotationProxyMemoryLimit = "sidecar.istio.io/proxyMemoryLimit"
	inject                     = "sidecar.istio.io/inject"
	proxyContainer             = "istio-proxy"
)

// sidecarGaps names the sidecar requests and limits that the template
// leaves unset: each is set by its annotation or by the resources of an
// istio-proxy container in the template (which the injector merges).
func sidecarGaps(t corev1.PodTemplateSpec) []string {
	var proxy corev1.ResourceRequirements
	for _, c := range t.Spec.Containers {
		if c.Name == proxyContainer {
			proxy = c.Resources
		}
	}
	var gaps []string
	for _, g := range []struct {
		what, annotation string
		list             corev1.ResourceList
		res              corev1.ResourceName
	}{
		{"CPU request", annotationProxyCPU, proxy.Requests, corev1.ResourceCPU},
		{"memory request", annotationProxyMemory, proxy.Requests, corev1.ResourceMemory},
		{"CPU limit", annotationProxyCPULimit, proxy.Limits, corev1.ResourceCPU},
		{"memory limit", annotationProxyMemoryLimit, proxy.Limits, corev1.ResourceMemory},
	} {
		if t.Annotations[g.annotation] != "" {
			continue
		}
		if q, ok := g.list[g.res]; ok && !q.IsZero() {
			continue
		}
		gaps = append(gaps, g.what)
	}
	return gaps
}

// injectionOff says how the template turns sidecar injection off, or "".
// The label wins over the older annotation, as in Istio.
func injectionOff(t corev1.PodTemplateSpec) string {
	if v, ok := t.Labels[inject]; ok {
		if v == "false" {
			return "label " + inject + "=false"
		}
		return ""
	}
	if t.Annotations[inject] == "false" {
		return "annotation " + inject + "=false"
	}
	return ""
}
