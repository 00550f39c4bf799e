package stack

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The ports of every simulated Service. The Service port is named "http" so
// that Istio's protocol selection (and its port-name analyzer) sees HTTP.
const (
	ServicePort = 80
	TargetPort  = 8080
	portName    = "http"
)

// InjectionLabel is the namespace label that turns on Istio's sidecar
// injection. There is no injector webhook here: the label tells Istio's
// analyzers that the namespace is meant to be in the mesh, and the Pods
// that CreateWorkloads writes carry the sidecar the injector would add.
const InjectionLabel = "istio-injection"

// proxyImage is the sidecar image named in the stand-in Pods. Nothing pulls
// it, as no kubelet runs here.
const proxyImage = "docker.io/istio/proxyv2:1.31.0"

// Stand-in Pod IPs come from 10.128.0.0/12: inside 10.0.0.0/8 and disjoint
// from the API server's Service range (10.0.0.0/16, kube.go), so a Pod IP
// never looks like a Service IP to istiod. Its lower half is for the Pods
// CreateWorkloads writes, its upper half for those of the kubelet stand-in
// (KubeletPodCIDR). Loopback addresses cannot be used: the API server
// refuses them in EndpointSlices.
var (
	podCIDR = netip.MustParsePrefix("10.128.0.0/13")
	// KubeletPodCIDR is the range a kubelet stand-in (test/meshsim) hands
	// its Pods' IPs from; see KubeletPodIP.
	KubeletPodCIDR = netip.MustParsePrefix("10.136.0.0/13")
)

// Workloads are the Kubernetes objects that a real cluster holds for a set
// of applications and that nothing writes on this machine: Services, the
// Pods behind them and their EndpointSlices. With them, a VirtualService or
// DestinationRule for a simulated application refers to a Service that
// exists and subsets that select Pods, as Istio's analyzers and istiod
// require; without them a real mesh would have nowhere to send traffic.
type Workloads struct {
	Services []Service
	Pods     []Pod
}

// Service is one Kubernetes Service: Name selects the Pods labelled app=App,
// and version=Version too when Version is set (a per-version Service such
// as checkout-canary).
type Service struct {
	Name, App, Version string
}

// Pod is one workload replica, labelled app=App, version=Version, running as
// the ServiceAccount App.
type Pod struct {
	App, Version string
}

// App returns the Workloads of one application: a Service name selecting
// app=name and one Pod per version.
func App(name string, versions ...string) Workloads {
	w := Workloads{Services: []Service{{Name: name, App: name}}}
	for _, v := range versions {
		w.Pods = append(w.Pods, Pod{App: name, Version: v})
	}
	return w
}

// Plus returns w and o together.
func (w Workloads) Plus(o Workloads) Workloads {
	return Workloads{
		Services: append(append([]Service(nil), w.Services...), o.Services...),
		Pods:     append(append([]Pod(nil), w.Pods...), o.Pods...),
	}
}

// CreateWorkloads writes w into namespace ns, which must exist, as a real
// cluster would have it. It labels the namespace istio-injection=enabled and
// creates a ServiceAccount per app, the Pods (with the istio-proxy container
// and the sidecar.istio.io/status annotation that injection adds), the
// Services, and one EndpointSlice per Service listing the Pods it selects.
//
// The Pods stay Pending: no kubelet runs here, and the mesh simulator
// (test/meshsim) serves their traffic on 127.0.0.1. Their IPs are set in
// their status by hand, from 10.128.0.0/12, unique within the stack, and
// their endpoints are marked ready, as the simulator stands in for them.
// No controller-manager runs either, so the EndpointSlices are written here
// and are not kept up to date: a test that changes a selector or deletes a
// Pod must change the slice itself.
func (s *Stack) CreateWorkloads(ctx context.Context, ns string, w Workloads) error {
	kc, err := kubernetes.NewForConfig(s.RESTConfig())
	if err != nil {
		return fmt.Errorf("workloads in %s: client: %w", ns, err)
	}
	if err := labelInjected(ctx, kc, ns); err != nil {
		return err
	}
	for _, p := range w.Pods {
		if err := s.createPod(ctx, kc, ns, p); err != nil {
			return err
		}
	}
	// A Service selects every Pod of the namespace, not only the new ones:
	// a Service created after its Pods (or again, after a test deleted it)
	// lists them too.
	pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list Pods in %s: %w", ns, err)
	}
	for _, svc := range w.Services {
		if err := createService(ctx, kc, ns, svc, pods.Items); err != nil {
			return err
		}
	}
	return nil
}

// labelInjected sets istio-injection=enabled on namespace ns.
func labelInjected(ctx context.Context, kc kubernetes.Interface, ns string) error {
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:"enabled"}}}`, InjectionLabel)
	if _, err := kc.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("label namespace %s %s=enabled: %w", ns, InjectionLabel, err)
	}
	return nil
}

// createPod creates the ServiceAccount (when missing) and the Pod of p, then
// sets the Pod's IP in its status, as a kubelet would.
func (s *Stack) createPod(ctx context.Context, kc kubernetes.Interface, ns string, p Pod) error {
	if err := EnsureServiceAccount(ctx, kc, ns, p.App); err != nil {
		return err
	}
	pod, err := kc.CoreV1().Pods(ns).Create(ctx, standInPod(ns, p), metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("create Pod %s/%s-%s: %w", ns, p.App, p.Version, err)
	}
	ip := s.nextPodIP().String()
	pod.Status.Phase = corev1.PodPending
	pod.Status.PodIP, pod.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	if _, err = kc.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("set the IP of Pod %s/%s: %w", ns, pod.Name, err)
	}
	return nil
}

// EnsureServiceAccount creates the ServiceAccount ns/name unless it exists.
// The API server's ServiceAccount admission refuses a Pod whose account is
// missing, and no controller-manager runs here to create "default".
func EnsureServiceAccount(ctx context.Context, kc kubernetes.Interface, ns, name string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, AutomountServiceAccountToken: ptr.To(false)}
	if _, err := kc.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ServiceAccount %s/%s: %w", ns, name, err)
	}
	return nil
}

// standInPod is the Pod of p as Istio's injector would leave it (see
// InjectedPod), with one app container. Its images are never pulled.
func standInPod(ns string, p Pod) *corev1.Pod {
	name := p.App + "-" + p.Version
	return InjectedPod(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{"app": p.App, "version": p.Version},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: p.App,
			Containers: []corev1.Container{
				{Name: p.App, Image: "serin.dev/meshsim/" + name, Ports: []corev1.ContainerPort{{Name: portName, ContainerPort: TargetPort}}},
			},
		},
	})
}

// Labels and annotation that Istio's sidecar injector adds to a Pod.
const (
	labelTLSMode           = "security.istio.io/tlsMode"
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"
	annotationSidecar      = "sidecar.istio.io/status"
	// AnnotationStandIn marks the objects written for a workload that no
	// kubelet runs; test/meshsim serves it on 127.0.0.1.
	AnnotationStandIn = "serin.dev/stand-in"
)

// InjectedPod returns pod (modified in place) as Istio's injector would
// leave it: the istio-proxy sidecar container appended, the
// sidecar.istio.io/status annotation, and the labels injection adds when
// they are missing (security.istio.io/tlsMode=istio, and
// service.istio.io/canonical-name and -revision by Istio's rule: the app
// label, else the Pod's name; the version label, else "latest"). It also
// turns off the service account token, which nothing here would use, and
// marks the Pod as a stand-in. There is no injector webhook here, and
// without the istio-proxy container the analyzers would report IST0103 (a
// pod in an injected namespace without the proxy). Its images are never
// pulled. A Deployment stand-in (test/meshsim) uses it for its Pods.
func InjectedPod(pod *corev1.Pod) *corev1.Pod {
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	setDefault := func(k, v string) {
		if _, ok := pod.Labels[k]; !ok {
			pod.Labels[k] = v
		}
	}
	setDefault(labelTLSMode, "istio")
	setDefault(LabelCanonicalName, CanonicalName(pod.Labels, pod.Name))
	setDefault(LabelCanonicalRevision, CanonicalRevision(pod.Labels))
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[annotationSidecar] = `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],"imagePullSecrets":null,"revision":"default"}`
	pod.Annotations[AnnotationStandIn] = "no kubelet runs on the local stack; test/meshsim serves this workload on 127.0.0.1"
	pod.Spec.AutomountServiceAccountToken = ptr.To(false)
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: proxyImage, Args: []string{"proxy", "sidecar"}})
	return pod
}

// CanonicalName is Istio's canonical service of a workload with these pod
// labels: service.istio.io/canonical-name, else app.kubernetes.io/name,
// else app, else fallback (Istio uses the workload's name).
func CanonicalName(labels map[string]string, fallback string) string {
	for _, k := range []string{LabelCanonicalName, "app.kubernetes.io/name", "app"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return fallback
}

// CanonicalRevision is Istio's canonical revision of a workload with these
// pod labels: service.istio.io/canonical-revision, else
// app.kubernetes.io/version, else version, else "latest".
func CanonicalRevision(labels map[string]string) string {
	for _, k := range []string{LabelCanonicalRevision, "app.kubernetes.io/version", "version"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return "latest"
}

// nextPodIP returns the next unused stand-in Pod IP of the stack.
func (s *Stack) nextPodIP() netip.Addr { return nthAddr(podCIDR, s.podIPs.Add(1)) }

// KubeletPodIP returns the n-th address of KubeletPodCIDR (modulo its
// size, skipping the network address).
func KubeletPodIP(n uint32) netip.Addr {
	size := uint32(1) << (32 - KubeletPodCIDR.Bits())
	return nthAddr(KubeletPodCIDR, 1+n%(size-1))
}

// nthAddr returns the address n past the start of prefix.
func nthAddr(prefix netip.Prefix, n uint32) netip.Addr {
	base := prefix.Addr().As4()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(base[:])+n)
	return netip.AddrFrom4(b)
}

// createService creates svc and its EndpointSlice, with an endpoint for each
// of pods that the Service selects.
func createService(ctx context.Context, kc kubernetes.Interface, ns string, svc Service, pods []corev1.Pod) error {
	sel := map[string]string{"app": svc.App}
	if svc.Version != "" {
		sel["version"] = svc.Version
	}
	k := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: ns, Labels: map[string]string{"app": svc.App}},
		Spec: corev1.ServiceSpec{
			Selector: sel,
			Ports: []corev1.ServicePort{{
				Name: portName, Port: ServicePort, TargetPort: intstr.FromString(portName), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
	if _, err := kc.CoreV1().Services(ns).Create(ctx, k, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("create Service %s/%s: %w", ns, svc.Name, err)
	}
	return WriteEndpointSlice(ctx, kc, EndpointSlice(ns, svc.Name, labels.SelectorFromSet(sel), pods))
}

// WriteEndpointSlice creates slice, or replaces the endpoints and ports of
// the one already there: deleting a Service leaves its slice behind here,
// as no garbage collector runs.
func WriteEndpointSlice(ctx context.Context, kc kubernetes.Interface, slice *discoveryv1.EndpointSlice) error {
	c := kc.DiscoveryV1().EndpointSlices(slice.Namespace)
	_, err := c.Create(ctx, slice, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) {
		var old *discoveryv1.EndpointSlice
		if old, err = c.Get(ctx, slice.Name, metav1.GetOptions{}); err == nil {
			old.Endpoints, old.Ports = slice.Endpoints, slice.Ports
			_, err = c.Update(ctx, old, metav1.UpdateOptions{FieldManager: FieldManager})
		}
	}
	if err != nil {
		return fmt.Errorf("write EndpointSlice %s/%s: %w", slice.Namespace, slice.Name, err)
	}
	return nil
}

// EndpointSlice is the slice that the endpoint-slice controller would write
// for Service name: one endpoint per selected Pod that has an IP, on
// TargetPort, in the order of pods. An endpoint is ready unless its Pod's
// Ready condition is False: the Pods CreateWorkloads writes have no
// condition, as the simulator serves them, while those of the kubelet
// stand-in (test/meshsim) say when they are ready.
func EndpointSlice(ns, name string, sel labels.Selector, pods []corev1.Pod) *discoveryv1.EndpointSlice {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-stand-in", Namespace: ns,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: name,
				discoveryv1.LabelManagedBy:   FieldManager,
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To[int32](TargetPort), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, p := range pods {
		if !sel.Matches(labels.Set(p.Labels)) || p.Status.PodIP == "" {
			continue
		}
		ready := podReady(&p)
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID},
		})
	}
	return slice
}

// podReady is false only when p's Ready condition says False.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status != corev1.ConditionFalse
		}
	}
	return true
}
