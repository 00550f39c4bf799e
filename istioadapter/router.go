// Package istioadapter implements rollout.TrafficRouter on an Istio
// networking.istio.io/v1 VirtualService, and the mesh preflight checks
// that run before a rollout writes anything.
//
// The router manages exactly two numbers on one http route: the weights
// of the stable and the canary destination. It writes them with a JSON
// Patch that touches only those two fields (and carries the resourceVersion
// it read, for optimistic concurrency), so every other route, match, retry,
// mirror, label and annotation stays byte-identical.
//
// Routes are referred to by name. An unnamed http route is referred to as
// "http[N]", N being its zero-based index in spec.http; Preflight reports
// that name in PreflightReport.Resolved.Route, and Target.Route accepts it
// when no route is literally named so.
package istioadapter

import (
	"context"
	"errors"
	"fmt"
	"slices"

	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	"istio.io/client-go/pkg/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout"
)

// Options configures a Router.
type Options struct {
	// Istio is the Istio clientset. Required.
	Istio versioned.Interface
	// Kube is the Kubernetes clientset, for the Services, pods and
	// namespaces the preflight checks. Required.
	Kube kubernetes.Interface
	// MeshRootNamespace is where mesh-wide Istio policy lives. Default
	// "istio-system".
	MeshRootNamespace string
	// FieldManager names serin in managedFields. Default "serin".
	FieldManager string
	// Cache, when set, serves the reads of every tick and mesh re-check
	// (VirtualServices, DestinationRules, PeerAuthentications) from
	// informer caches, e.g. a controller-runtime manager's cache with the
	// Istio types in its scheme. Writes always read live. Nil reads
	// everything from the API server.
	Cache client.Reader
}

// Router shifts traffic between the stable and canary destinations of one
// http route of a VirtualService. It implements rollout.TrafficRouter and
// is safe for concurrent use.
type Router struct {
	istio        versioned.Interface
	kube         kubernetes.Interface
	rootNS       string
	fieldManager string
	cache        client.Reader
	// drIndexed and podsIndexed say the cache indexes DestinationRules
	// by host and pods by label (IndexFields).
	drIndexed, podsIndexed bool
	reads                  reads
}

var _ rollout.TrafficRouter = (*Router)(nil)

// NewRouter returns a Router for o, with defaults filled in. It fails when
// o.Istio is nil.
func NewRouter(o Options) (*Router, error) {
	if o.Istio == nil {
		return nil, errors.New("istioadapter: Options.Istio is nil; an Istio clientset is required")
	}
	if o.Kube == nil {
		return nil, errors.New("istioadapter: Options.Kube is nil; a Kubernetes clientset is required for the Service, pod and namespace checks")
	}
	r := &Router{istio: o.Istio, kube: o.Kube, rootNS: o.MeshRootNamespace, fieldManager: o.FieldManager, cache: o.Cache}
	if r.rootNS == "" {
		r.rootNS = "istio-system"
	}
	if r.fieldManager == "" {
		r.fieldManager = "serin"
	}
	return r, nil
}

// get reads t's VirtualService (from the cache when cached is true; see
// read.go) and resolves t's route on it.
func (r *Router) get(ctx context.Context, t rollout.Target, cached bool) (*netv1.VirtualService, resolved, error) {
	if err := validateTarget(t); err != nil {
		return nil, resolved{}, err
	}
	vs, err := r.virtualService(ctx, t.Namespace, t.VirtualService, cached)
	if err != nil {
		return nil, resolved{}, fmt.Errorf("get VirtualService %s/%s: %w", t.Namespace, t.VirtualService, notFound(err))
	}
	res, err := resolveRoute(vs, t)
	return vs, res, err
}

// notFound makes an API NotFound error also wrap rollout.ErrNotFound, so
// that the engine can test for it without knowing Kubernetes errors.
func notFound(err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w (%w)", rollout.ErrNotFound, err)
	}
	return err
}

// CanaryWeight returns the weight of the canary destination on t's route.
// A missing weight field is 0. It wraps rollout.ErrNotFound when the
// VirtualService, the route or a destination is missing.
func (r *Router) CanaryWeight(ctx context.Context, t rollout.Target) (int32, error) {
	vs, res, err := r.get(ctx, t, true)
	if err != nil {
		return 0, err
	}
	return weightOf(vs.Spec.GetHttp()[res.HTTP], res.Canary), nil
}

// SetCanaryWeight sets the canary weight to w and the stable weight to
// 100-w on t's route and changes nothing else. It writes nothing when the
// weights are already right. On a write conflict it re-reads, re-resolves
// and tries again. After writing it reads the object back and returns an
// error wrapping rollout.ErrDrift if the weights are not what it wrote.
// When from is not empty, it writes only if the live canary weight is one
// of from (or already w); that check and the write are one atomic step
// guarded by resourceVersion, so a hand edit made in between is never
// overwritten: the call wraps rollout.ErrDrift and writes nothing.
func (r *Router) SetCanaryWeight(ctx context.Context, t rollout.Target, w int32, from ...int32) error {
	if w < 0 || w > 100 {
		return fmt.Errorf("set canary weight on %s: weight %d is outside 0..100: %w", t, w, ErrInvalidWeight)
	}
	wrote := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vs, res, err := r.get(ctx, t, false)
		if err != nil {
			return err
		}
		if weightsAre(vs, res, w) {
			return nil
		}
		if live := weightOf(vs.Spec.GetHttp()[res.HTTP], res.Canary); len(from) > 0 && !slices.Contains(from, live) {
			return fmt.Errorf("VirtualService %s/%s route %q: canary weight is %d, not one serin set (%v); not overwriting it: %w",
				vs.Namespace, vs.Name, res.Name, live, from, rollout.ErrDrift)
		}
		patch, err := weightPatch(vs.ResourceVersion, res, w)
		if err != nil {
			return fmt.Errorf("patch VirtualService %s/%s: %w", vs.Namespace, vs.Name, err)
		}
		out, err := r.istio.NetworkingV1().VirtualServices(vs.Namespace).Patch(ctx, vs.Name, types.JSONPatchType, patch,
			metav1.PatchOptions{FieldManager: r.fieldManager})
		if err != nil {
			return fmt.Errorf("patch VirtualService %s/%s route %q: %w", vs.Namespace, vs.Name, res.Name, err)
		}
		r.wrote(out)
		wrote = true
		return nil
	})
	if err != nil || !wrote {
		return err
	}
	return r.readBack(ctx, t, w)
}

// readBack checks that t's route carries the weights just written.
func (r *Router) readBack(ctx context.Context, t rollout.Target, w int32) error {
	vs, res, err := r.get(ctx, t, false)
	if err != nil {
		return fmt.Errorf("read back after setting canary weight %d: %w", w, err)
	}
	if !weightsAre(vs, res, w) {
		route := vs.Spec.GetHttp()[res.HTTP]
		return fmt.Errorf("read back VirtualService %s/%s route %q: stable %d, canary %d, want %d, %d: %w",
			vs.Namespace, vs.Name, res.Name, route.GetRoute()[res.Stable].GetWeight(),
			route.GetRoute()[res.Canary].GetWeight(), 100-w, w, rollout.ErrDrift)
	}
	return nil
}

// weightsAre reports whether the route's stored weights are already
// 100-w for stable and w for canary.
func weightsAre(vs *netv1.VirtualService, res resolved, w int32) bool {
	route := vs.Spec.GetHttp()[res.HTTP].GetRoute()
	return route[res.Stable].GetWeight() == 100-w && route[res.Canary].GetWeight() == w
}
