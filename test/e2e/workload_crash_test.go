package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// releasePhase names where a delivered workload is, from the Rollout and
// the copies, for the crash test: the phases of a release in order.
func (e *meshEnv) releasePhase(name string) string {
	ro := e.get(name)
	st, w := ro.Status, ro.Status.Workload
	switch {
	case w == nil || w.AdoptedAt == nil:
		if e.exists("checkout-stable") {
			return "adoption"
		}
		return ""
	case w.Release == "":
		return "adopted"
	case w.Done:
		return "done"
	case st.Phase == v1alpha1.PhasePending:
		return "canary scale-up"
	case st.Phase == v1alpha1.PhaseProgressing:
		return fmt.Sprintf("step %d", st.CurrentStep)
	case st.Phase == v1alpha1.PhaseSucceeded && w.StableRevision != w.Release:
		return "promotion"
	case st.Phase == v1alpha1.PhaseSucceeded:
		return "scale-down"
	}
	return string(st.Phase)
}

func (e *env) exists(deployment string) bool {
	e.t.Helper()
	out := e.kubectl("get", "deployments", "-o", "name")
	return strings.Contains(out, "deployment.apps/"+deployment+"\n")
}

// TestWorkloadKillAtEveryPhaseConverges: the controller is killed with
// SIGKILL once in each phase of a release (adoption, canary scale-up,
// each step, promotion, scale-down) and started again. The release still
// ends Succeeded, once, with the route at 100/0 on the new stable and no
// request sent to a pod that was not ready.
func TestWorkloadKillAtEveryPhaseConverges(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	d := e.workloadDeployment()
	// Slow pods give every phase time to be seen and crashed in.
	d.Spec.Template.Annotations["meshsim.serin.dev/start-delay"] = "3s"
	must(t, e.c.Update(e.ctx, d))
	e.eventually(30*time.Second, "the team's Deployment ready", func() (bool, string) {
		d := e.deployment("checkout")
		return d.Status.ReadyReplicas == 2 && d.Status.UpdatedReplicas == 2 && d.Status.Replicas == 2, fmt.Sprintf("%+v", d.Status)
	})
	time.Sleep(time.Second)
	before := e.sim.UnreadyRequests().Total

	p := e.startController()
	e.rollout("checkout", func(r *v1alpha1.Rollout) {
		r.Spec.StableSubset, r.Spec.CanarySubset = "", ""
		r.Spec.Workload = &v1alpha1.WorkloadRef{Deployment: "checkout"}
		r.Spec.ProgressDeadline = dur(time.Minute)
		analysed(4*time.Second, nil)(r)
	})
	want := []string{"adoption", "canary scale-up", "step 0", "step 1", "step 2", "promotion", "scale-down"}
	var killed []string
	imageSet := false
	deadline := time.Now().Add(150 * time.Second)
	for time.Now().Before(deadline) {
		ph := e.releasePhase("checkout")
		if ph == "adopted" && !imageSet {
			e.kubectl("set", "image", "deployment/checkout", "checkout=shop/checkout:2")
			imageSet = true
		}
		if ph == "done" {
			break
		}
		if slices.Contains(want, ph) && !slices.Contains(killed, ph) {
			p.kill()
			killed = append(killed, ph)
			t.Logf("killed the controller in phase %q", ph)
			p = e.startController()
		}
		time.Sleep(20 * time.Millisecond)
	}
	ro := e.waitRelease("checkout", 1, 60*time.Second)
	if !slices.Equal(killed, want) {
		t.Errorf("killed in phases %v, want each of %v (a phase passed unseen)", killed, want)
	}
	if n := len(ro.Status.Releases); n != 1 || ro.Status.Releases[0].Outcome != string(v1alpha1.PhaseSucceeded) {
		t.Fatalf("releases %+v, want one, Succeeded", ro.Status.Releases)
	}
	var adoptions, starts int
	for _, h := range ro.Status.History {
		switch h.Reason {
		case rollout.ReasonAdopted:
			adoptions++
		case rollout.ReasonReleaseStarted:
			starts++
		}
	}
	if adoptions != 1 || starts != 1 {
		t.Errorf("%d adoptions and %d release starts in the history, want one each: %+v", adoptions, starts, ro.Status.History)
	}
	e.assertServingStable("shop/checkout:2")
	if n := e.sim.UnreadyRequests().Total - before; n != 0 {
		t.Errorf("%d requests went to pods that were not ready: %+v", n, e.sim.UnreadyRequests())
	}
}
