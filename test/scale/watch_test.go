package scale

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// firstStepWeight is the canary weight of every rollout's first step (the
// default steps 10, 25, 50, 100).
const firstStepWeight = 10

// observer records, from the API server's watches, every write to the
// namespace's Rollouts, VirtualServices and Events, with when its watch
// event arrived, and the latest state of each Rollout and route. During a
// measurement window the harness writes nothing, so every write there is
// serin's.
type observer struct {
	mu       sync.Mutex
	rollouts map[string]*rolloutLog
	vss      map[string]*vsLog
	events   []time.Time // each Event created or updated
	rewatch  int         // watches that ended and were started again
}

// rolloutLog is what the watch saw of one Rollout.
type rolloutLog struct {
	rv     string
	writes []time.Time // each new resourceVersion after the first one seen
	status v1alpha1.RolloutStatus
	// atFirstStep is when it was first seen at step 0 with the step's
	// weight confirmed on the route; zero until then.
	atFirstStep time.Time
}

// vsLog is what the watch saw of one VirtualService.
type vsLog struct {
	rv      string
	writes  []time.Time
	weights []int32 // each distinct canary weight of route "primary", in order
	ats     []time.Time
}

// observe starts the three watches of w's namespace; they end with ctx.
func (w *world) observe(ctx context.Context) *observer {
	o := &observer{rollouts: map[string]*rolloutLog{}, vss: map[string]*vsLog{}}
	go o.loop(ctx, w.t, "Rollouts", func(ctx context.Context) (watch.Interface, error) {
		list := &v1alpha1.RolloutList{}
		if err := w.c.List(ctx, list, client.InNamespace(w.ns)); err != nil {
			return nil, err
		}
		for i := range list.Items {
			o.rollout(&list.Items[i], time.Now())
		}
		return w.c.Watch(ctx, &v1alpha1.RolloutList{}, &client.ListOptions{Namespace: w.ns,
			Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	}, func(obj runtime.Object, at time.Time) {
		if ro, ok := obj.(*v1alpha1.Rollout); ok {
			o.rollout(ro, at)
		}
	})
	go o.loop(ctx, w.t, "VirtualServices", func(ctx context.Context) (watch.Interface, error) {
		vsc := w.istio.NetworkingV1().VirtualServices(w.ns)
		list, err := vsc.List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, vs := range list.Items {
			o.virtualService(vs, time.Now())
		}
		return vsc.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	}, func(obj runtime.Object, at time.Time) {
		if vs, ok := obj.(*networkingv1.VirtualService); ok {
			o.virtualService(vs, at)
		}
	})
	go o.loop(ctx, w.t, "Events", func(ctx context.Context) (watch.Interface, error) {
		ec := w.kube.CoreV1().Events(w.ns)
		list, err := ec.List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return ec.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	}, func(obj runtime.Object, at time.Time) {
		if _, ok := obj.(*corev1.Event); ok {
			o.mu.Lock()
			o.events = append(o.events, at)
			o.mu.Unlock()
		}
	})
	return o
}

// loop lists and watches until ctx ends, starting over when a watch ends,
// so that no version is missed; versions are told apart by their
// resourceVersion, so a new list counts nothing twice.
func (o *observer) loop(ctx context.Context, t testing.TB, what string, start func(context.Context) (watch.Interface, error), seen func(runtime.Object, time.Time)) {
	for ctx.Err() == nil {
		why := func() string {
			wi, err := start(ctx)
			if err != nil {
				return err.Error()
			}
			defer wi.Stop()
			for ev := range wi.ResultChan() {
				switch ev.Type {
				case watch.Added, watch.Modified:
					seen(ev.Object, time.Now())
				case watch.Error:
					return fmt.Sprintf("watch error: %v", ev.Object)
				}
			}
			return "watch closed"
		}()
		if ctx.Err() == nil {
			logf(t, "watching %s again: %s", what, why)
			o.mu.Lock()
			o.rewatch++
			o.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (o *observer) rollout(ro *v1alpha1.Rollout, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, ok := o.rollouts[ro.Name]
	if !ok {
		l = &rolloutLog{}
		o.rollouts[ro.Name] = l
	} else if l.rv != ro.ResourceVersion {
		l.writes = append(l.writes, at)
	}
	l.rv, l.status = ro.ResourceVersion, ro.Status
	if l.atFirstStep.IsZero() && ro.Status.CurrentStep == 0 && ro.Status.AppliedWeight == firstStepWeight {
		l.atFirstStep = at
	}
}

func (o *observer) virtualService(vs *networkingv1.VirtualService, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, ok := o.vss[vs.Name]
	if !ok {
		l = &vsLog{}
		o.vss[vs.Name] = l
	} else if l.rv != vs.ResourceVersion {
		l.writes = append(l.writes, at)
	}
	l.rv = vs.ResourceVersion
	if c := canaryOf(vs); len(l.weights) == 0 || l.weights[len(l.weights)-1] != c {
		l.weights = append(l.weights, c)
		l.ats = append(l.ats, at)
	}
}

// canaryOf is the canary (v2) weight of route "primary", -1 without one.
func canaryOf(vs *networkingv1.VirtualService) int32 {
	for _, r := range vs.Spec.Http {
		if r.Name != "primary" {
			continue
		}
		for _, d := range r.Route {
			if d.Destination.GetSubset() == "v2" {
				return d.Weight
			}
		}
	}
	return -1
}

// writesIn counts the writes to Rollouts, VirtualServices and Events seen
// in [from, to].
func (o *observer) writesIn(from, to time.Time) (rollouts, vss, events int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, l := range o.rollouts {
		rollouts += countIn(l.writes, from, to)
	}
	for _, l := range o.vss {
		vss += countIn(l.writes, from, to)
	}
	return rollouts, vss, countIn(o.events, from, to)
}

func countIn(ts []time.Time, from, to time.Time) int {
	n := 0
	for _, t := range ts {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}

// atFirstStep returns how many of the named rollouts have been at their
// first step, and when the last of them got there.
func (o *observer) atFirstStep(names []string) (n int, last time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, name := range names {
		if l, ok := o.rollouts[name]; ok && !l.atFirstStep.IsZero() {
			n++
			if l.atFirstStep.After(last) {
				last = l.atFirstStep
			}
		}
	}
	return n, last
}

// status returns the latest status seen of a rollout.
func (o *observer) status(name string) (v1alpha1.RolloutStatus, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, ok := o.rollouts[name]
	if !ok {
		return v1alpha1.RolloutStatus{}, false
	}
	return l.status, true
}

// weightSince returns when the canary weight of VirtualService name was
// first seen at w at or after t0.
func (o *observer) weightSince(name string, w int32, t0 time.Time) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, ok := o.vss[name]
	if !ok {
		return time.Time{}, false
	}
	for i, x := range l.weights {
		if x == w && !l.ats[i].Before(t0) {
			return l.ats[i], true
		}
	}
	return time.Time{}, false
}

// weight returns the latest canary weight seen of VirtualService name.
func (o *observer) weight(name string) int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l, ok := o.vss[name]; ok && len(l.weights) > 0 {
		return l.weights[len(l.weights)-1]
	}
	return -1
}
