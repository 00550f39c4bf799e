// Package deployments implements rollout.WorkloadManager on apps/v1
// Deployments, the way Argo Rollouts' workloadRef and Flagger's primary
// copy do, fitted to Istio subsets.
//
// The user's Deployment holds the template and nothing else: serin reads
// its pod template, never writes it, and scales it to zero once serin's
// two copies of it serve. The copies are Deployments of their own,
// <name>-stable and <name>-canary. Each runs one revision of the template
// with two labels added to its pods: serin.dev/track (stable or canary),
// which the DestinationRule subsets of the same names select, and
// service.istio.io/canonical-revision (the revision), which Istio reports
// in metrics and traces. The copies have no owner: deleting the Rollout
// leaves them, and the route, serving.
package deployments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Labels and annotations serin puts on its copies.
const (
	// AnnotationRevision on a copy is the revision of the template it runs.
	AnnotationRevision = "serin.dev/revision"
	// LabelWorkload on a copy names the Deployment it copies.
	LabelWorkload = "serin.dev/workload"
	// LabelCanonicalRevision is Istio's label for a pod's revision in
	// telemetry (destination_canonical_revision, istio.canonical_revision).
	LabelCanonicalRevision = "service.istio.io/canonical-revision"
	labelManagedBy         = "app.kubernetes.io/managed-by"
)

// Manager delivers Deployments. It implements rollout.WorkloadManager and
// rollout.WorkloadWatcher, and is safe for concurrent use.
type Manager struct {
	c     client.Client
	cache informerSource
	owner string
}

// Options configures a Manager.
type Options struct {
	// Client reads (from its cache, for a manager's client) and writes
	// Deployments. Required.
	Client client.Client
	// Informers, when set, feeds Watch: a controller-runtime cache.
	Informers informerSource
	// FieldManager names serin in managedFields. Default "serin".
	FieldManager string
}

var (
	_ rollout.WorkloadManager = (*Manager)(nil)
	_ rollout.WorkloadWatcher = (*Manager)(nil)
)

// New returns a Manager for o.
func New(o Options) (*Manager, error) {
	if o.Client == nil {
		return nil, errors.New("deployments: Options.Client is required")
	}
	if o.FieldManager == "" {
		o.FieldManager = "serin"
	}
	return &Manager{c: o.Client, cache: o.Informers, owner: o.FieldManager}, nil
}

// Revision is the revision of a pod template: a hash of its JSON form, so
// that equal templates have equal revisions, whoever wrote them.
func Revision(t corev1.PodTemplateSpec) string {
	b, err := json.Marshal(t)
	if err != nil {
		panic(fmt.Sprintf("marshal a pod template: %v", err)) // a typed struct always marshals
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}

// Observe reads the Deployment w and serin's two copies of it.
func (m *Manager) Observe(ctx context.Context, w rollout.Workload) (rollout.WorkloadState, error) {
	dep, err := m.get(ctx, w.Namespace, w.Deployment)
	if err != nil {
		return rollout.WorkloadState{}, err
	}
	if dep == nil {
		return rollout.WorkloadState{}, fmt.Errorf("get %s: %w", w, rollout.ErrNotFound)
	}
	ws := rollout.WorkloadState{Revision: Revision(dep.Spec.Template), Images: images(dep.Spec.Template), Replicas: replicasOf(dep),
		SidecarGaps: sidecarGaps(dep.Spec.Template), InjectionOff: injectionOff(dep.Spec.Template)}
	if dep.Annotations[v1alpha1.AnnotationReleaseImages] == rollout.ImagesString(ws.Images) {
		ws.RequestedBy = dep.Annotations[v1alpha1.AnnotationReleaseBy]
	}
	hpa, err := m.autoscalerOf(ctx, w)
	if err != nil {
		return ws, err
	}
	if hpa != nil {
		ws.Autoscaler = hpa.Name
	}
	for _, tr := range []rollout.Track{rollout.TrackStable, rollout.TrackCanary} {
		cp, err := m.get(ctx, w.Namespace, copyName(w, tr))
		if err != nil {
			return ws, err
		}
		st := trackState(cp)
		if tr == rollout.TrackStable {
			ws.Stable = st
		} else {
			ws.Canary = st
		}
	}
	return ws, nil
}

// SetTrack makes track tr of w run revision rev with replicas replicas.
func (m *Manager) SetTrack(ctx context.Context, w rollout.Workload, tr rollout.Track, rev string, replicas int32) error {
	name := copyName(w, tr)
	cur, err := m.get(ctx, w.Namespace, name)
	if err != nil {
		return err
	}
	if tr == rollout.TrackStable {
		hpa, err := m.autoscalerOf(ctx, w)
		if err != nil {
			return err
		}
		if hpa != nil {
			if err := m.mirrorAutoscaler(ctx, w, hpa); err != nil {
				return err
			}
			if cur != nil && replicasOf(cur) > 0 {
				replicas = replicasOf(cur) // the autoscaler's count
			}
		}
	}
	if replicas == 0 {
		if cur == nil || replicasOf(cur) == 0 {
			return nil
		}
		return m.scale(ctx, cur, 0)
	}
	if cur != nil && cur.Annotations[AnnotationRevision] == rev {
		if replicasOf(cur) == replicas {
			return nil
		}
		return m.scale(ctx, cur, replicas)
	}
	src, err := m.templateOf(ctx, w, rev)
	if err != nil {
		return err
	}
	want := copyOf(src, w, tr, rev, replicas)
	if cur == nil {
		if err := m.c.Create(ctx, want, client.FieldOwner(m.owner)); err != nil {
			return fmt.Errorf("create Deployment %s/%s: %w", w.Namespace, name, err)
		}
		return nil
	}
	if !equality.Semantic.DeepEqual(cur.Spec.Selector, want.Spec.Selector) {
		return fmt.Errorf("Deployment %s/%s selects %v, not %v (the selector of %s changed, and a selector cannot change): delete %s and serin recreates it",
			w.Namespace, name, metav1.FormatLabelSelector(cur.Spec.Selector), metav1.FormatLabelSelector(want.Spec.Selector), w, name)
	}
	next := cur.DeepCopy()
	next.Labels, next.Annotations = want.Labels, mergeStrings(cur.Annotations, want.Annotations)
	next.Spec = want.Spec
	if err := m.c.Update(ctx, next, client.FieldOwner(m.owner)); err != nil {
		return fmt.Errorf("update Deployment %s/%s to revision %s: %w", w.Namespace, name, rev, err)
	}
	return nil
}

// ScaleWorkload sets the replicas of the Deployment w itself.
func (m *Manager) ScaleWorkload(ctx context.Context, w rollout.Workload, replicas int32) error {
	dep, err := m.get(ctx, w.Namespace, w.Deployment)
	if err != nil {
		return err
	}
	if dep == nil {
		return fmt.Errorf("scale %s: %w", w, rollout.ErrNotFound)
	}
	if replicasOf(dep) == replicas {
		return nil
	}
	return m.scale(ctx, dep, replicas)
}

// templateOf finds the template of revision rev: the workload's own, or
// the one a copy runs (with its track label, which copyOf replaces).
func (m *Manager) templateOf(ctx context.Context, w rollout.Workload, rev string) (*appsv1.Deployment, error) {
	dep, err := m.get(ctx, w.Namespace, w.Deployment)
	if err != nil {
		return nil, err
	}
	if dep != nil && Revision(dep.Spec.Template) == rev {
		return dep, nil
	}
	for _, tr := range []rollout.Track{rollout.TrackStable, rollout.TrackCanary} {
		cp, err := m.get(ctx, w.Namespace, copyName(w, tr))
		if err != nil {
			return nil, err
		}
		if cp != nil && cp.Annotations[AnnotationRevision] == rev {
			src := cp.DeepCopy()
			src.Spec.Selector = stripSelector(cp.Spec.Selector)
			delete(src.Spec.Template.Labels, v1alpha1.LabelTrack)
			return src, nil
		}
	}
	return nil, fmt.Errorf("no template of revision %s in %s or its copies: %w", rev, w, rollout.ErrNotFound)
}

func (m *Manager) get(ctx context.Context, ns, name string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	err := m.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, d)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Deployment %s/%s: %w", ns, name, err)
	}
	return d, nil
}

func (m *Manager) scale(ctx context.Context, d *appsv1.Deployment, replicas int32) error {
	patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
	if err := m.c.Patch(ctx, d, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(m.owner)); err != nil {
		return fmt.Errorf("scale Deployment %s/%s to %d: %w", d.Namespace, d.Name, replicas, err)
	}
	return nil
}

func copyName(w rollout.Workload, tr rollout.Track) string {
	if tr == rollout.TrackStable {
		return w.StableCopy()
	}
	return w.CanaryCopy()
}

// copyOf builds track tr's copy of src at revision rev.
func copyOf(src *appsv1.Deployment, w rollout.Workload, tr rollout.Track, rev string, replicas int32) *appsv1.Deployment {
	track := map[string]string{v1alpha1.LabelTrack: string(tr)}
	sel := stripSelector(src.Spec.Selector)
	sel.MatchLabels = mergeStrings(sel.MatchLabels, track)
	tmpl := *src.Spec.Template.DeepCopy()
	tmpl.Labels = mergeStrings(tmpl.Labels, track, map[string]string{LabelCanonicalRevision: rev})
	labels := mergeStrings(src.Labels, map[string]string{LabelWorkload: w.Deployment, labelManagedBy: "serin"}, track)
	spec := *src.Spec.DeepCopy()
	spec.Selector, spec.Template, spec.Replicas, spec.Paused = sel, tmpl, &replicas, false
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: copyName(w, tr), Labels: labels,
			Annotations: map[string]string{AnnotationRevision: rev}},
		Spec: spec,
	}
}

// stripSelector is sel without the track label, a copy.
func stripSelector(sel *metav1.LabelSelector) *metav1.LabelSelector {
	if sel == nil {
		return &metav1.LabelSelector{}
	}
	out := sel.DeepCopy()
	delete(out.MatchLabels, v1alpha1.LabelTrack)
	return out
}

func mergeStrings(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func images(t corev1.PodTemplateSpec) map[string]string {
	out := map[string]string{}
	for _, c := range t.Spec.Containers {
		out[c.Name] = c.Image
	}
	return out
}
