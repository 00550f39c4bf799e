package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestDataPlaneUpdate(t *testing.T) {
	written := t0
	pending := &v1alpha1.DataPlaneStatus{Weight: 25, FromWeight: 10, WrittenAt: metav1.NewMicroTime(written)}
	confirmed := pending.DeepCopy()
	confirmed.ConfirmedAt = ptrMicro(t0.Add(time.Second))
	down := errors.New("dial tcp 127.0.0.1:15010: connection refused")
	tests := []struct {
		name       string
		dp         *v1alpha1.DataPlaneStatus
		applied    int32
		rep        DataPlaneReport
		err        error
		confirmed  bool
		stragglers []string
		msg        string
		writtenAt  time.Time
	}{
		{"nothing followed yet: starts now", nil, 25, DataPlaneReport{Proxies: 3, Stragglers: []string{"a"}}, nil, false, []string{"a"}, "1 of 3 proxies", t0.Add(2 * time.Second)},
		{"every proxy has it", pending, 25, DataPlaneReport{Proxies: 3}, nil, true, nil, "", written},
		{"no proxy routes the service: nothing to wait for", pending, 25, DataPlaneReport{}, nil, true, nil, "", written},
		{"stragglers named", pending, 25, DataPlaneReport{Proxies: 12, Stragglers: []string{"sidecar~10.0.0.1~a.shop~shop.svc.cluster.local", "b"}}, nil, false,
			[]string{"sidecar~10.0.0.1~a.shop~shop.svc.cluster.local", "b"}, "2 of 12 proxies do not carry canary weight 25%", written},
		{"each straggler says why it lags", pending, 25, DataPlaneReport{Proxies: 12, Stragglers: []string{"a", "b"}, Lag: []string{"its routes send 10%", "not acknowledged"}}, nil, false,
			[]string{"a", "b"}, "2 of 12 proxies do not carry canary weight 25% yet: a (its routes send 10%), b (not acknowledged)", written},
		{"istiod down: not confirmed, says why", pending, 25, DataPlaneReport{}, down, false, nil, "connection refused", written},
		{"a confirmation stands when istiod goes away", confirmed, 25, DataPlaneReport{}, down, true, nil, "", written},
		{"another weight starts over", confirmed, 50, DataPlaneReport{Proxies: 3, Stragglers: []string{"a"}}, nil, false, []string{"a"}, "canary weight 50%", t0.Add(2 * time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before *v1alpha1.DataPlaneStatus
			if tc.dp != nil {
				before = tc.dp.DeepCopy()
			}
			got := dataPlaneUpdate(tc.dp, tc.applied, tc.rep, tc.err, t0.Add(2*time.Second))
			if (got.ConfirmedAt != nil) != tc.confirmed {
				t.Errorf("confirmed %v, want %v", got.ConfirmedAt, tc.confirmed)
			}
			if strings.Join(got.Stragglers, ",") != strings.Join(tc.stragglers, ",") {
				t.Errorf("stragglers %v, want %v", got.Stragglers, tc.stragglers)
			}
			if !strings.Contains(got.Message, tc.msg) || (tc.msg == "" && got.Message != "") {
				t.Errorf("message %q, want it to say %q", got.Message, tc.msg)
			}
			if !got.WrittenAt.Time.Equal(tc.writtenAt) || got.Weight != tc.applied {
				t.Errorf("following weight %d written at %v, want %d at %v", got.Weight, got.WrittenAt, tc.applied, tc.writtenAt)
			}
			if tc.dp != nil && !equality.Semantic.DeepEqual(tc.dp, before) {
				t.Errorf("the input was modified")
			}
		})
	}
	many := make([]string, 30)
	for i := range many {
		many[i] = string(rune('a' + i%26))
	}
	if got := dataPlaneUpdate(pending, 25, DataPlaneReport{Proxies: 40, Stragglers: many}, nil, t0); len(got.Stragglers) != v1alpha1.MaxStragglers {
		t.Errorf("%d stragglers recorded, want at most %d", len(got.Stragglers), v1alpha1.MaxStragglers)
	}
}

func TestStampTransition(t *testing.T) {
	hist := []v1alpha1.Transition{
		{Time: metav1.NewTime(t0), Reason: "Started"},
		{Time: metav1.NewTime(t0.Add(10 * time.Second)), Reason: "StepAdvanced"},
		{Time: metav1.NewTime(t0.Add(20 * time.Second)), Reason: "Paused"},
	}
	dp := &v1alpha1.DataPlaneStatus{Weight: 25, WrittenAt: metav1.NewMicroTime(t0.Add(11 * time.Second)), ConfirmedAt: ptrMicro(t0.Add(12 * time.Second))}
	stampTransition(hist, dp)
	if hist[1].DataPlaneConfirmedAt == nil || !hist[1].DataPlaneConfirmedAt.Time.Equal(t0.Add(12*time.Second)) {
		t.Errorf("the step that set the weight is stamped %v, want %v", hist[1].DataPlaneConfirmedAt, dp.ConfirmedAt)
	}
	if hist[0].DataPlaneConfirmedAt != nil || hist[2].DataPlaneConfirmedAt != nil {
		t.Errorf("other transitions stamped: %+v", hist)
	}
}

// followed is a status at step 1 (25%) whose weight was written at
// written, as the engine records it, confirmed at confirmed (nil: not).
func followed(written time.Time, confirmed *metav1.MicroTime) v1alpha1.RolloutStatus {
	st := at(1, written)
	st.DataPlane = &v1alpha1.DataPlaneStatus{Weight: 25, FromWeight: 10, WrittenAt: metav1.NewMicroTime(written), ConfirmedAt: confirmed}
	return st
}

func withDataPlane(o Observation, unreachable string) Observation {
	o.DataPlane = &DataPlaneObservation{Timeout: 10 * time.Second, Unreachable: unreachable}
	return o
}

// The dwell of a step starts when the proxies have its weight, and a step
// never advances on a weight the proxies do not carry.
func TestNextDwellWaitsForTheDataPlane(t *testing.T) {
	sp := spec() // 10 s steps
	st := passed(followed(t0, nil), 3)
	obs := withDataPlane(withResult(live(25), analysis.Pass, "ok"), "")
	d := Next(st, sp, obs, t0.Add(9*time.Second))
	if d.Status.CurrentStep != 1 || d.Status.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("%s at step %d before the proxies have the weight, want Progressing at step 1 waiting", d.Status.Phase, d.Status.CurrentStep)
	}
	// Confirmed at 9 s: a whole dwell from then, not from the write.
	st = d.Status
	st.DataPlane.ConfirmedAt = ptrMicro(t0.Add(9 * time.Second))
	if d := Next(st, sp, obs, t0.Add(15*time.Second)); d.Status.CurrentStep != 1 {
		t.Errorf("advanced to step %d 6 s after the proxies had the weight, want a whole 10 s dwell", d.Status.CurrentStep)
	}
	if d := Next(st, sp, obs, t0.Add(20*time.Second)); d.Status.CurrentStep != 2 {
		t.Errorf("at step %d 11 s after the proxies had the weight, want step 2", d.Status.CurrentStep)
	}
	// Without a DataPlane the engine does not follow the proxies, and a
	// stale status.dataPlane does not hold the step.
	if d := Next(st, sp, withResult(live(25), analysis.Pass, "ok"), t0.Add(11*time.Second)); d.Status.CurrentStep != 2 {
		t.Errorf("without a data plane: step %d, want 2", d.Status.CurrentStep)
	}
}

func TestNextHoldsForTheDataPlane(t *testing.T) {
	sp := spec()
	pending := followed(t0, nil)
	pending.DataPlane.Proxies = 12
	pending.DataPlane.Stragglers = []string{"sidecar~10.128.0.7~frontend-v1-0.shop~shop.svc.cluster.local"}
	pending.DataPlane.Message = "1 of 12 proxies do not carry canary weight 25% yet: sidecar~10.128.0.7~frontend-v1-0.shop~shop.svc.cluster.local"
	obs := withDataPlane(withResult(live(25), analysis.Pass, "ok"), "")

	// Within the bound: waiting, not held.
	if d := Next(pending, sp, obs, t0.Add(5*time.Second)); d.Status.Phase != v1alpha1.PhaseProgressing {
		t.Errorf("held %v within the bound, want Progressing", d.Status.Phase)
	}
	// Past it: held, naming the straggler, weights unchanged, no spec pause.
	d := Next(pending, sp, obs, t0.Add(10*time.Second))
	if d.Status.Phase != v1alpha1.PhasePaused || d.Pause || d.Status.CanaryWeight != 25 {
		t.Fatalf("phase %s pause %v weight %d, want Paused by serin with 25%% held", d.Status.Phase, d.Pause, d.Status.CanaryWeight)
	}
	if !strings.Contains(d.Status.Message, "frontend-v1-0.shop") || !strings.Contains(d.Status.Message, "within 10s") {
		t.Errorf("message %q does not name the straggler and the bound", d.Status.Message)
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, CondDataPlane); c == nil || c.Status != metav1.ConditionFalse || c.Reason != reasonDataPlaneUnconfirmed {
		t.Errorf("DataPlane condition %+v, want False %s", c, reasonDataPlaneUnconfirmed)
	}
	// Still behind: stays held. A failing canary is still rolled back.
	held := d.Status
	if d := Next(held, sp, obs, t0.Add(12*time.Second)); d.Status.Phase != v1alpha1.PhasePaused {
		t.Errorf("phase %s while still behind, want Paused", d.Status.Phase)
	}
	if d := Next(held, sp, withDataPlane(withResult(live(25), analysis.Fail, "error rate"), ""), t0.Add(12*time.Second)); d.Status.Phase != v1alpha1.PhaseRolledBack || d.Status.CanaryWeight != 0 {
		t.Errorf("a failing canary held for the data plane: %s at %d%%, want RolledBack at 0%%", d.Status.Phase, d.Status.CanaryWeight)
	}
	// The proxies catch up: resumed by itself.
	held.DataPlane.ConfirmedAt = ptrMicro(t0.Add(13 * time.Second))
	d = Next(held, sp, obs, t0.Add(14*time.Second))
	if d.Status.Phase != v1alpha1.PhaseProgressing || d.Status.CanaryWeight != 25 {
		t.Errorf("phase %s at %d%% once the proxies have the weight, want Progressing at 25%%", d.Status.Phase, d.Status.CanaryWeight)
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, CondDataPlane); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("DataPlane condition %+v after resuming, want True", c)
	}
	// A person's pause is theirs: a hold does not take it over.
	sp.Paused = true
	if d := Next(pending, sp, obs, t0.Add(10*time.Second)); d.Status.Phase != v1alpha1.PhasePaused || strings.Contains(d.Status.Message, "proxies") {
		t.Errorf("paused by a person: %s %q, want the person's pause", d.Status.Phase, d.Status.Message)
	}
}

// istiod stopped mid-rollout: the weights hold, the rollout is held with
// a reason, and it resumes when istiod is back.
func TestNextHoldsWhileIstiodIsDown(t *testing.T) {
	sp := spec()
	st := passed(followed(t0, ptrMicro(t0.Add(time.Second))), 3)
	down := withDataPlane(withResult(live(25), analysis.Pass, "ok"), "control plane unreachable: connection refused")
	d := Next(st, sp, down, t0.Add(20*time.Second))
	if d.Status.Phase != v1alpha1.PhasePaused || d.Status.CanaryWeight != 25 || d.Status.CurrentStep != 1 || d.Pause {
		t.Fatalf("%s step %d at %d%% (spec pause %v), want held at step 1, 25%%", d.Status.Phase, d.Status.CurrentStep, d.Status.CanaryWeight, d.Pause)
	}
	if !strings.Contains(d.Status.Message, "istiod") || !strings.Contains(d.Status.Message, "connection refused") {
		t.Errorf("message %q does not say istiod is unreachable and why", d.Status.Message)
	}
	back := withDataPlane(withResult(live(25), analysis.Pass, "ok"), "")
	if d := Next(d.Status, sp, back, t0.Add(22*time.Second)); d.Status.Phase != v1alpha1.PhaseProgressing {
		t.Errorf("phase %s with istiod back, want Progressing", d.Status.Phase)
	}
}
