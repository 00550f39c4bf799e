package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// The end-to-end tests of issue #9: the sequential analysis on the real
// stack, with traffic whose errors are drawn at random as real traffic's
// are.

// A canary identical to stable, both with a realistic 0.5% of background
// errors, is promoted: errors that are as likely on either side are no
// evidence against the canary, however often they are looked at.
func TestSequentialBackgroundErrorsArePromoted(t *testing.T) {
	e := newMeshEnvWith(t, meshsim.Options{RPS: 50, Seed: 9,
		BackgroundErrorRate: map[string]float64{"checkout/v1": 0.005, "checkout/v2": 0.005}}, "")
	e.startController()
	e.rollout("aa", analysed(8*time.Second, nil))
	ro, _ := e.watchChecks("aa", 150*time.Second)
	if ro.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("a canary identical to stable ended %s: %s", ro.Status.Phase, ro.Status.Message)
	}
}

// A second Rollout created right after a rolled-back one, on the same
// canary, is judged on its own traffic only: the predecessor's errors are
// before its analysis began.
func TestSequentialSuccessorJudgedOnItsOwnTraffic(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.fault("v2", meshsim.Fault{ErrorRate: 0.5})
	e.startController()
	e.rollout("first", analysed(30*time.Second, nil))
	e.waitPhase("first", v1alpha1.PhaseRolledBack, 60*time.Second)
	must(t, e.sim.SetFault("checkout", "v2", meshsim.Fault{}))
	e.rollout("second", analysed(6*time.Second, nil))
	ro, seen := e.watchChecks("second", 120*time.Second)
	if ro.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("the successor ended %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	for _, c := range seen {
		if c.Kind == "error-rate" && c.Hop == "" && c.Verdict == "Fail" {
			t.Errorf("the successor's inbound error-rate check failed: %s", c.Reason)
		}
	}
	// Status times have whole seconds: the successor's start is not before
	// its predecessor's rollback.
	rolledBack := e.get("first").Status.History[len(e.get("first").Status.History)-1].Time.Time
	if since := ro.Status.Analysis.Since; since == nil || since.Time.Before(rolledBack) {
		t.Errorf("the successor's analysis began at %v, want no earlier than its predecessor's rollback at %v", since, rolledBack)
	}
}

// Stable above the 1% SLO is said as such, and the canary is not blamed:
// with onStableViolation: Pause, the rollout pauses saying stable is above.
func TestSequentialStableAboveSLO(t *testing.T) {
	e := newMeshEnvWith(t, meshsim.Options{RPS: 200, Seed: 15,
		BackgroundErrorRate: map[string]float64{"checkout/v1": 0.015, "checkout/v2": 0.015}}, "")
	e.startController()
	e.rollout("stable-slo", analysed(10*time.Minute, func(a *v1alpha1.AnalysisSpec) {
		a.OnStableViolation = v1alpha1.OnStableViolationPause
	}))
	var ro *v1alpha1.Rollout
	e.eventually(4*time.Minute, "the rollout to pause for stable's SLO", func() (bool, string) {
		ro = e.get("stable-slo")
		return ro.Status.Phase == v1alpha1.PhasePaused || ro.Status.Phase.Terminal(),
			fmt.Sprintf("%s: %s", ro.Status.Phase, ro.Status.Analysis.LastReason)
	})
	if ro.Status.Phase != v1alpha1.PhasePaused || !strings.Contains(ro.Status.Message, "stable is above its SLO") ||
		!strings.Contains(ro.Status.Message, "1% SLO") {
		t.Fatalf("ended %s: %q; want a pause saying stable is above the 1%% SLO", ro.Status.Phase, ro.Status.Message)
	}
	for _, c := range ro.Status.Analysis.Checks {
		if c.Verdict == "Fail" && !c.DryRun {
			t.Errorf("a check failed the canary for stable's errors: %s", c.Reason)
		}
	}
}

// A canary that calls payments five times per request, with no added
// latency or errors, is rolled back, and the message names the hop and
// the factor.
func TestSequentialCallAmplificationRollsBack(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.fault("v2", meshsim.Fault{DownstreamCalls: 5})
	e.startController()
	e.rollout("calls", analysed(30*time.Second, func(a *v1alpha1.AnalysisSpec) {
		a.Traces = &v1alpha1.TraceChecks{Disabled: true} // the metrics alone must see it
	}))
	ro := e.waitPhase("calls", v1alpha1.PhaseRolledBack, 90*time.Second)
	for _, want := range []string{"call-rate on checkout → payments failed", "calls per request", "vs 1 on stable (×"} {
		if !strings.Contains(ro.Status.Message, want) {
			t.Errorf("rollback message %q does not contain %q", ro.Status.Message, want)
		}
	}
}
