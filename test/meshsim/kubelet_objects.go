package meshsim

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/test/stack"
)

// The kubelet stand-in's writes: Pods, their status, the Deployments'
// status, EndpointSlices and Events.

// fieldManager is the field manager of the kubelet stand-in's writes.
const fieldManager = "meshsim-kubelet"

// reasonBadAnnotation is the reason of the Warning Event for a pod
// template annotation that does not parse.
const reasonBadAnnotation = "InvalidMeshsimAnnotation"

// forgetDeleted is how long a deleted Pod is remembered, so that a cache
// that still lists it does not get it deleted again.
const forgetDeleted = time.Minute

// podNameChars are the characters of a generated name suffix, as
// Kubernetes picks them (no vowels, no look-alikes).
const podNameChars = "bcdfghjklmnpqrstvwxz2456789"

// newPod makes a pod of template t for d, created at now: it becomes ready
// after t's start delay, or never.
func (k *kubelet) newPod(d *appsv1.Deployment, t podTemplate, now time.Time) *modelPod {
	var suffix strings.Builder
	for range 5 {
		suffix.WriteByte(podNameChars[int(k.names.float64()*float64(len(podNameChars)))])
	}
	p := &modelPod{name: d.Name + "-" + t.hash + "-" + suffix.String(), ip: k.nextIP()}
	p.hash, p.created = t.hash, now
	if !t.neverReady {
		p.readyAt = now.Add(t.startDelay)
	}
	return p
}

// nextIP returns the next stand-in Pod IP of the namespace not in use
// there. Namespaces start at different places of stack.KubeletPodCIDR (by
// a hash of the name), so IPs are unique across the few namespaces of a
// test run with high probability, not certainty.
func (k *kubelet) nextIP() string {
	used := map[string]bool{}
	if pods, err := k.pods.List(labels.Everything()); err == nil {
		for _, p := range pods {
			used[p.Status.PodIP] = true
		}
	}
	for {
		k.ipNext++
		if ip := stack.KubeletPodIP(k.ipBase + k.ipNext).String(); !used[ip] {
			return ip
		}
	}
}

// adopt takes over the Pods the API server holds for d (from an earlier
// run of the simulator): a ready Pod stays ready, an unready one of the
// current template t becomes ready after its start delay from now.
func (k *kubelet) adopt(d *appsv1.Deployment, t podTemplate, now time.Time) []*modelPod {
	pods, err := k.pods.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*modelPod
	for _, p := range pods {
		if !ownedBy(p, d.UID) || p.DeletionTimestamp != nil {
			continue
		}
		m := &modelPod{name: p.Name, ip: p.Status.PodIP, uid: string(p.UID)}
		k.everWritten[p.Name] = true
		m.hash, m.created = p.Labels[labelPodTemplateHash], p.CreationTimestamp.Time
		ready := podIsReady(p)
		switch {
		case ready:
			m.readyAt = m.created
		case m.hash == t.hash && !t.neverReady:
			m.readyAt = now.Add(t.startDelay)
		case m.hash != t.hash:
			m.readyAt = now.Add(k.startDelay)
		}
		m.readyWritten = ptr.To(ready)
		if m.ip == "" {
			m.ip = k.nextIP()
			m.readyWritten = nil
		}
		out = append(out, m)
	}
	return out
}

// ownedBy reports whether p's controller is the object with uid.
func ownedBy(p *corev1.Pod, uid types.UID) bool {
	ref := metav1.GetControllerOf(p)
	return ref != nil && ref.UID == uid
}

// podIsReady reports whether p's Ready condition is True.
func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// writePod creates p's Pod object if it is not written yet, then its
// status when its readiness changed.
func (k *kubelet) writePod(ctx context.Context, d *appsv1.Deployment, t podTemplate, p *modelPod, now time.Time) {
	if p.uid == "" {
		if err := k.createPod(ctx, d, t, p); err != nil {
			k.log.Error("create Pod (kubelet stand-in)", "deployment", d.Name, "pod", p.name, "err", err)
			return
		}
	}
	ready := p.ready(now)
	if p.readyWritten != nil && *p.readyWritten == ready {
		return
	}
	if err := k.writePodStatus(ctx, p, ready); err != nil {
		k.log.Error("write Pod status (kubelet stand-in)", "pod", p.name, "err", err)
		return
	}
	p.readyWritten = ptr.To(ready)
}

// createPod writes the Pod object of p: its template's labels and
// annotations, the pod-template-hash label, d as its controller, and the
// sidecar Istio's injector would add (stack.InjectedPod).
func (k *kubelet) createPod(ctx context.Context, d *appsv1.Deployment, t podTemplate, p *modelPod) error {
	if !k.accounts[t.serviceAccount] {
		if err := stack.EnsureServiceAccount(ctx, k.kc, k.ns, t.serviceAccount); err != nil {
			return fmt.Errorf("pod %s: %w", p.name, err)
		}
		k.accounts[t.serviceAccount] = true
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.name, Namespace: k.ns, Labels: maps.Clone(t.labels), Annotations: maps.Clone(t.spec.Annotations),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: *t.spec.Spec.DeepCopy(),
	}
	pod.Spec.ServiceAccountName = t.serviceAccount
	created, err := k.kc.CoreV1().Pods(k.ns).Create(ctx, stack.InjectedPod(pod), metav1.CreateOptions{FieldManager: fieldManager})
	if apierrors.IsAlreadyExists(err) {
		created, err = k.kc.CoreV1().Pods(k.ns).Get(ctx, p.name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("create Pod %s/%s: %w", k.ns, p.name, err)
	}
	p.uid = string(created.UID)
	k.everWritten[p.name] = true
	return nil
}

// writePodStatus sets p's status as a kubelet would: Running with its IP,
// Ready and ContainersReady as given.
func (k *kubelet) writePodStatus(ctx context.Context, p *modelPod, ready bool) error {
	status := corev1.ConditionFalse
	since := seconds(p.created)
	if ready {
		status, since = corev1.ConditionTrue, seconds(p.readyAt)
	}
	cond := func(t corev1.PodConditionType, s corev1.ConditionStatus, at metav1.Time) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: at}
	}
	st := corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: p.ip, PodIPs: []corev1.PodIP{{IP: p.ip}}, StartTime: ptr.To(seconds(p.created)),
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, corev1.ConditionTrue, seconds(p.created)),
			cond(corev1.PodInitialized, corev1.ConditionTrue, seconds(p.created)),
			cond(corev1.ContainersReady, status, since),
			cond(corev1.PodReady, status, since),
		},
	}
	patch, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return fmt.Errorf("status patch of Pod %s: %w", p.name, err)
	}
	if _, err := k.kc.CoreV1().Pods(k.ns).Patch(ctx, p.name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: fieldManager}, "status"); err != nil {
		return fmt.Errorf("patch status of Pod %s/%s: %w", k.ns, p.name, err)
	}
	return nil
}

// deletePods deletes the Pod objects of pods at once (no grace period: the
// simulator has already stopped routing to them, and a request already on
// its way is still served; see podsInbound).
func (k *kubelet) deletePods(ctx context.Context, pods []*modelPod) {
	for _, p := range pods {
		k.deletePod(ctx, p.name)
	}
}

// deletePod deletes the Pod called name, which may be gone already.
func (k *kubelet) deletePod(ctx context.Context, name string) {
	err := k.kc.CoreV1().Pods(k.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		k.log.Error("delete Pod (kubelet stand-in)", "pod", name, "err", err)
		return
	}
	k.deleted[name] = time.Now()
}

// collectOrphans deletes the Pods whose controlling Deployment the
// stand-in follows (or followed) but that it does not run, as the
// ReplicaSet controller and the garbage collector would.
func (k *kubelet) collectOrphans(ctx context.Context, seen map[string]bool, now time.Time) {
	for name, at := range k.deleted {
		if now.Sub(at) > forgetDeleted {
			delete(k.deleted, name)
		}
	}
	pods, err := k.pods.List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.Kind != "Deployment" || p.Annotations[stack.AnnotationStandIn] == "" || !k.deleted[p.Name].IsZero() {
			continue
		}
		m := k.models[ref.Name]
		if m == nil && seen[ref.Name] {
			continue // not a demo app's
		}
		if m == nil || m.uid != ref.UID || !slices.ContainsFunc(m.pods, func(x *modelPod) bool { return x.name == p.Name }) {
			k.deletePod(ctx, p.Name)
		}
	}
}

// writeStatus writes st as d's status unless it is d's already (or was
// just written over the same resourceVersion, which the cache still shows).
func (k *kubelet) writeStatus(ctx context.Context, d *appsv1.Deployment, m *depModel, st appsv1.DeploymentStatus) {
	if equality.Semantic.DeepEqual(d.Status, st) ||
		(m.writtenRV == d.ResourceVersion && m.written != nil && equality.Semantic.DeepEqual(*m.written, st)) {
		return
	}
	cp := d.DeepCopy()
	cp.Status = st
	if _, err := k.kc.AppsV1().Deployments(k.ns).UpdateStatus(ctx, cp, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) { // a newer one is on its way; the next pass sees it
			k.log.Debug("write Deployment status", "deployment", d.Name, "err", err)
			return
		}
		k.log.Error("write Deployment status (Deployment controller stand-in)", "deployment", d.Name, "err", err)
		return
	}
	m.written, m.writtenRV = &st, d.ResourceVersion
}

// writeEvent records a Warning Event about d.
func (k *kubelet) writeEvent(ctx context.Context, d *appsv1.Deployment, message string) error {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: d.Name + ".", Namespace: k.ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Deployment", APIVersion: "apps/v1", Namespace: k.ns, Name: d.Name,
			UID: d.UID, ResourceVersion: d.ResourceVersion},
		Reason: reasonBadAnnotation, Message: message, Type: corev1.EventTypeWarning, Count: 1,
		FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: fieldManager},
		ReportingController: "serin.dev/meshsim", ReportingInstance: "meshsim",
	}
	if _, err := k.kc.CoreV1().Events(k.ns).Create(ctx, ev, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("create Event about Deployment %s/%s: %w", k.ns, d.Name, err)
	}
	return nil
}

// syncEndpointSlices keeps the stand-in EndpointSlice of every Service
// that selects a Deployment's pods (or whose slice lists pods that are
// gone) listing the Pods it selects, ready as their status says, as the
// EndpointSlice controller would.
func (k *kubelet) syncEndpointSlices(ctx context.Context) {
	svcs, err := k.svcs.List(labels.Everything())
	if err != nil {
		return
	}
	all, err := k.pods.List(labels.Everything())
	if err != nil {
		return
	}
	ours := k.podObjects()
	var pods []corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref == nil || ref.Kind != "Deployment" {
			pods = append(pods, *p)
		}
	}
	current := map[string]bool{}
	for _, p := range ours {
		current[p.Name] = true
	}
	pods = append(pods, ours...)
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	for _, svc := range svcs {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		old, _ := k.eps.EndpointSlices(k.ns).Get(svc.Name + "-stand-in")
		if !slices.ContainsFunc(ours, func(p corev1.Pod) bool { return sel.Matches(labels.Set(p.Labels)) }) &&
			!k.listsGone(old, current) {
			continue
		}
		want := stack.EndpointSlice(k.ns, svc.Name, sel, pods)
		if old != nil && endpointsKey(old.Endpoints) == endpointsKey(want.Endpoints) {
			continue
		}
		if err := stack.WriteEndpointSlice(ctx, k.kc, want); err != nil {
			k.log.Error("write EndpointSlice (EndpointSlice controller stand-in)", "service", svc.Name, "err", err)
		}
	}
}

// podObjects returns the Pods the stand-in has written, as the cache will
// show them, for the EndpointSlices.
func (k *kubelet) podObjects() []corev1.Pod {
	var out []corev1.Pod
	for _, m := range k.models {
		for _, p := range m.pods {
			if p.uid == "" || p.readyWritten == nil {
				continue
			}
			status := corev1.ConditionFalse
			if *p.readyWritten {
				status = corev1.ConditionTrue
			}
			out = append(out, corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: k.ns, UID: types.UID(p.uid), Labels: m.templates[p.hash].labels},
				Status:     corev1.PodStatus{PodIP: p.ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
			})
		}
	}
	return out
}

// listsGone reports whether slice lists a Pod the stand-in wrote that is
// not among its current ones. Slices that list only other Pods are left
// alone, as they were before Deployments were simulated.
func (k *kubelet) listsGone(slice *discoveryv1.EndpointSlice, current map[string]bool) bool {
	if slice == nil {
		return false
	}
	for _, e := range slice.Endpoints {
		if e.TargetRef != nil && k.everWritten[e.TargetRef.Name] && !current[e.TargetRef.Name] {
			return true
		}
	}
	return false
}

// endpointsKey sums up what the stand-in writes of eps: each address,
// readiness and Pod.
func endpointsKey(eps []discoveryv1.Endpoint) string {
	var b strings.Builder
	for _, e := range eps {
		name := ""
		if e.TargetRef != nil {
			name = e.TargetRef.Name
		}
		fmt.Fprintf(&b, "%v/%v/%s;", e.Addresses, ptr.Deref(e.Conditions.Ready, false), name)
	}
	return b.String()
}
