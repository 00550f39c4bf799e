package e2e

// The data plane in the loop (#16): the mesh simulator's sidecars take
// their routes from istiod over xDS, and serin, run with --istiod-url,
// follows every weight it writes into the proxies.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/notify"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// Every step's weight is confirmed in the proxies after it was written,
// and the next step's dwell counts from that confirmation.
func TestDataPlaneConfirmsEachStep(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.startController()
	log := e.watchWeights("primary")
	e.rollout("steps", analysed(3*time.Second, nil))
	ro := e.waitPhase("steps", v1alpha1.PhaseSucceeded, 90*time.Second)
	e.eventually(10*time.Second, "the proxies to carry 100%", func() (bool, string) {
		ro = e.get("steps")
		dp := ro.Status.DataPlane
		return dp != nil && dp.Weight == 100 && dp.ConfirmedAt != nil, fmt.Sprintf("%+v", dp)
	})
	if ro.Status.DataPlane.Proxies < 1 {
		t.Errorf("confirmed on %d proxies, want at least frontend's", ro.Status.DataPlane.Proxies)
	}
	var steps []v1alpha1.Transition
	for _, h := range ro.Status.History {
		if h.Reason == "Started" || h.Reason == "StepAdvanced" {
			steps = append(steps, h)
		}
	}
	if len(steps) != 3 {
		t.Fatalf("steps in history: %+v, want Started and two StepAdvanced", steps)
	}
	for i, h := range steps {
		w := v1alpha1.DefaultSteps[i]
		if h.DataPlaneConfirmedAt == nil {
			t.Errorf("step %d (%d%%) has no dataPlaneConfirmedAt", i+1, w)
			continue
		}
		written, ok := log.since(w, h.Time.Time)
		if !ok || h.DataPlaneConfirmedAt.Time.Before(written) {
			t.Errorf("step %d (%d%%): confirmed in the proxies at %v, before the VirtualService had it (%v, seen %v)",
				i+1, w, h.DataPlaneConfirmedAt.Time, written, ok)
		}
		if i+1 < len(steps) {
			if next := steps[i+1].Time.Time; next.Before(h.DataPlaneConfirmedAt.Time.Add(3 * time.Second).Truncate(time.Second)) {
				t.Errorf("step %d began at %v, less than a dwell (3 s) after the proxies had step %d (%v)",
					i+2, next, i+1, h.DataPlaneConfirmedAt.Time)
			}
		}
	}
	// What the proxies route is what serin wrote: each one routing
	// checkout has the last weight.
	e.eventually(10*time.Second, "every proxy routing checkout to have 0/100", func() (bool, string) {
		return proxiesCarry(e.sim, e.host(), 100)
	})
}

// proxiesCarry reports whether every simulated proxy that routes host
// sends canary% of its route "primary" to subset v2, as istiod sent it.
func proxiesCarry(sim *meshsim.Sim, host string, canary int32) (bool, string) {
	var seen []string
	ok, n := true, 0
	for _, p := range sim.Proxies() {
		var v2, total int32
		for _, c := range p.WeightedClusters[host] {
			if c.Route != "primary" {
				continue
			}
			total += c.Weight
			if c.Subset == "v2" {
				v2 += c.Weight
			}
		}
		if total == 0 {
			continue // does not route host
		}
		n++
		if v2*100/total != canary {
			ok = false
		}
		seen = append(seen, fmt.Sprintf("%s: %d/%d", p.Workload, v2, total))
	}
	return ok && n > 0, strings.Join(seen, "; ")
}

// A rollback is notified once the proxies have 100/0: its
// dataPlaneConfirmedAt is after the VirtualService write and before the
// notification, which says on how many proxies and how soon.
func TestDataPlaneRollbackConfirmedBeforeNotified(t *testing.T) {
	e := newMeshEnv(t, 100, "")
	rc := newHookReceiver(t, nil)
	withNotify(e.env, notifyChannel{name: "hook", typ: notify.TypeWebhook, events: []rollout.EventKind{rollout.EventRolledBack}, rc: rc, key: "k3y-0123456789abcdef"})
	p := e.startController()
	log := e.watchWeights("primary")
	e.rollout("bad", analysed(30*time.Second, nil))
	e.waitPhase("bad", v1alpha1.PhaseProgressing, 20*time.Second)
	e.fault("v2", meshsim.Fault{ErrorRate: 0.5})
	ro := e.waitPhase("bad", v1alpha1.PhaseRolledBack, 60*time.Second)
	e.eventually(15*time.Second, "the rollback notification", func() (bool, string) { return len(rc.got()) > 0, "" })
	hit := rc.got()[0]
	var payload notify.WebhookPayload
	must(t, json.Unmarshal(hit.body, &payload))
	ro = e.get("bad")
	dp := ro.Status.DataPlane
	if dp == nil || dp.Weight != 0 || dp.ConfirmedAt == nil {
		t.Fatalf("status.dataPlane %+v, want 0%% confirmed", dp)
	}
	written, ok := log.since(0, ro.Status.History[len(ro.Status.History)-1].Time.Time)
	switch {
	case !ok:
		t.Errorf("the VirtualService never went back to 100/0: %v", log.get())
	case dp.ConfirmedAt.Time.Before(written):
		t.Errorf("dataPlaneConfirmedAt %v is before the VirtualService write was seen (%v)", dp.ConfirmedAt.Time, written)
	case !dp.ConfirmedAt.Time.Before(hit.at):
		t.Errorf("dataPlaneConfirmedAt %v is not before the notification arrived (%v)", dp.ConfirmedAt.Time, hit.at)
	}
	if payload.DataPlane == nil || payload.DataPlane.ConfirmedAt == nil || payload.DataPlane.Proxies < 1 || payload.DataPlane.SecondsAfterDecision == nil {
		t.Fatalf("payload's dataPlane %+v, want proxies, confirmedAt and seconds after the decision", payload.DataPlane)
	}
	t.Logf("status.dataPlane %+v; notified at %v: %s", dp, hit.at, payload.Text)
	want := fmt.Sprintf("Traffic off the canary on all %d proxies", payload.DataPlane.Proxies)
	if payload.DataPlane.Proxies == 1 {
		want = "Traffic off the canary on the only proxy"
	}
	if !strings.Contains(payload.Text, want) || !strings.Contains(payload.Text, "after the decision") {
		t.Errorf("notification text %q does not say %q ... after the decision", payload.Text, want)
	}
	for _, h := range ro.Status.History {
		if strings.HasPrefix(h.To, "RolledBack") && h.DataPlaneConfirmedAt == nil {
			t.Errorf("the rollback's transition has no dataPlaneConfirmedAt: %+v", h)
		}
	}
	e.eventually(5*time.Second, "serin_rollback_dataplane_seconds on /metrics", func() (bool, string) {
		return strings.Contains(httpGet(t, "http://"+p.addr+"/metrics"), "serin_rollback_dataplane_seconds_count 1"), ""
	})
}

// A proxy that stops acknowledging holds the rollout, named in the reason;
// once it takes the routes again, the rollout resumes by itself.
func TestDataPlaneFrozenProxyHoldsTheRollout(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.extraArgs = append(e.extraArgs, "--dataplane-timeout", "3s")
	e.startController()
	e.rollout("frozen", analysed(4*time.Second, nil))
	e.waitPhase("frozen", v1alpha1.PhaseProgressing, 20*time.Second)
	e.eventually(20*time.Second, "step 1 confirmed in the proxies", func() (bool, string) {
		dp := e.get("frozen").Status.DataPlane
		return dp != nil && dp.Weight == 10 && dp.ConfirmedAt != nil, fmt.Sprintf("%+v", dp)
	})
	must(t, e.sim.SetProxyFrozen("frontend-v1", true))
	ro := e.waitPhase("frozen", v1alpha1.PhasePaused, 30*time.Second)
	if ro.Status.CanaryWeight != 25 || ro.Spec.Paused {
		t.Errorf("held at %d%% (spec.paused %v), want the 25%% step held by serin, not a person's pause", ro.Status.CanaryWeight, ro.Spec.Paused)
	}
	t.Logf("held: %s", ro.Status.Message)
	if !strings.Contains(ro.Status.Message, "frontend-v1") || !strings.Contains(ro.Status.Message, "proxies") {
		t.Errorf("message %q does not name the frozen proxy", ro.Status.Message)
	}
	if dp := ro.Status.DataPlane; dp == nil || !slices.ContainsFunc(dp.Stragglers, func(s string) bool { return strings.Contains(s, "frontend-v1") }) {
		t.Errorf("status.dataPlane %+v does not list frontend-v1 as a straggler", ro.Status.DataPlane)
	}
	must(t, e.sim.SetProxyFrozen("frontend-v1", false))
	e.waitPhase("frozen", v1alpha1.PhaseSucceeded, 90*time.Second)
}

// istiod stopped mid-rollout: the weights hold, the rollout is held with a
// reason, and it resumes when istiod is back.
func TestDataPlaneIstiodStopped(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.startController()
	e.rollout("cp", analysed(3*time.Second, nil))
	e.eventually(30*time.Second, "step 2 confirmed in the proxies", func() (bool, string) {
		dp := e.get("cp").Status.DataPlane
		return dp != nil && dp.Weight == 25 && dp.ConfirmedAt != nil, fmt.Sprintf("%+v", dp)
	})
	must(t, st.StopIstiod())
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = st.StartIstiod(e.ctx)
		}
	})
	ro := e.waitPhase("cp", v1alpha1.PhasePaused, 20*time.Second)
	if !strings.Contains(ro.Status.Message, "istiod") {
		t.Errorf("held with message %q, want it to say istiod cannot be asked", ro.Status.Message)
	}
	// Held: nothing moves while istiod is away, past a whole dwell.
	time.Sleep(5 * time.Second)
	ro = e.get("cp")
	if s, c := weights(e.vs(), "primary"); ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CanaryWeight != 25 || c != 25 || s != 75 {
		t.Errorf("with istiod away: %s at %d%%, route %d/%d; want held at 25%%, route 75/25", ro.Status.Phase, ro.Status.CanaryWeight, s, c)
	}
	must(t, st.StartIstiod(e.ctx))
	restarted = true
	e.waitPhase("cp", v1alpha1.PhaseSucceeded, 90*time.Second)
}
