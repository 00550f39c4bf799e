package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

// refereeEvery is how often the referee looks again while a route is split.
// A run of istioctl analyze takes about 0.3 s here, so this costs a few
// percent of one core while a rollout is in progress.
const refereeEvery = 5 * time.Second

// referee is Istio's own config analyzers (istioctl analyze, through
// stack.Analyze) judging one test's namespace. serin must never make the
// mesh less valid than it found it, so the referee takes a baseline once
// the scenario is set up and before serin acts (the controller's first
// start or the first Rollout, whichever comes first), looks again as soon
// as a route of the namespace is split and then every refereeEvery while it
// is, and looks a last time when the test ends. An Error the baseline did
// not have fails the test. Messages about other namespaces are other
// tests' and are left out, so tests never judge each other's meshes.
type referee struct {
	e       *env
	started bool // start ran; only the test's goroutine reads or sets it

	mu        sync.Mutex
	baseline  map[string]stack.Message // by Message.Key, this namespace's only
	tolerated map[string]string        // code -> why the test itself causes it
	found     map[string]sighting      // new Errors by Message.Key
	failures  []error                  // runs of istioctl that failed
	runs      int
}

// sighting is a new Error and the run that first saw it.
type sighting struct {
	msg  stack.Message
	when string
}

func newReferee(e *env) *referee {
	return &referee{e: e, tolerated: map[string]string{}, found: map[string]sighting{}}
}

// tolerate tells the referee that the test itself introduces Errors with
// this analyzer code (it removes a subset or deletes a Service under the
// rollout, to see what serin does): they are logged, not failed.
func (e *env) tolerate(code, why string) {
	e.ref.mu.Lock()
	defer e.ref.mu.Unlock()
	e.ref.tolerated[code] = why
}

// start takes the baseline, once, and has the referee look again during the
// rollout and at the end of the test. Benchmarks get the baseline and the
// end only, so that no analyzer run competes with what they time.
func (r *referee) start() {
	t := r.e.t
	t.Helper()
	if r.started {
		return
	}
	r.started = true
	msgs, err := r.analyze()
	if err != nil {
		t.Fatalf("referee: the baseline: %v", err)
	}
	r.baseline = map[string]stack.Message{}
	for _, m := range msgs {
		r.baseline[m.Key()] = m
		if m.Level != stack.LevelInfo {
			t.Logf("referee: baseline, before serin acts: %s", m)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if _, bench := t.(*testing.B); bench {
		close(done)
	} else {
		go func() { defer close(done); r.watch(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		<-done
		r.look("the end of the test")
		r.report()
	})
}

// analyze runs Istio's analyzers and keeps the messages about the test's
// namespace.
func (r *referee) analyze() ([]stack.Message, error) {
	all, err := st.Analyze(context.Background())
	if err != nil {
		return nil, err
	}
	var mine []stack.Message
	for _, m := range all {
		if m.About(r.e.ns) {
			mine = append(mine, m)
		}
	}
	r.mu.Lock()
	r.runs++
	r.mu.Unlock()
	return mine, nil
}

// watch looks at the mesh when a route of the namespace is first split
// (the canary's weight is no longer 0) and every refereeEvery while one is,
// until ctx ends.
func (r *referee) watch(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(last) < refereeEvery || !r.split(ctx) {
			continue
		}
		what := "mid-rollout"
		if last.IsZero() {
			what = "mid-rollout, when a route was first split"
		}
		r.look(what + " at " + time.Now().Format("15:04:05.000"))
		last = time.Now()
	}
}

// split reports whether a VirtualService of the namespace sends traffic to
// more than one destination of a route: a rollout in progress.
func (r *referee) split(ctx context.Context) bool {
	list, err := r.e.istio.NetworkingV1().VirtualServices(r.e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false // the end of the test, or a blip; the next tick asks again
	}
	return slices.ContainsFunc(list.Items, isSplit)
}

// isSplit reports whether vs has an HTTP route with two or more weighted
// destinations.
func isSplit(vs *networkingv1.VirtualService) bool {
	for _, h := range vs.Spec.Http {
		n := 0
		for _, d := range h.Route {
			if d.Weight > 0 {
				n++
			}
		}
		if n > 1 {
			return true
		}
	}
	return false
}

// look runs the analyzers and records every new Error, with when it was
// seen; a failed run is recorded too. It never fails the test itself, as
// it may run on the watch goroutine: report does, at the end.
func (r *referee) look(when string) {
	msgs, err := r.analyze()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failures = append(r.failures, fmt.Errorf("%s: %w", when, err))
		return
	}
	for _, m := range r.newErrorsLocked(msgs) {
		if _, seen := r.found[m.Key()]; !seen {
			r.found[m.Key()] = sighting{msg: m, when: when}
		}
	}
}

// newErrors returns the Errors among msgs that are about the test's
// namespace, that the baseline did not have and that the test does not
// cause on purpose (tolerate).
func (r *referee) newErrors(msgs []stack.Message) []stack.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.newErrorsLocked(msgs)
}

func (r *referee) newErrorsLocked(msgs []stack.Message) []stack.Message {
	var out []stack.Message
	for _, m := range msgs {
		_, before := r.baseline[m.Key()]
		_, tolerated := r.tolerated[m.Code]
		if m.Level == stack.LevelError && m.About(r.e.ns) && !before && !tolerated {
			out = append(out, m)
		}
	}
	return out
}

// report fails the test for every new Error and every failed run, and logs
// the tolerated ones.
func (r *referee) report() {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.e.t
	for code, why := range r.tolerated {
		t.Logf("referee: %s tolerated: %s", code, why)
	}
	for _, err := range r.failures {
		t.Errorf("referee: istioctl analyze did not run: %v", err)
	}
	var lines []string
	for _, s := range r.found {
		lines = append(lines, fmt.Sprintf("  %s (first seen %s)", s.msg, s.when))
	}
	slices.Sort(lines)
	t.Logf("referee: %d runs of istioctl analyze, %d new Error(s) in namespace %s", r.runs, len(lines), r.e.ns)
	if len(lines) > 0 {
		t.Errorf("referee: Istio's analyzers report %d Error(s) in namespace %s that were not there before serin acted "+
			"(%d runs; serin must never make the mesh less valid):\n%s", len(lines), r.e.ns, r.runs, strings.Join(lines, "\n"))
	}
}

// TestRefereeCatchesADeletedService proves that the referee sees what it is
// there for: the harness's mesh is valid to Istio's analyzers before serin
// acts; deleting the checkout Service mid-rollout (as a person's kubectl
// delete would) brings a new IST0101 on the VirtualService; another
// namespace's broken mesh is never this test's; a tolerated code is not
// counted; and once the Service is back, nothing new remains, so the
// referee's own end-of-test run passes.
func TestRefereeCatchesADeletedService(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	other := newEnv(t) // a VirtualService whose host has no Service
	_, err := other.istio.NetworkingV1().VirtualServices(other.ns).Create(other.ctx, other.plainVS(), metav1.CreateOptions{})
	must(t, err)

	e.startController()
	for _, m := range e.ref.baseline {
		if m.Level == stack.LevelError || m.Level == stack.LevelWarning {
			t.Errorf("the harness's mesh is not valid before serin acts: %s", m)
		}
	}
	e.rollout("refereed", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(30 * time.Second) })
	e.routeIs(90, 10, 30*time.Second)

	// The test's own referee may look while the Service is gone; the
	// assertions use a strict one with the same baseline.
	e.tolerate("IST0101", "this test deletes the checkout Service for a moment")
	strict := newReferee(e)
	strict.baseline = e.ref.baseline
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	must(t, err)
	must(t, kc.CoreV1().Services(e.ns).Delete(e.ctx, "checkout", metav1.DeleteOptions{}))
	all, err := st.Analyze(e.ctx)
	must(t, err)
	if !slices.ContainsFunc(all, func(m stack.Message) bool { return m.Code == "IST0101" && m.About(other.ns) }) {
		t.Errorf("the analyzers do not report the other namespace's missing host (IST0101); got %v", all)
	}
	got := strict.newErrors(all)
	want := fmt.Sprintf("VirtualService %s/checkout", e.ns)
	if len(got) != 1 || got[0].Code != "IST0101" || got[0].Origin != want || !strings.Contains(got[0].Message, e.host()) {
		t.Fatalf("new Errors after deleting the Service = %v, want one IST0101 on %s naming %s", got, want, e.host())
	}
	t.Logf("the referee sees: %s", got[0])
	strict.look("after the deletion") // what the end-of-test run would record and report
	if len(strict.found) != 1 || len(strict.failures) != 0 {
		t.Errorf("a run after the deletion recorded %v (failures %v), want the one IST0101", strict.found, strict.failures)
	}

	if got := e.ref.newErrors(all); len(got) != 0 {
		t.Errorf("a tolerated IST0101 still counts: %v", got)
	}

	svc := stack.Workloads{Services: []stack.Service{{Name: "checkout", App: "checkout"}}}
	must(t, st.CreateWorkloads(e.ctx, e.ns, svc))
	all, err = st.Analyze(e.ctx)
	must(t, err)
	if got := strict.newErrors(all); len(got) != 0 {
		t.Errorf("new Errors once the Service is back = %v, want none", got)
	}
}
