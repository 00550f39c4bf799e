package istioadapter

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// How the router reads. Every tick of every rollout reads its
// VirtualService, and the mesh re-check lists the namespace's
// DestinationRules and PeerAuthentications: with a thousand rollouts,
// reading them from the API server would cost thousands of requests a
// second and N² objects at start. With Options.Cache they come from
// informer caches instead, and the API server is asked only where a cache
// can be behind in a way that matters:
//   - every write (SetCanaryWeight) reads, patches and reads back live,
//     under the resourceVersion it read, so a stale cache never causes or
//     hides a write;
//   - a VirtualService the cache does not hold (created a moment ago) is
//     read live, and so is one whose cached generation is older than the
//     one serin last wrote (its own write not yet seen), so that serin
//     never mistakes its own write for a hand edit;
//   - a preflight that fails is confirmed against the API server before
//     it is reported, and so is an mTLS warning (at most once per
//     namespace per mtlsConfirmEvery), so that an object created just
//     before the Rollout is never missed.

// mtlsConfirmEvery is how often an mTLS warning read from the cache is
// confirmed against the API server, per namespace.
const mtlsConfirmEvery = 30 * time.Second

// written is the generation of a VirtualService as serin's last patch left
// it.
type written struct {
	uid        types.UID
	generation int64
}

// reads holds what the router remembers to tell when its cache is behind.
type reads struct {
	mu       sync.Mutex
	written  map[types.NamespacedName]written
	mtlsSeen map[string]time.Time // namespace → when its warning was last confirmed live
}

// wrote records the generation a patch of vs left it at.
func (r *Router) wrote(vs *netv1.VirtualService) {
	r.reads.mu.Lock()
	defer r.reads.mu.Unlock()
	if r.reads.written == nil {
		r.reads.written = map[types.NamespacedName]written{}
	}
	r.reads.written[types.NamespacedName{Namespace: vs.Namespace, Name: vs.Name}] = written{vs.UID, vs.Generation}
}

// behind reports whether a cached vs is older than serin's last write of
// it.
func (r *Router) behind(vs *netv1.VirtualService) bool {
	r.reads.mu.Lock()
	defer r.reads.mu.Unlock()
	w, ok := r.reads.written[types.NamespacedName{Namespace: vs.Namespace, Name: vs.Name}]
	return ok && w.uid == vs.UID && vs.Generation < w.generation
}

// confirmMTLS reports whether an mTLS warning for ns read from the cache
// should be confirmed live now, and if so notes that it was.
func (r *Router) confirmMTLS(ns string, now time.Time) bool {
	r.reads.mu.Lock()
	defer r.reads.mu.Unlock()
	if last, ok := r.reads.mtlsSeen[ns]; ok && now.Sub(last) < mtlsConfirmEvery {
		return false
	}
	if r.reads.mtlsSeen == nil {
		r.reads.mtlsSeen = map[string]time.Time{}
	}
	r.reads.mtlsSeen[ns] = now
	return true
}

// virtualService reads a VirtualService: from the cache when cached is
// true and the cache holds it at least as new as serin's last write,
// otherwise from the API server.
func (r *Router) virtualService(ctx context.Context, ns, name string, cached bool) (*netv1.VirtualService, error) {
	if cached && r.cache != nil {
		vs := &netv1.VirtualService{}
		err := r.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vs)
		switch {
		case err == nil && !r.behind(vs):
			return vs, nil
		case err != nil && !apierrors.IsNotFound(err):
			return nil, err
		}
	}
	return r.istio.NetworkingV1().VirtualServices(ns).Get(ctx, name, metav1.GetOptions{})
}

// drHostField indexes the cached DestinationRules by the FQDN of their
// host.
const drHostField = "serin.dev/destinationrule-host"

// podLabelField indexes the cached pods' metadata by each of their
// labels, as "key=value".
const podLabelField = "serin.dev/pod-label"

// IndexFields registers the indexes of the cache (Options.Cache) that the
// Router reads through, on the manager's field indexer, before the cache
// starts: DestinationRules by host. Without it a rollout's checks list
// the whole namespace's DestinationRules from the cache, with a deep copy
// of each, on every tick: a thousand rollouts in one namespace made that
// a quarter of the controller's CPU.
func (r *Router) IndexFields(ctx context.Context, fi client.FieldIndexer) error {
	err := fi.IndexField(ctx, &netv1.DestinationRule{}, drHostField, func(o client.Object) []string {
		dr, ok := o.(*netv1.DestinationRule)
		if !ok || dr.Spec.GetHost() == "" {
			return nil
		}
		return []string{canonicalHost(dr.Spec.GetHost(), dr.Namespace)}
	})
	if err != nil {
		return fmt.Errorf("index DestinationRules by host: %w", err)
	}
	pod := &metav1.PartialObjectMetadata{}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	err = fi.IndexField(ctx, pod, podLabelField, func(o client.Object) []string {
		out := make([]string, 0, len(o.GetLabels()))
		for k, v := range o.GetLabels() {
			out = append(out, k+"="+v)
		}
		return out
	})
	if err != nil {
		return fmt.Errorf("index pods by label: %w", err)
	}
	r.drIndexed, r.podsIndexed = true, true
	return nil
}

// destinationRulesFor lists the DestinationRules of ns for host, by name,
// from the cache's index when cached is true.
func (r *Router) destinationRulesFor(ctx context.Context, ns, host string, cached bool) ([]*netv1.DestinationRule, error) {
	if host == "" {
		return nil, nil
	}
	if cached && r.cache != nil && r.drIndexed {
		var list netv1.DestinationRuleList
		if err := r.cache.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{drHostField: canonicalHost(host, ns)}); err != nil {
			return nil, fmt.Errorf("cached DestinationRules: %w", err)
		}
		slices.SortFunc(list.Items, func(a, b *netv1.DestinationRule) int { return strings.Compare(a.Name, b.Name) })
		return list.Items, nil
	}
	drs, err := r.destinationRules(ctx, ns, cached)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(drs, func(dr *netv1.DestinationRule) bool { return !sameHost(dr.Spec.GetHost(), host, ns) }), nil
}

// destinationRules lists the DestinationRules of ns, from the cache when
// cached is true.
func (r *Router) destinationRules(ctx context.Context, ns string, cached bool) ([]*netv1.DestinationRule, error) {
	if cached && r.cache != nil {
		var list netv1.DestinationRuleList
		if err := r.cache.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("cached DestinationRules: %w", err)
		}
		// In the API server's order, by name, so that the first match is
		// the same whichever way it was read.
		slices.SortFunc(list.Items, func(a, b *netv1.DestinationRule) int { return strings.Compare(a.Name, b.Name) })
		return list.Items, nil
	}
	list, err := r.istio.NetworkingV1().DestinationRules(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// peerAuthentications lists the PeerAuthentications of ns, from the cache
// when cached is true.
func (r *Router) peerAuthentications(ctx context.Context, ns string, cached bool) ([]*secv1.PeerAuthentication, error) {
	if cached && r.cache != nil {
		var list secv1.PeerAuthenticationList
		if err := r.cache.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("cached PeerAuthentications: %w", err)
		}
		return list.Items, nil
	}
	list, err := r.istio.SecurityV1().PeerAuthentications(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// service reads a Service, from the cache when cached is true (a miss is
// read live, as it may have been created a moment ago); nil when it does
// not exist.
func (r *Router) service(ctx context.Context, ns, name string, cached bool) (*corev1.Service, error) {
	if cached && r.cache != nil {
		svc := &corev1.Service{}
		err := r.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc)
		switch {
		case err == nil:
			return svc, nil
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("cached Service %s/%s: %w", ns, name, err)
		}
	}
	svc, err := r.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Service %s/%s: %w", ns, name, err)
	}
	return svc, nil
}

// serviceEntries lists the ServiceEntries of every namespace (they are
// visible mesh-wide unless exportTo says otherwise), from the cache when
// cached is true.
func (r *Router) serviceEntries(ctx context.Context, cached bool) ([]*netv1.ServiceEntry, error) {
	if cached && r.cache != nil {
		var list netv1.ServiceEntryList
		if err := r.cache.List(ctx, &list); err != nil {
			return nil, fmt.Errorf("cached ServiceEntries: %w", err)
		}
		return list.Items, nil
	}
	list, err := r.istio.NetworkingV1().ServiceEntries("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list ServiceEntries: %w", err)
	}
	return list.Items, nil
}

// countPods counts the pods of ns that set selects, from a metadata-only
// cache when cached is true (labels are all the check needs, and a pod's
// metadata is a small part of it). by names the labels of set that
// narrow the pods down most, a Service's selector: with the cache's
// index, only the pods with the first of them (by key) are matched, not
// every pod of the namespace, which at a thousand services made this
// check, run on every tick, most of the controller's work.
func (r *Router) countPods(ctx context.Context, ns string, set labels.Set, by map[string]string, cached bool) (int, error) {
	sel := set.AsSelector()
	if cached && r.cache != nil {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		opts := []client.ListOption{client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy}
		if keys := slices.Sorted(maps.Keys(by)); r.podsIndexed && len(keys) > 0 {
			opts = append(opts, client.MatchingFields{podLabelField: keys[0] + "=" + set[keys[0]]})
		}
		if err := r.cache.List(ctx, list, opts...); err != nil {
			return 0, fmt.Errorf("cached pods: %w", err)
		}
		return len(list.Items), nil
	}
	list, err := r.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return 0, fmt.Errorf("list pods in %s: %w", ns, err)
	}
	return len(list.Items), nil
}

// namespace reads a Namespace, from the cache when cached is true; nil
// when it does not exist.
func (r *Router) namespace(ctx context.Context, name string, cached bool) (*corev1.Namespace, error) {
	if cached && r.cache != nil {
		n := &corev1.Namespace{}
		err := r.cache.Get(ctx, client.ObjectKey{Name: name}, n)
		switch {
		case err == nil:
			return n, nil
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("cached Namespace %s: %w", name, err)
		}
	}
	n, err := r.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Namespace %s: %w", name, err)
	}
	return n, nil
}
