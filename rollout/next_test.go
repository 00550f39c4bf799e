package rollout

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func spec() v1alpha1.RolloutSpec {
	return v1alpha1.RolloutSpec{
		VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2",
		StepInterval: &metav1.Duration{Duration: 10 * time.Second},
	}
}

// at returns a Progressing status at step i, begun at start, with weight
// applied and confirmed on the route then, and gen observed.
func at(i int32, start time.Time) v1alpha1.RolloutStatus {
	w := v1alpha1.DefaultSteps[i]
	return v1alpha1.RolloutStatus{
		Phase: v1alpha1.PhaseProgressing, CurrentStep: i, CanaryWeight: w, AppliedWeight: w,
		StepStartedAt: ptrTime(start), WeightConfirmedAt: ptrTime(start), ObservedGeneration: 1,
		Analysis: v1alpha1.AnalysisStatus{CleanSince: ptrTime(start)},
	}
}

func with(st v1alpha1.RolloutStatus, f func(*v1alpha1.RolloutStatus)) v1alpha1.RolloutStatus {
	f(&st)
	return st
}

func live(w int32) Observation { return Observation{Generation: 1, LiveWeight: w, LiveKnown: true} }

func withPausedBy(o Observation, by string) Observation {
	o.PausedBy = by
	return o
}

func withResult(o Observation, v analysis.Verdict, reason string) Observation {
	o.Result = &analysis.Result{Verdict: v, Reason: reason}
	return o
}

func passed(st v1alpha1.RolloutStatus, n int32) v1alpha1.RolloutStatus {
	st.Analysis.PassedTicks = n
	st.Analysis.LastVerdict = string(analysis.Pass)
	return st
}

type want struct {
	phase   v1alpha1.Phase
	step    int32
	weight  int32
	pause   bool
	events  []EventKind
	msg     string // substring of status.message
	requeue time.Duration
	by      string // who the transition and its event name
}

func TestNext(t *testing.T) {
	okPF := &PreflightReport{}
	badPF := &PreflightReport{Failures: []Finding{{Check: "DestinationRule", Message: `DestinationRule shop/checkout has no subset "v2"`}}}
	warnPF := &PreflightReport{Warnings: []Finding{{Check: "PeerAuthentication", Message: "no STRICT PeerAuthentication in shop or istio-system"}}}
	paused := func(s v1alpha1.RolloutSpec) v1alpha1.RolloutSpec { s.Paused = true; return s }
	later := t0.Add(11 * time.Second)

	tests := []struct {
		name string
		st   v1alpha1.RolloutStatus
		spec v1alpha1.RolloutSpec
		obs  Observation
		now  time.Time
		want want
	}{
		{"new rollout waits for preflight", v1alpha1.RolloutStatus{}, spec(), Observation{Generation: 1}, t0,
			want{phase: v1alpha1.PhasePending, step: -1}},
		{"first step after preflight", v1alpha1.RolloutStatus{}, spec(), Observation{Generation: 1, Preflight: okPF}, t0,
			want{phase: v1alpha1.PhaseProgressing, step: 0, weight: 10, events: []EventKind{EventStarted}, msg: "started", requeue: 2 * time.Second}},
		{"preflight failure fails and writes nothing", v1alpha1.RolloutStatus{}, spec(), Observation{Generation: 1, Preflight: badPF}, t0,
			want{phase: v1alpha1.PhaseFailed, step: -1, weight: 0, events: []EventKind{EventFailed}, msg: `no subset "v2"`}},
		{"mTLS warning does not stop the start", v1alpha1.RolloutStatus{}, spec(), Observation{Generation: 1, Preflight: warnPF}, t0,
			want{phase: v1alpha1.PhaseProgressing, step: 0, weight: 10, events: []EventKind{EventWarning, EventStarted}}},
		{"paused before start stays pending", v1alpha1.RolloutStatus{}, paused(spec()), Observation{Generation: 1, Preflight: okPF}, t0,
			want{phase: v1alpha1.PhasePending, step: -1, msg: "paused before start"}},
		{"dwell not over: hold and requeue for the rest", passed(at(0, t0), 1), spec(), withResult(live(10), analysis.Pass, "ok"), t0.Add(9 * time.Second),
			want{phase: v1alpha1.PhaseProgressing, step: 0, weight: 10, requeue: time.Second}},
		{"dwell over with passes: advance", passed(at(0, t0), 4), spec(), withResult(live(10), analysis.Pass, "ok"), later,
			want{phase: v1alpha1.PhaseProgressing, step: 1, weight: 25, events: []EventKind{EventStepAdvanced}, msg: "step 2/4"}},
		{"dwell over but no pass ever: never promote on no data", at(1, t0), spec(), withResult(live(25), analysis.Inconclusive, "no data"), later,
			want{phase: v1alpha1.PhaseProgressing, step: 1, weight: 25}},
		{"last step reaches 100 and succeeds", passed(at(2, t0), 3), spec(), withResult(live(50), analysis.Pass, "ok"), later,
			want{phase: v1alpha1.PhaseSucceeded, step: 3, weight: 100, events: []EventKind{EventSucceeded}, msg: "stable one for the next rollout"}},
		{"pause holds the weight", passed(at(1, t0), 3), paused(spec()), live(25), later,
			want{phase: v1alpha1.PhasePaused, step: 1, weight: 25, events: []EventKind{EventPaused}, msg: "paused by request"}},
		{"a pause through serin names who paused", passed(at(1, t0), 3), paused(spec()), withPausedBy(live(25), "vic"), later,
			want{phase: v1alpha1.PhasePaused, step: 1, weight: 25, events: []EventKind{EventPaused}, msg: "paused by request", by: "vic"}},
		{"a resume through serin names who resumed", with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhasePaused }), spec(),
			withPausedBy(live(25), "olga"), later,
			want{phase: v1alpha1.PhaseProgressing, step: 1, weight: 25, events: []EventKind{EventResumed}, requeue: 2 * time.Second, by: "olga"}},
		{"paused stays paused", with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhasePaused }), paused(spec()), live(25), later,
			want{phase: v1alpha1.PhasePaused, step: 1, weight: 25}},
		{"resume continues with a fresh dwell", with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhasePaused }), spec(), live(25), later,
			want{phase: v1alpha1.PhaseProgressing, step: 1, weight: 25, events: []EventKind{EventResumed}, requeue: 2 * time.Second}},
		{"promote jumps to 100", at(0, t0), spec(), Observation{Generation: 1, LiveWeight: 10, LiveKnown: true, Promote: &Request{By: "alice"}}, t0,
			want{phase: v1alpha1.PhaseSucceeded, step: 3, weight: 100, events: []EventKind{EventSucceeded}, msg: "promoted to 100% by alice", by: "alice"}},
		{"promote while paused", with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhasePaused }), paused(spec()),
			Observation{Generation: 1, LiveWeight: 25, LiveKnown: true, Promote: &Request{}}, t0,
			want{phase: v1alpha1.PhaseSucceeded, step: 3, weight: 100, events: []EventKind{EventSucceeded}}},
		{"abort returns to 100/0", at(2, t0), spec(), Observation{Generation: 1, LiveWeight: 50, LiveKnown: true, Abort: &Request{By: "bob", Reason: "bad smell"}}, t0,
			want{phase: v1alpha1.PhaseAborted, step: 2, weight: 0, events: []EventKind{EventAborted}, msg: "aborted by bob: bad smell", by: "bob"}},
		{"a retry names who asked", with(at(1, t0), func(s *v1alpha1.RolloutStatus) {
			s.Phase, s.CanaryWeight, s.AppliedWeight = v1alpha1.PhaseRolledBack, 0, 0
		}), spec(), Observation{Generation: 1, Retry: &Request{By: "olga"}}, t0,
			want{phase: v1alpha1.PhasePending, step: -1, weight: 0, events: []EventKind{EventRetried}, msg: "retried by olga", by: "olga"}},
		{"abort before start", v1alpha1.RolloutStatus{}, spec(), Observation{Generation: 1, Abort: &Request{Reason: "changed my mind"}}, t0,
			want{phase: v1alpha1.PhaseAborted, step: -1, weight: 0, events: []EventKind{EventAborted}}},
		{"a failure rolls back at once: the evidence is already weighed", passed(at(1, t0), 3), spec(), withResult(live(25), analysis.Fail, "error rate 3% > 1%"), later,
			want{phase: v1alpha1.PhaseRolledBack, step: 1, weight: 0, events: []EventKind{EventRolledBack}, msg: "rolled back: error rate 3% > 1%"}},
		{"undecided with data on both sides waits, whatever the time", with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Analysis.InconclusiveSince = ptrTime(t0) }), spec(),
			withResult(live(25), analysis.Inconclusive, "15 canary and 150 stable requests so far"), t0.Add(10 * time.Minute),
			want{phase: v1alpha1.PhaseProgressing, step: 1, weight: 25}},
		{"stable above its SLO holds by default, never blaming the canary", passed(at(1, t0), 3), spec(),
			Observation{Generation: 1, LiveWeight: 25, LiveKnown: true, Result: &analysis.Result{Verdict: analysis.Inconclusive, StableAboveSLO: true,
				Checks: []analysis.CheckResult{{Verdict: analysis.Inconclusive, StableAboveLimit: true, Reason: "stable is also above the 1% SLO: 1.5%"}}}}, later,
			want{phase: v1alpha1.PhaseProgressing, step: 1, weight: 25, msg: "holding at 25%: stable is above its SLO"}},
		{"stable above its SLO rolls back when asked", passed(at(1, t0), 3),
			func() v1alpha1.RolloutSpec {
				s := spec()
				s.Analysis = &v1alpha1.AnalysisSpec{OnStableViolation: v1alpha1.OnStableViolationRollback}
				return s
			}(),
			Observation{Generation: 1, LiveWeight: 25, LiveKnown: true, Result: &analysis.Result{Verdict: analysis.Inconclusive, StableAboveSLO: true,
				Checks: []analysis.CheckResult{{Verdict: analysis.Inconclusive, StableAboveLimit: true, Reason: "stable is also above the 1% SLO: 1.5%"}}}}, later,
			want{phase: v1alpha1.PhaseRolledBack, step: 1, weight: 0, events: []EventKind{EventRolledBack}, msg: "stable is above its SLO"}},
		{"no data past the limit rolls back", with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Analysis.InconclusiveSince = ptrTime(t0) }), spec(),
			noData(withResult(live(25), analysis.Inconclusive, "Prometheus unavailable")), t0.Add(60 * time.Second),
			want{phase: v1alpha1.PhaseRolledBack, step: 1, weight: 0, events: []EventKind{EventRolledBack}, msg: "Prometheus unavailable"}},
		{"inconclusive past the limit pauses when asked", with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Analysis.InconclusiveSince = ptrTime(t0) }),
			func() v1alpha1.RolloutSpec {
				s := spec()
				s.Analysis = &v1alpha1.AnalysisSpec{OnInconclusive: v1alpha1.OnInconclusivePause}
				return s
			}(),
			noData(withResult(live(25), analysis.Inconclusive, "no data")), t0.Add(61 * time.Second),
			want{phase: v1alpha1.PhasePaused, step: 1, weight: 25, pause: true, events: []EventKind{EventPaused}}},
		{"drift pauses without overwriting", at(1, t0), spec(), live(40), later,
			want{phase: v1alpha1.PhasePaused, step: 1, weight: 25, pause: true, events: []EventKind{EventPaused}, msg: "edited by someone else: canary weight is 40% but serin set 25%"}},
		{"an unfinished write of our own is not drift", with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.AppliedWeight = 10 }), spec(), live(10), later,
			want{phase: v1alpha1.PhaseProgressing, step: 1, weight: 25, requeue: 2 * time.Second}},
		{"spec changed mid-rollout: steps re-placed at or below the weight", at(2, t0),
			func() v1alpha1.RolloutSpec { s := spec(); s.Steps = []int32{20, 40, 60, 100}; return s }(),
			Observation{Generation: 2, LiveWeight: 50, LiveKnown: true}, t0.Add(time.Second),
			want{phase: v1alpha1.PhaseProgressing, step: 1, weight: 40, events: []EventKind{EventStepAdvanced}, msg: "spec changed"}},
		{"terminal phases never change", with(at(3, t0), func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhaseSucceeded }), spec(),
			Observation{Generation: 1, LiveWeight: 0, LiveKnown: true, Abort: &Request{}}, later,
			want{phase: v1alpha1.PhaseSucceeded, step: 3, weight: 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.st.DeepCopy()
			d := Next(tc.st, tc.spec, tc.obs, tc.now)
			st := d.Status
			if st.Phase != tc.want.phase || st.CurrentStep != tc.want.step || st.CanaryWeight != tc.want.weight {
				t.Fatalf("got %s step %d weight %d, want %s step %d weight %d (message %q)",
					st.Phase, st.CurrentStep, st.CanaryWeight, tc.want.phase, tc.want.step, tc.want.weight, st.Message)
			}
			if d.Pause != tc.want.pause {
				t.Errorf("Pause = %v, want %v", d.Pause, tc.want.pause)
			}
			var kinds []EventKind
			for _, e := range d.Events {
				kinds = append(kinds, e.Kind)
			}
			if strings.Join(kindStrings(kinds), ",") != strings.Join(kindStrings(tc.want.events), ",") {
				t.Errorf("events = %v, want %v", kinds, tc.want.events)
			}
			if !strings.Contains(st.Message, tc.want.msg) {
				t.Errorf("message %q does not contain %q", st.Message, tc.want.msg)
			}
			if n := len(st.History); n > len(before.History) && st.History[n-1].By != tc.want.by {
				t.Errorf("history %q is by %q, want %q", st.History[n-1].Reason, st.History[n-1].By, tc.want.by)
			}
			for _, e := range d.Events {
				if e.Kind != EventWarning && e.By != tc.want.by {
					t.Errorf("event %s is by %q, want %q", e.Kind, e.By, tc.want.by)
				}
			}
			if tc.want.requeue != 0 && d.RequeueAfter != tc.want.requeue {
				t.Errorf("RequeueAfter = %v, want %v", d.RequeueAfter, tc.want.requeue)
			}
			if before.Phase != "" && st.Phase != before.Phase && len(st.History) != len(before.History)+1 {
				t.Errorf("a phase change must add one history entry, got %d -> %d", len(before.History), len(st.History))
			}
			if st.Phase.Terminal() && d.RequeueAfter != 0 {
				t.Errorf("terminal phase %s must not requeue, got %v", st.Phase, d.RequeueAfter)
			}
		})
	}
}

func noData(o Observation) Observation {
	r := *o.Result
	r.NoData = true
	o.Result = &r
	return o
}

func kindStrings(ks []EventKind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

// TestNextWalksEveryStep drives a whole rollout tick by tick with a fake
// clock, as the engine would, and checks the weights in order.
func TestNextWalksEveryStep(t *testing.T) {
	sp := spec()
	st := Next(v1alpha1.RolloutStatus{}, sp, Observation{Generation: 1, Preflight: &PreflightReport{}}, t0).Status
	var weights []int32
	now := t0
	for i := 0; i < 100 && !st.Phase.Terminal(); i++ {
		if len(weights) == 0 || weights[len(weights)-1] != st.CanaryWeight {
			weights = append(weights, st.CanaryWeight)
		}
		st.AppliedWeight = st.CanaryWeight // the engine wrote it
		now = now.Add(2 * time.Second)
		st = Next(st, sp, withResult(live(st.CanaryWeight), analysis.Pass, "ok"), now).Status
	}
	weights = append(weights, st.CanaryWeight)
	if got := weightsString(weights); got != "10,25,50,100" || st.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("walked %s ending %s, want 10,25,50,100 ending Succeeded", got, st.Phase)
	}
	if now.Before(t0.Add(30 * time.Second)) {
		t.Errorf("three dwells of 10s must take at least 30s of clock, took %v", now.Sub(t0))
	}
}

func TestHistoryIsBounded(t *testing.T) {
	st := at(1, t0)
	sp := spec()
	for i := 0; i < 2*v1alpha1.MaxHistory; i++ {
		sp.Paused = i%2 == 0
		st = Next(st, sp, live(25), t0.Add(time.Duration(i)*time.Second)).Status
	}
	if len(st.History) != v1alpha1.MaxHistory {
		t.Fatalf("history has %d entries, want %d", len(st.History), v1alpha1.MaxHistory)
	}
}

func weightsString(ws []int32) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprint(w)
	}
	return strings.Join(parts, ",")
}

// Trust issue cases on the pure decision; the engine's side runs on the
// real stack in the e2e tests.
func TestNextHeldCanaryStillRollsBack(t *testing.T) {
	fail := withResult(live(25), analysis.Fail, "error rate 20%")
	pausedSt := with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhasePaused })
	pausedSpec := spec()
	pausedSpec.Paused = true
	for name, tc := range map[string]struct {
		st   v1alpha1.RolloutStatus
		spec v1alpha1.RolloutSpec
		obs  Observation
	}{
		"paused by a person":      {pausedSt, pausedSpec, fail},
		"being paused":            {at(1, t0), pausedSpec, fail},
		"on a hand-edited weight": {at(1, t0), spec(), func() Observation { o := fail; o.LiveWeight = 40; return o }()},
	} {
		d := Next(tc.st, tc.spec, tc.obs, t0.Add(time.Second))
		if d.Status.Phase != v1alpha1.PhaseRolledBack || d.Status.CanaryWeight != 0 {
			t.Errorf("%s: %s at %d%%, want RolledBack at 0%%", name, d.Status.Phase, d.Status.CanaryWeight)
		}
	}
	// A pass while paused is recorded and changes nothing else.
	d := Next(pausedSt, pausedSpec, withResult(live(25), analysis.Pass, "ok"), t0.Add(time.Second))
	if d.Status.Phase != v1alpha1.PhasePaused || d.Status.Analysis.LastVerdict != "Pass" || d.RequeueAfter != 2*time.Second {
		t.Errorf("a pass while paused: %s, last verdict %q, next tick in %v; want still Paused with the pass recorded, and the next tick due",
			d.Status.Phase, d.Status.Analysis.LastVerdict, d.RequeueAfter)
	}
}

// Promote after a drift pause takes over the hand-edited weight, so the
// engine writes 100% instead of stranding the route.
func TestNextPromoteAfterDriftTakesTheLiveWeight(t *testing.T) {
	st := with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhasePaused })
	obs := live(30)
	obs.Promote = &Request{By: "alice"}
	d := Next(st, spec(), obs, t0.Add(time.Second))
	if d.Status.Phase != v1alpha1.PhaseSucceeded || d.Status.CanaryWeight != 100 || d.Status.AppliedWeight != 30 {
		t.Fatalf("%s weight %d applied %d; want Succeeded at 100 with the live 30 as the weight to replace",
			d.Status.Phase, d.Status.CanaryWeight, d.Status.AppliedWeight)
	}
}

// A mesh that changed under the rollout pauses it with the finding, and it
// stays paused while the mesh is broken, even when resumed.
func TestNextMeshChangedPauses(t *testing.T) {
	broken := live(25)
	broken.Preflight = &PreflightReport{Failures: []Finding{{Check: "DestinationRule", Message: `DestinationRule shop/checkout has no subset "v2"`}}}
	d := Next(at(1, t0), spec(), broken, t0.Add(time.Second))
	if d.Status.Phase != v1alpha1.PhasePaused || !d.Pause || d.Status.CanaryWeight != 25 || !strings.Contains(d.Status.Message, `no subset "v2"`) {
		t.Fatalf("%s pause=%v weight %d %q; want Paused at 25%% naming the DestinationRule", d.Status.Phase, d.Pause, d.Status.CanaryWeight, d.Status.Message)
	}
	resumed := Next(d.Status, spec(), broken, t0.Add(2*time.Second))
	if resumed.Status.Phase != v1alpha1.PhasePaused {
		t.Errorf("resumed with the mesh still broken: %s, want Paused", resumed.Status.Phase)
	}
	ok := live(25)
	ok.Preflight = &PreflightReport{}
	if d := Next(d.Status, spec(), ok, t0.Add(3*time.Second)); d.Status.Phase != v1alpha1.PhaseProgressing {
		t.Errorf("resumed with the mesh whole: %s, want Progressing", d.Status.Phase)
	}
}

// The dwell counts from when the weight reached the route: a write
// delayed past stepInterval does not let the next step follow at once.
func TestNextDwellStartsWhenTheWeightIsOnTheRoute(t *testing.T) {
	sp := spec() // 10 s steps
	st := passed(at(0, t0), 3)
	st = Next(st, sp, withResult(live(10), analysis.Pass, "ok"), t0.Add(11*time.Second)).Status
	if st.CurrentStep != 1 || st.WeightConfirmedAt != nil {
		t.Fatalf("step %d confirmed %v; want step 1 decided, not yet confirmed", st.CurrentStep, st.WeightConfirmedAt)
	}
	// The write is delayed 30 s; the weight is then confirmed.
	late := t0.Add(41 * time.Second)
	st.AppliedWeight = 25
	st = Next(st, sp, withResult(live(25), analysis.Pass, "ok"), late).Status
	if st.WeightConfirmedAt == nil || !st.WeightConfirmedAt.Time.Equal(late) {
		t.Fatalf("confirmed at %v, want %v", st.WeightConfirmedAt, late)
	}
	// Passing ticks just after: no advance until a whole dwell at 25%.
	for i := 1; i <= 4; i++ {
		st = Next(st, sp, withResult(live(25), analysis.Pass, "ok"), late.Add(time.Duration(2*i)*time.Second)).Status
	}
	if st.CurrentStep != 1 {
		t.Fatalf("advanced to step %d %v after the confirmation; want a whole dwell first", st.CurrentStep, 8*time.Second)
	}
	st = Next(st, sp, withResult(live(25), analysis.Pass, "ok"), late.Add(11*time.Second)).Status
	if st.CurrentStep != 2 {
		t.Errorf("step %d a dwell after the confirmation, want 2", st.CurrentStep)
	}
}

// The analysis starts when the first step's weight was written, in whole
// seconds, so the first analysed tick already judges traffic and the
// runner keeps its tests across the status round trip.
func TestAnalysisStart(t *testing.T) {
	now := t0.Add(2500 * time.Millisecond)
	st := at(0, t0.Add(300*time.Millisecond))
	if got := AnalysisStart(st, now); !got.Equal(t0) {
		t.Errorf("before any tick: %v, want the first step's start in whole seconds, %v", got, t0)
	}
	d := Next(st, spec(), withResult(live(10), analysis.Inconclusive, "no data yet"), now)
	if s := d.Status.Analysis.Since; s == nil || !s.Time.Equal(t0) {
		t.Errorf("recorded since %v, want %v", s, t0)
	}
	if got := AnalysisStart(d.Status, now.Add(time.Minute)); !got.Equal(t0) {
		t.Errorf("after the first tick: %v, want %v", got, t0)
	}
	if got := AnalysisStart(at(2, t0), now); !got.Equal(now.Truncate(time.Second)) {
		t.Errorf("a later step with no start recorded: %v, want now", got)
	}
}

// TestNextInjectionWarning: a namespace not enabled for sidecar injection
// (IST0102) does not stop the start, and shows as a False
// SidecarInjection condition with the finding, and a warning event.
func TestNextInjectionWarning(t *testing.T) {
	pf := &PreflightReport{Warnings: []Finding{{Check: "Injection", Code: "IST0102", Message: "IST0102 namespace shop is not enabled for Istio injection"}}}
	d := Next(v1alpha1.RolloutStatus{}, spec(), Observation{Generation: 1, Preflight: pf}, t0)
	if d.Status.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("phase %s, want Progressing: a warning does not stop the start", d.Status.Phase)
	}
	c := meta.FindStatusCondition(d.Status.Conditions, CondSidecarInjection)
	if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "IST0102") {
		t.Fatalf("SidecarInjection condition %+v, want False naming IST0102", c)
	}
	if !slices.ContainsFunc(d.Events, func(e Event) bool { return e.Kind == EventWarning && strings.Contains(e.Message, "IST0102") }) {
		t.Errorf("events %+v, want a warning naming IST0102", d.Events)
	}
	ok := Next(v1alpha1.RolloutStatus{}, spec(), Observation{Generation: 1, Preflight: &PreflightReport{}}, t0)
	if c := meta.FindStatusCondition(ok.Status.Conditions, CondSidecarInjection); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("SidecarInjection condition %+v on a clean preflight, want True", c)
	}
}

// A check's window and whether it had data go into the status and come
// back out for the notifications unchanged.
func TestCheckStatusCarriesWindowAndNoData(t *testing.T) {
	since := t0.Add(-42 * time.Second)
	in := []analysis.CheckResult{
		{Check: "error-rate", Kind: analysis.KindErrorRate, Source: "prometheus", Verdict: analysis.Inconclusive, NoData: true, Since: since},
		{Check: "orders-ok", Kind: analysis.KindCustom, Source: "prometheus", Verdict: analysis.Pass},
	}
	sts := checkStatuses(in)
	if sts[0].Since == nil || !sts[0].Since.Time.Equal(since) || !sts[0].NoData {
		t.Errorf("status %+v, want noData and since %s", sts[0], since)
	}
	if sts[1].Since != nil || sts[1].NoData {
		t.Errorf("custom check status %+v, want no window and data", sts[1])
	}
	for i, st := range sts {
		if got := CheckResultOf(st); !got.Since.Equal(in[i].Since) || got.NoData != in[i].NoData {
			t.Errorf("check %s back from the status: since %s noData %v, want %s %v", st.Check, got.Since, got.NoData, in[i].Since, in[i].NoData)
		}
	}
}
