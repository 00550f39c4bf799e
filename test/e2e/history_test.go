package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	istioapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// The randomized history test of the Trust issue (#10). Each history is a
// seeded random sequence of operations on the real stack (kube-apiserver,
// Prometheus, the mesh simulator and the serin binary), interleaved with
// the engine's own progress; after every operation the invariants are
// checked against the API server, the controller's /metrics and its log:
//
//	I1 the route carries the weight the rollout's status claims (a
//	   Succeeded rollout 0/100, RolledBack and Aborted 100/0), unless the
//	   test itself wrote the VirtualService afterwards;
//	I2 serin never writes a route after its rollouts have ended (the time
//	   of its last write is read from the VirtualService's managedFields);
//	I3 a canary with 50% errors and traffic is at weight 0 within the
//	   rollback budget, paused or not, and every rollout in progress with
//	   traffic keeps being analysed (no last analysis older than 3
//	   intervals);
//	I4 every status the controller writes is accepted by the API server;
//	I5 a bad spec is refused by the API server naming the field, and
//	   nothing is stored;
//	I6 while istiod is stopped, no rollout advances a step: serin cannot
//	   tell whether the proxies carry a weight, so it holds.
//
// On a violation the test prints the seed and the history, so that
// HISTORY_SEED=<seed> HISTORY_SEEDS=1 replays it. make test runs a few
// histories; make chaos runs SEEDS of them and prints the table.

const (
	historyInterval = time.Second // analysis interval and scrape interval
	// historyBudget is the rollback budget of I3: 2 ticks and 2 scrapes,
	// plus the time Prometheus takes to show a scrape and the settling of
	// the check itself.
	historyBudget = 2*historyInterval + 2*historyInterval + 3*time.Second
	// grace is how long the engine gets to converge before I1 and I2 hold.
	grace = 3 * time.Second
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// historyTotals are the figures of the table.
type historyTotals struct {
	histories, ops, faults, checks, violations int
	byKind                                     map[string]int // operations done, by kind
}

func TestRandomHistories(t *testing.T) {
	seeds, ops := envInt("HISTORY_SEEDS", 4), envInt("HISTORY_OPS", 30)
	first := envInt("HISTORY_SEED", 1)
	tot := historyTotals{byKind: map[string]int{}}
	for seed := first; seed < first+seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newHistory(t, uint64(seed))
			h.run(ops)
			tot.histories++
			tot.ops += h.ops
			tot.faults += h.faults
			tot.checks += h.checks
			tot.violations += len(h.violations)
			for k, n := range h.byKind {
				tot.byKind[k] += n
			}
		})
	}
	fmt.Printf("\nrandomized histories (Trust invariants I1–I6)\n")
	fmt.Printf("| histories | operations | faults injected | invariant checks | violations |\n|---|---|---|---|---|\n")
	fmt.Printf("| %d | %d | %d | %d | %d |\n", tot.histories, tot.ops, tot.faults, tot.checks, tot.violations)
	fmt.Printf("\noperations by kind:")
	for _, o := range historyOps {
		fmt.Printf(" %s %d;", o.name, tot.byKind[o.name])
	}
	fmt.Println()
}

// history is one seeded run and the test's model of what it did.
type history struct {
	*meshEnv
	seed                uint64
	rng                 *rand.Rand
	ctrl                *controllerProc
	log                 []string
	violations          []string
	ops, faults, checks int
	byKind              map[string]int

	created     int       // rollouts created, for names
	foreign     time.Time // the test's last write to the VirtualService
	unsettled   time.Time // the last change that stops analysis for a while (restart, Prometheus back, mesh change)
	promStopped bool
	// istiodStopped is since when istiod is stopped (zero: running), and
	// heldSteps the step of each rollout once serin must have noticed.
	istiodStopped time.Time
	heldSteps     map[string]int32
	vsGone        *networkingv1.VirtualService // the deleted VirtualService, to restore
	subsetGone    bool
	faultAt       time.Time // when the canary fault went on; zero when off
	ended         time.Time // the last time a rollout ended or was deleted
}

func newHistory(t *testing.T, seed uint64) *history {
	e := newMeshEnvWith(t, meshsim.Options{RPS: 60, Seed: seed}, "")
	e.analysisArgs = append(e.analysisArgs, "--log-level", "info")
	h := &history{meshEnv: e, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5e41)), byKind: map[string]int{}}
	h.ctrl = e.startController()
	t.Cleanup(func() {
		if h.promStopped {
			_ = st.Prometheus().Signal(syscall.SIGCONT)
		}
		if !h.istiodStopped.IsZero() {
			_ = st.StartIstiod(context.Background())
		}
	})
	return h
}

// op is one kind of operation: it reports what it did, or "" when it did
// not apply in the current state.
type op struct {
	name   string
	weight int
	do     func(h *history) string
}

var historyOps = []op{
	{"create", 6, (*history).create},
	{"second rollout on the route", 1, (*history).second},
	{"hand edit", 2, (*history).handEdit},
	{"pause/resume", 3, (*history).pauseResume},
	{"promote", 1, (*history).promote},
	{"abort", 1, (*history).abort},
	{"delete", 2, (*history).deleteRollout},
	{"delete/restore VirtualService", 1, (*history).toggleVS},
	{"remove/restore subset", 1, (*history).toggleSubset},
	{"kill -9 controller", 2, (*history).restart},
	{"SIGSTOP/SIGCONT Prometheus", 1, (*history).togglePrometheus},
	{"stop/start istiod", 2, (*history).toggleIstiod},
	{"canary fault", 3, (*history).toggleFault},
	{"hostile custom query", 1, (*history).hostile},
	{"bad spec", 1, (*history).badSpec},
	{"wait", 3, (*history).wait},
}

func (h *history) run(n int) {
	total := 0
	for _, o := range historyOps {
		total += o.weight
	}
	for h.ops < n {
		pick := h.rng.IntN(total)
		var o op
		for _, o = range historyOps {
			if pick -= o.weight; pick < 0 {
				break
			}
		}
		did := o.do(h)
		if did == "" {
			continue
		}
		h.ops++
		h.byKind[o.name]++
		h.log = append(h.log, fmt.Sprintf("%s %s", time.Now().Format("15:04:05.000"), did))
		time.Sleep(time.Duration(300+h.rng.IntN(1200)) * time.Millisecond)
		h.check()
	}
	// Let the last operations play out, then check once more.
	if h.promStopped {
		h.togglePrometheus()
	}
	if !h.istiodStopped.IsZero() {
		h.toggleIstiod()
	}
	time.Sleep(historyBudget)
	h.check()
	if len(h.violations) > 0 {
		h.t.Errorf("seed %d: %d invariant violations (replay with HISTORY_SEED=%d HISTORY_SEEDS=1):\n%s\nhistory:\n%s",
			h.seed, len(h.violations), h.seed, strings.Join(h.violations, "\n"), strings.Join(h.log, "\n"))
	}
}

// rollouts lists the namespace's rollouts, oldest first.
func (h *history) rollouts() []v1alpha1.Rollout {
	var l v1alpha1.RolloutList
	must(h.t, h.c.List(h.ctx, &l, client.InNamespace(h.ns)))
	return l.Items
}

// active is the rollout in progress on the route, or nil.
func (h *history) active() *v1alpha1.Rollout {
	for _, r := range h.rollouts() {
		if !r.Status.Phase.Terminal() && r.DeletionTimestamp.IsZero() && r.Status.Phase != v1alpha1.PhaseFailed {
			return &r
		}
	}
	return nil
}

func (h *history) spec(r *v1alpha1.Rollout) {
	r.Spec.StepInterval = dur(time.Duration(3+h.rng.IntN(4)) * time.Second)
	r.Spec.Analysis = &v1alpha1.AnalysisSpec{Interval: dur(historyInterval), Window: dur(10 * time.Second)}
}

func (h *history) create() string {
	if h.active() != nil || h.vsGone != nil || h.subsetGone {
		return ""
	}
	if s, c := weights(h.vs(), "primary"); s != 100 || c != 0 {
		// A rollout starts from 100/0; put the route back as a person would.
		h.setWeights(100, 0)
		h.foreign = time.Now()
	}
	h.created++
	name := fmt.Sprintf("r%d", h.created)
	h.rollout(name, h.spec)
	return "create " + name
}

func (h *history) second() string {
	if h.active() == nil {
		return ""
	}
	h.created++
	name := fmt.Sprintf("r%d", h.created)
	h.rollout(name, h.spec)
	return "create " + name + " beside the rollout in progress"
}

func (h *history) handEdit() string {
	if h.vsGone != nil {
		return ""
	}
	w := []int32{0, 20, 30, 70}[h.rng.IntN(4)]
	h.setWeights(100-w, w)
	h.foreign = time.Now()
	return fmt.Sprintf("hand edit to %d/%d", 100-w, w)
}

func (h *history) pauseResume() string {
	a := h.active()
	if a == nil {
		return ""
	}
	h.setPausedTolerant(a.Name, !a.Spec.Paused)
	return fmt.Sprintf("set %s paused=%v", a.Name, !a.Spec.Paused)
}

// setPausedTolerant is setPaused for a rollout that may have just gone.
func (h *history) setPausedTolerant(name string, paused bool) {
	ro := &v1alpha1.Rollout{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, ro); err != nil {
		return
	}
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Paused = paused
	_ = h.c.Patch(h.ctx, ro, patch)
}

func (h *history) promote() string {
	a := h.active()
	if a == nil || a.Status.Phase == "" || a.Status.Phase == v1alpha1.PhasePending {
		return ""
	}
	h.annotateTolerant(a.Name, v1alpha1.AnnotationPromote, "true")
	return "promote " + a.Name
}

func (h *history) abort() string {
	a := h.active()
	if a == nil {
		return ""
	}
	h.annotateTolerant(a.Name, v1alpha1.AnnotationAbort, "history test")
	return "abort " + a.Name
}

func (h *history) annotateTolerant(name, k, v string) {
	ro := &v1alpha1.Rollout{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, ro); err != nil {
		return
	}
	patch := client.MergeFrom(ro.DeepCopy())
	if ro.Annotations == nil {
		ro.Annotations = map[string]string{}
	}
	ro.Annotations[k] = v
	_ = h.c.Patch(h.ctx, ro, patch)
}

func (h *history) deleteRollout() string {
	rs := h.rollouts()
	if len(rs) == 0 {
		return ""
	}
	r := rs[h.rng.IntN(len(rs))]
	if err := h.c.Delete(h.ctx, &r); client.IgnoreNotFound(err) != nil {
		h.t.Fatal(err)
	}
	h.ended = time.Now()
	return "delete " + r.Name + " (" + string(r.Status.Phase) + ")"
}

func (h *history) toggleVS() string {
	vsc := h.istio.NetworkingV1().VirtualServices(h.ns)
	h.unsettled, h.foreign = time.Now(), time.Now()
	if h.vsGone != nil {
		restored := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: h.ns}}
		h.vsGone.Spec.DeepCopyInto(&restored.Spec)
		_, err := vsc.Create(h.ctx, restored, metav1.CreateOptions{})
		must(h.t, err)
		h.vsGone = nil
		return "restore the VirtualService"
	}
	vs := h.vs()
	must(h.t, vsc.Delete(h.ctx, "checkout", metav1.DeleteOptions{}))
	h.vsGone = vs
	return "delete the VirtualService"
}

func (h *history) toggleSubset() string {
	drc := h.istio.NetworkingV1().DestinationRules(h.ns)
	dr, err := drc.Get(h.ctx, "checkout", metav1.GetOptions{})
	must(h.t, err)
	h.unsettled = time.Now()
	if h.subsetGone {
		h.meshSubsets(dr, "v1", "v2")
		h.subsetGone = false
		return "restore subset v2"
	}
	h.tolerate("IST0101", "the history removes subset v2 under the rollout")
	h.meshSubsets(dr, "v1")
	h.subsetGone = true
	return "remove subset v2"
}

func (h *history) meshSubsets(dr *networkingv1.DestinationRule, subsets ...string) {
	fresh := h.freshDR(subsets...)
	dr.Spec.Subsets = fresh.Spec.Subsets
	_, err := h.istio.NetworkingV1().DestinationRules(h.ns).Update(h.ctx, dr, metav1.UpdateOptions{})
	must(h.t, err)
}

func (h *history) restart() string {
	h.ctrl.kill()
	h.ctrl = h.startController()
	h.unsettled = time.Now()
	return "kill -9 the controller and start it again"
}

func (h *history) togglePrometheus() string {
	p := st.Prometheus()
	if h.promStopped {
		must(h.t, p.Signal(syscall.SIGCONT))
		h.promStopped = false
		h.unsettled = time.Now()
		return "SIGCONT Prometheus"
	}
	must(h.t, p.Signal(syscall.SIGSTOP))
	h.promStopped = true
	return "SIGSTOP Prometheus"
}

// toggleIstiod stops istiod, or starts it again on the same addresses.
// The simulated proxies keep their routes meanwhile, as Envoy does.
func (h *history) toggleIstiod() string {
	if !h.istiodStopped.IsZero() {
		must(h.t, st.StartIstiod(h.ctx))
		h.istiodStopped, h.heldSteps = time.Time{}, nil
		h.unsettled = time.Now()
		return "start istiod"
	}
	must(h.t, st.StopIstiod())
	h.istiodStopped = time.Now()
	h.faults++
	return "stop istiod"
}

func (h *history) toggleFault() string {
	if !h.faultAt.IsZero() {
		must(h.t, h.sim.SetFault("checkout", "v2", meshsim.Fault{}))
		h.faultAt = time.Time{}
		return "canary fault off"
	}
	must(h.t, h.sim.SetFault("checkout", "v2", meshsim.Fault{ErrorRate: 0.5}))
	h.faultAt = time.Now()
	h.faults++
	return "canary fault on (50% errors)"
}

// hostile creates a rollout whose custom query would make text/template
// run forever; it must be refused or failed, and freeze nothing (I3).
func (h *history) hostile() string {
	h.created++
	name := fmt.Sprintf("hostile%d", h.created)
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns}}
	ro.Spec = v1alpha1.RolloutSpec{VirtualService: "elsewhere", StableSubset: "v1", CanarySubset: "v2"}
	ro.Spec.Analysis = &v1alpha1.AnalysisSpec{Custom: []v1alpha1.CustomCheck{{
		Name: "bomb", Op: "<", Threshold: 1, Query: "up{{range 9000000000000000000}}{{end}}"}}}
	if err := h.c.Create(h.ctx, ro); err != nil && !apierrors.IsInvalid(err) {
		h.t.Fatalf("create a hostile rollout: %v", err)
	}
	return "create " + name + " with a hostile custom query"
}

// badSpec checks I5 at once: steps that do not increase are refused by
// the API server, naming the field, and nothing is stored.
func (h *history) badSpec() string {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: h.ns}}
	ro.Spec = v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2", Steps: []int32{50, 10, 100}}
	err := h.c.Create(h.ctx, ro)
	h.checks++
	switch {
	case err == nil:
		h.violate("I5: a rollout with steps [50 10 100] was stored")
		_ = h.c.Delete(h.ctx, ro)
	case !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "steps"):
		h.violate("I5: steps [50 10 100] refused without naming the field: %v", err)
	default:
		if getErr := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "bad"}, &v1alpha1.Rollout{}); !apierrors.IsNotFound(getErr) {
			h.violate("I5: a refused rollout exists anyway: %v", getErr)
		}
	}
	return "create a rollout with bad steps"
}

func (h *history) wait() string { return "wait" }

func (h *history) violate(format string, args ...any) {
	h.violations = append(h.violations, fmt.Sprintf("after op %d: ", h.ops)+fmt.Sprintf(format, args...))
}

// check tests every invariant once.
func (h *history) check() {
	now := time.Now()
	rs := h.rollouts()
	var vs *networkingv1.VirtualService
	if h.vsGone == nil {
		vs = h.vs()
	}
	for i := range rs {
		h.checkI1(&rs[i], vs, now)
	}
	h.checkI2(rs, vs, now)
	h.checkI3(rs, vs, now)
	h.checkI4()
	h.checkI6(rs, now)
}

// istiodNoticed is how long serin takes to hold for a stopped istiod: its
// reader calls istiod unreachable after 2 s without an answer, then one
// tick and the grace to write the hold.
const istiodNoticed = 2*time.Second + historyInterval + grace

// checkI6: with istiod stopped, once serin must have noticed, no rollout
// moves past the step it was at then; one created since stays at its
// first.
func (h *history) checkI6(rs []v1alpha1.Rollout, now time.Time) {
	if h.istiodStopped.IsZero() || now.Sub(h.istiodStopped) < istiodNoticed {
		return
	}
	first := h.heldSteps == nil
	if first {
		h.heldSteps = map[string]int32{}
	}
	for _, r := range rs {
		if r.Status.Phase.Terminal() || !r.DeletionTimestamp.IsZero() {
			continue
		}
		held, ok := h.heldSteps[r.Name]
		if !ok {
			held = max(r.Status.CurrentStep, 0)
			if !first {
				held = 0 // created while istiod was away
			}
			h.heldSteps[r.Name] = held
		}
		h.checks++
		if r.Status.CurrentStep > held {
			h.violate("I6: %s advanced to step %s with istiod stopped since %s (held at step %d)",
				r.Name, r.Status.Step, h.istiodStopped.Format("15:04:05.000"), held+1)
		}
	}
}

// endedAt is when a rollout entered its terminal phase.
func endedAt(r *v1alpha1.Rollout) time.Time {
	if n := len(r.Status.History); n > 0 {
		return r.Status.History[n-1].Time.Time
	}
	return time.Time{}
}

func (h *history) checkI1(r *v1alpha1.Rollout, vs *networkingv1.VirtualService, now time.Time) {
	if vs == nil || h.subsetGone || !r.DeletionTimestamp.IsZero() {
		return
	}
	var want int32
	switch r.Status.Phase {
	case v1alpha1.PhaseSucceeded:
		want = 100
	case v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted:
		want = 0
	default:
		return
	}
	end := endedAt(r)
	// Only the latest rollout to end owns the route, and only while
	// nobody else has written it since.
	if now.Sub(end) < grace || !h.foreign.Before(end) || h.latestEnd(now).After(end) || h.active() != nil {
		return
	}
	h.checks++
	if _, c := weights(vs, "primary"); c != want {
		h.violate("I1: %s is %s (ended %s) but the route's canary weight is %d, want %d",
			r.Name, r.Status.Phase, end.Format("15:04:05.000"), c, want)
	}
}

// latestEnd is when the latest rollout ended.
func (h *history) latestEnd(now time.Time) time.Time {
	var t time.Time
	for _, r := range h.rollouts() {
		if r.Status.Phase.Terminal() {
			if e := endedAt(&r); e.After(t) {
				t = e
			}
		}
	}
	return t
}

// checkI2: with every rollout ended for a while, serin's last write to
// the route is no later than the end of the last one, the last deletion
// or the last restart (which completes a write the crash interrupted).
func (h *history) checkI2(rs []v1alpha1.Rollout, vs *networkingv1.VirtualService, now time.Time) {
	if vs == nil || h.active() != nil {
		return
	}
	last := h.latestEnd(now)
	for _, t := range []time.Time{h.ended, h.unsettled} {
		if t.After(last) {
			last = t
		}
	}
	if now.Sub(last) < grace {
		return
	}
	for _, mf := range vs.ManagedFields {
		if mf.Manager != "serin" || mf.Time == nil {
			continue
		}
		h.checks++
		// managedFields times have second precision.
		if mf.Time.Time.After(last.Add(2 * time.Second)) {
			h.violate("I2: serin wrote the route at %s, after every rollout had ended (%s)",
				mf.Time.Format("15:04:05"), last.Format("15:04:05.000"))
		}
	}
}

// checkI3: a canary with the fault on and traffic is rolled back within
// the budget, and every rollout in progress with traffic is analysed.
func (h *history) checkI3(rs []v1alpha1.Rollout, vs *networkingv1.VirtualService, now time.Time) {
	if vs == nil || h.subsetGone || h.promStopped || !h.istiodStopped.IsZero() || now.Sub(h.unsettled) < historyBudget {
		// With istiod stopped the proxies keep their routes: the route's
		// weight is not what the canary gets.
		return
	}
	_, live := weights(vs, "primary")
	a := h.active()
	if a == nil || live <= 0 || a.Status.Analysis.Since == nil {
		return
	}
	since := a.Status.Analysis.Since.Time
	for _, t := range []time.Time{h.faultAt, h.unsettled, h.foreign} {
		if t.After(since) {
			since = t
		}
	}
	if !h.faultAt.IsZero() && now.Sub(since) > historyBudget {
		h.checks++
		h.violate("I3: %s has had 50%% canary errors at %d%% since %s, and is still %s",
			a.Name, live, since.Format("15:04:05.000"), a.Status.Phase)
	}
	if now.Sub(since) < 3*historyInterval {
		return
	}
	at, ok := h.lastAnalysis(a.Name)
	h.checks++
	if !ok || now.Sub(at) > 3*historyInterval+grace {
		h.violate("I3: %s, in progress at %d%%, was last analysed at %s (found %v)", a.Name, live, at.Format("15:04:05.000"), ok)
	}
}

// lastAnalysis reads serin_rollout_last_analysis_timestamp_seconds.
func (h *history) lastAnalysis(name string) (time.Time, bool) {
	resp, err := http.Get("http://" + h.ctrl.addr + "/metrics")
	if err != nil {
		return time.Time{}, false
	}
	defer resp.Body.Close()
	want := fmt.Sprintf(`serin_rollout_last_analysis_timestamp_seconds{namespace=%q,rollout=%q} `, h.ns, name)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			f, err := strconv.ParseFloat(v, 64)
			return time.Unix(0, int64(f*1e9)), err == nil
		}
	}
	return time.Time{}, false
}

// checkI4: the API server accepted every status the controller wrote.
func (h *history) checkI4() {
	b, err := os.ReadFile(h.ctrl.log)
	must(h.t, err)
	h.checks++
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "status") && (strings.Contains(line, "is invalid") || strings.Contains(line, "Invalid value") ||
			strings.Contains(line, "Request entity too large")) {
			h.violate("I4: the API server refused a status: %s", tail(line, 400))
			return
		}
	}
}

// freshDR is a DestinationRule spec with the given subsets, as e.mesh
// makes them.
func (h *history) freshDR(subsets ...string) *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{}
	for _, s := range subsets {
		dr.Spec.Subsets = append(dr.Spec.Subsets, &istioapi.Subset{Name: s, Labels: map[string]string{"version": s}})
	}
	return dr
}
