package istioadapter

import (
	"context"
	"fmt"
	"maps"
	"slices"

	apinet "istio.io/api/networking/v1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

var _ rollout.RouteAdopter = (*Router)(nil)

// AdoptRoute prepares t for a delivered workload: the DestinationRule of
// t's host gets the subsets t.StableSubset and t.CanarySubset, selecting
// the pods labelled v1alpha1.LabelTrack with those values, and t's route
// sends 100% to the stable subset and 0% to the canary. A host without a
// DestinationRule gets one of serin's own. The subsets come first, so the
// route never names a subset that does not exist (Istio's IST0101).
// Everything else on both objects is kept. A route that sends traffic to
// another host, or a subset of the same name that selects other pods, is
// refused and nothing is written.
func (r *Router) AdoptRoute(ctx context.Context, t rollout.Target) error {
	_, _, host, err := r.adoptable(ctx, t, false)
	if err != nil {
		return err
	}
	if err := r.adoptSubsets(ctx, t, host); err != nil {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vs, i, host, err := r.adoptable(ctx, t, false)
		if err != nil {
			return err
		}
		route := vs.Spec.Http[i]
		want := []*apinet.HTTPRouteDestination{
			{Destination: &apinet.Destination{Host: host, Subset: t.StableSubset, Port: firstPort(route)}, Weight: 100},
			{Destination: &apinet.Destination{Host: host, Subset: t.CanarySubset, Port: firstPort(route)}, Weight: 0},
		}
		if adopted(route, t) {
			return nil
		}
		// Headers set per destination are kept on both.
		if n := len(route.Route); n > 0 {
			for _, d := range want {
				d.Headers = route.Route[0].Headers
			}
		}
		out := vs.DeepCopy()
		out.Spec.Http[i].Route = want
		up, err := r.istio.NetworkingV1().VirtualServices(t.Namespace).Update(ctx, out, metav1.UpdateOptions{FieldManager: r.fieldManager})
		if err != nil {
			return fmt.Errorf("route VirtualService %s/%s %s to subsets %s and %s: %w", t.Namespace, t.VirtualService,
				routeRef(route, i), t.StableSubset, t.CanarySubset, err)
		}
		r.wrote(up)
		return nil
	})
}

// CheckAdoption reports, writing nothing, why AdoptRoute would refuse t:
// no VirtualService, no route to one host, or a subset of the same name
// that selects other pods. It is nil when adoption can go ahead.
func (r *Router) CheckAdoption(ctx context.Context, t rollout.Target) error {
	_, _, host, err := r.adoptable(ctx, t, true)
	if err != nil {
		return err
	}
	drs, err := r.hostRules(ctx, t.Namespace, host, true)
	if err != nil {
		return err
	}
	for _, dr := range drs {
		for _, name := range []string{t.StableSubset, t.CanarySubset} {
			if s := findSubset(dr.Spec.Subsets, name); s != nil && !trackSubset(s.Labels) {
				return failf("DestinationRule", ErrForeignDestination,
					"DestinationRule %s/%s already has a subset %q selecting %v; serin needs it to select by %s alone: rename that subset",
					dr.Namespace, dr.Name, name, s.Labels, v1alpha1.LabelTrack)
			}
		}
	}
	return nil
}

// adoptable reads t's VirtualService (from the cache when cached) and
// finds the route to adopt on it: its index and host.
func (r *Router) adoptable(ctx context.Context, t rollout.Target, cached bool) (*netv1.VirtualService, int, string, error) {
	vs, err := r.virtualService(ctx, t.Namespace, t.VirtualService, cached)
	if err != nil {
		return nil, 0, "", fmt.Errorf("get VirtualService %s/%s: %w", t.Namespace, t.VirtualService, notFound(err))
	}
	i, host, err := adoptableRoute(vs, t)
	return vs, i, host, err
}

// adoptableRoute finds the route to adopt: t.Route, else the single http
// route whose destinations all go to one host: t.Host when given, else
// one of the VirtualService's own hosts. It
// returns the route's index and host.
func adoptableRoute(vs *netv1.VirtualService, t rollout.Target) (int, string, error) {
	found, host := -1, ""
	for i, route := range vs.Spec.GetHttp() {
		if t.Route != "" && routeRef(route, i) != t.Route && route.GetName() != t.Route {
			continue
		}
		h, ok := singleHost(route, t.Host, vs.Namespace)
		if ok && t.Host == "" && !slices.ContainsFunc(vs.Spec.GetHosts(), func(vh string) bool { return sameHost(vh, h, vs.Namespace) }) {
			// Without spec.host, the workload's host is one the
			// VirtualService serves: a route to another is not its own.
			if t.Route == "" {
				continue
			}
			ok = false
		}
		if !ok {
			if t.Route != "" {
				return 0, "", failf(checkDestinations, ErrForeignDestination,
					"VirtualService %s/%s route %s sends traffic to more than one host; serin can deliver a workload only on a route to its own host",
					vs.Namespace, vs.Name, t.Route)
			}
			continue
		}
		if found >= 0 {
			return 0, "", failf(checkRoute, ErrAmbiguousRoute,
				"VirtualService %s/%s has several http routes to %s (%s and %s); name one in spec.route",
				vs.Namespace, vs.Name, h, routeRef(vs.Spec.Http[found], found), routeRef(route, i))
		}
		found, host = i, h
	}
	if found < 0 {
		want := "its host"
		if t.Host != "" {
			want = t.Host
		}
		return 0, "", failf(checkRoute, rollout.ErrNotFound, "VirtualService %s/%s has no http route%s to %s alone",
			vs.Namespace, vs.Name, routeWord(t.Route), want)
	}
	return found, host, nil
}

func routeWord(name string) string {
	if name == "" {
		return ""
	}
	return " " + name
}

// singleHost is the one host every destination of route goes to (want,
// when given), and false when there are several or none.
func singleHost(route *apinet.HTTPRoute, want, ns string) (string, bool) {
	host := want
	for _, d := range route.GetRoute() {
		h := d.GetDestination().GetHost()
		if host == "" {
			host = h
		}
		if !sameHost(h, host, ns) {
			return "", false
		}
	}
	return host, host != "" && len(route.GetRoute()) > 0
}

// adopted reports whether route already splits between the two subsets.
func adopted(route *apinet.HTTPRoute, t rollout.Target) bool {
	d := route.GetRoute()
	return len(d) == 2 && d[0].GetDestination().GetSubset() == t.StableSubset && d[1].GetDestination().GetSubset() == t.CanarySubset
}

func firstPort(route *apinet.HTTPRoute) *apinet.PortSelector {
	if d := route.GetRoute(); len(d) > 0 {
		return d[0].GetDestination().GetPort()
	}
	return nil
}

// adoptSubsets adds the two track subsets to the DestinationRule of host,
// or creates serin's own DestinationRule for it.
func (r *Router) adoptSubsets(ctx context.Context, t rollout.Target, host string) error {
	// At rest the canary subset selects the stable pods, as Argo Rollouts
	// points both of its subsets at the stable ReplicaSet: a subset never
	// selects no pods (Istio's IST0173), whatever its weight.
	want := map[string]map[string]string{
		t.StableSubset: {v1alpha1.LabelTrack: t.StableSubset},
		t.CanarySubset: {v1alpha1.LabelTrack: t.StableSubset},
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		drs, err := r.hostRules(ctx, t.Namespace, host, false)
		if err != nil {
			return err
		}
		for _, dr := range drs {
			out := dr.DeepCopy()
			changed := false
			for _, name := range []string{t.StableSubset, t.CanarySubset} { // in this order, whatever the map's
				labels := want[name]
				s := findSubset(out.Spec.Subsets, name)
				switch {
				case s == nil:
					out.Spec.Subsets = append(out.Spec.Subsets, &apinet.Subset{Name: name, Labels: labels})
					changed = true
				case !trackSubset(s.Labels):
					return failf("DestinationRule", ErrForeignDestination,
						"DestinationRule %s/%s already has a subset %q selecting %v; serin needs it to select by %s alone: rename that subset",
						dr.Namespace, dr.Name, name, s.Labels, v1alpha1.LabelTrack)
				}
			}
			if !changed {
				return nil
			}
			if _, err := r.istio.NetworkingV1().DestinationRules(t.Namespace).Update(ctx, out, metav1.UpdateOptions{FieldManager: r.fieldManager}); err != nil {
				return fmt.Errorf("add subsets to DestinationRule %s/%s: %w", dr.Namespace, dr.Name, err)
			}
			return nil
		}
		dr := &netv1.DestinationRule{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: "serin-" + t.VirtualService,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "serin"}},
			Spec: apinet.DestinationRule{Host: host, Subsets: []*apinet.Subset{
				{Name: t.StableSubset, Labels: want[t.StableSubset]},
				{Name: t.CanarySubset, Labels: want[t.CanarySubset]},
			}},
		}
		_, err = r.istio.NetworkingV1().DestinationRules(t.Namespace).Create(ctx, dr, metav1.CreateOptions{FieldManager: r.fieldManager})
		if apierrors.IsAlreadyExists(err) {
			return apierrors.NewConflict(netv1.Resource("destinationrules"), dr.Name, err)
		}
		if err != nil {
			return fmt.Errorf("create DestinationRule %s/%s: %w", t.Namespace, dr.Name, err)
		}
		return nil
	})
}

// hostRules lists the DestinationRules of ns (from the cache when cached)
// that apply to host mesh-wide: those for the host with no workload
// selector, where serin's subsets live.
func (r *Router) hostRules(ctx context.Context, ns, host string, cached bool) ([]*netv1.DestinationRule, error) {
	drs, err := r.destinationRulesFor(ctx, ns, host, cached)
	if err != nil {
		return nil, fmt.Errorf("list DestinationRules in %s: %w", ns, err)
	}
	return slices.DeleteFunc(drs, func(dr *netv1.DestinationRule) bool {
		return len(dr.Spec.GetWorkloadSelector().GetMatchLabels()) > 0
	}), nil
}

// trackSubset reports whether a subset selects one of serin's tracks.
func trackSubset(labels map[string]string) bool {
	return len(labels) == 1 && (maps.Equal(labels, map[string]string{v1alpha1.LabelTrack: string(rollout.TrackStable)}) ||
		maps.Equal(labels, map[string]string{v1alpha1.LabelTrack: string(rollout.TrackCanary)}))
}

// SelectCanaryTrack makes t's canary subset select the pods of track tr:
// the canary copy's while a release has traffic on it, the stable copy's
// at rest. It writes nothing when the subset already does.
func (r *Router) SelectCanaryTrack(ctx context.Context, t rollout.Target, tr rollout.Track) error {
	_, _, host, err := r.adoptable(ctx, t, true)
	if err != nil {
		return err
	}
	want := map[string]string{v1alpha1.LabelTrack: string(tr)}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		drs, err := r.hostRules(ctx, t.Namespace, host, false)
		if err != nil {
			return err
		}
		for _, dr := range drs {
			i := slices.IndexFunc(dr.Spec.Subsets, func(s *apinet.Subset) bool { return s.GetName() == t.CanarySubset })
			if i < 0 || !trackSubset(dr.Spec.Subsets[i].Labels) {
				continue
			}
			if maps.Equal(dr.Spec.Subsets[i].Labels, want) {
				return nil
			}
			out := dr.DeepCopy()
			out.Spec.Subsets[i].Labels = want
			if _, err := r.istio.NetworkingV1().DestinationRules(t.Namespace).Update(ctx, out, metav1.UpdateOptions{FieldManager: r.fieldManager}); err != nil {
				return fmt.Errorf("point subset %s of DestinationRule %s/%s at the %s track: %w", t.CanarySubset, dr.Namespace, dr.Name, tr, err)
			}
			return nil
		}
		return fmt.Errorf("no DestinationRule of %s has serin's subset %s: %w", host, t.CanarySubset, rollout.ErrNotFound)
	})
}

func findSubset(subsets []*apinet.Subset, name string) *apinet.Subset {
	for _, s := range subsets {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}
