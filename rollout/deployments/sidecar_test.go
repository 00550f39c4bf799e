package deployments

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSidecarGaps(t *testing.T) {
	all := map[string]string{annotationProxyCPU: "100m", annotationProxyMemory: "128Mi", annotationProxyCPULimit: "1", annotationProxyMemoryLimit: "256Mi"}
	proxy := corev1.Container{Name: proxyContainer, Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}}
	for _, c := range []struct {
		name        string
		annotations map[string]string
		containers  []corev1.Container
		want        []string
	}{
		{name: "nothing set", want: []string{"CPU request", "memory request", "CPU limit", "memory limit"}},
		{name: "all four annotations", annotations: all},
		{name: "an istio-proxy container sets two", containers: []corev1.Container{{Name: "app"}, proxy}, want: []string{"memory request", "CPU limit"}},
		{name: "annotations and container together", containers: []corev1.Container{proxy},
			annotations: map[string]string{annotationProxyMemory: "1Gi", annotationProxyCPULimit: "2"}},
		{name: "an empty annotation is unset", annotations: map[string]string{annotationProxyCPU: "", annotationProxyMemory: "1Gi",
			annotationProxyCPULimit: "2", annotationProxyMemoryLimit: "1Gi"}, want: []string{"CPU request"}},
	} {
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: c.annotations}, Spec: corev1.PodSpec{Containers: c.containers}}
		if got := sidecarGaps(tmpl); !slices.Equal(got, c.want) {
			t.Errorf("%s: gaps %v, want %v", c.name, got, c.want)
		}
	}
}

func TestInjectionOff(t *testing.T) {
	for _, c := range []struct {
		labels, annotations map[string]string
		want                string
	}{
		{want: ""},
		{labels: map[string]string{inject: "false"}, want: "label sidecar.istio.io/inject=false"},
		{annotations: map[string]string{inject: "false"}, want: "annotation sidecar.istio.io/inject=false"},
		{labels: map[string]string{inject: "true"}, annotations: map[string]string{inject: "false"}, want: ""},
	} {
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: c.labels, Annotations: c.annotations}}
		if got := injectionOff(tmpl); got != c.want {
			t.Errorf("labels %v annotations %v: %q, want %q", c.labels, c.annotations, got, c.want)
		}
	}
}
