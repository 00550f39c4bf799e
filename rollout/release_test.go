package rollout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

var (
	relT0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	relW  = Workload{Namespace: "shop", Deployment: "checkout"}
)

func track(rev string, n, ready int32) TrackState {
	return TrackState{Exists: true, Revision: rev, Replicas: n, Ready: ready}
}

func adoptedStatus(stable string) v1alpha1.RolloutStatus {
	return v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePending, CurrentStep: -1,
		Workload: &v1alpha1.WorkloadStatus{AdoptedAt: &metav1.Time{Time: relT0}, Replicas: 2, StableRevision: stable}}
}

func running(st v1alpha1.RolloutStatus, rev string, phase v1alpha1.Phase) v1alpha1.RolloutStatus {
	st.Phase = phase
	st.Workload.Release, st.Workload.ReleaseStartedAt = rev, &metav1.Time{Time: relT0}
	st.Releases = append(st.Releases, v1alpha1.Release{Revision: rev, StartedAt: metav1.Time{Time: relT0}})
	return st
}

func decideRelease(st v1alpha1.RolloutStatus, ws WorkloadState, now time.Time) ReleaseDecision {
	spec := v1alpha1.RolloutSpec{VirtualService: "checkout", Workload: &v1alpha1.WorkloadRef{Deployment: "checkout"},
		ProgressDeadline: &metav1.Duration{Duration: time.Minute}}
	return NextRelease(st, spec, ReleaseObservation{Workload: relW, State: ws}, now)
}

func actions(d ReleaseDecision) string {
	var out []string
	for _, a := range d.Actions {
		switch a.Kind {
		case ActionSetTrack:
			out = append(out, fmt.Sprintf("SetTrack %s %s×%d", a.Track, a.Revision, a.Replicas))
		case ActionSelectCanary:
			out = append(out, fmt.Sprintf("SelectCanary %s", a.Track))
		default:
			out = append(out, string(a.Kind))
		}
	}
	return strings.Join(out, "; ")
}

func TestNextRelease(t *testing.T) {
	later := relT0.Add(2 * time.Minute)
	cases := []struct {
		name        string
		st          v1alpha1.RolloutStatus
		ws          WorkloadState
		now         time.Time
		wantActions string
		wantPhase   v1alpha1.Phase
		wantProceed bool
		wantMsg     string
		check       func(t *testing.T, d ReleaseDecision)
	}{{
		name: "adoption starts the stable copy with the workload's template and replicas",
		ws:   WorkloadState{Revision: "r1", Replicas: 3}, now: relT0,
		wantActions: "SetTrack stable r1×3", wantPhase: v1alpha1.PhasePending, wantMsg: "waiting for checkout-stable",
	}, {
		name: "adoption moves the route only once the stable copy is ready",
		st:   v1alpha1.RolloutStatus{Workload: &v1alpha1.WorkloadStatus{Replicas: 3, ReleaseStartedAt: &metav1.Time{Time: relT0}}},
		ws:   WorkloadState{Revision: "r1", Replicas: 3, Stable: track("r1", 3, 2)}, now: relT0.Add(time.Second),
		wantActions: "", wantPhase: v1alpha1.PhasePending, wantMsg: "2/3",
	}, {
		name: "a ready stable copy is adopted: the route goes to it, the workload keeps its pods this tick",
		st:   v1alpha1.RolloutStatus{Workload: &v1alpha1.WorkloadStatus{Replicas: 3, ReleaseStartedAt: &metav1.Time{Time: relT0}}},
		ws:   WorkloadState{Revision: "r1", Replicas: 3, Stable: track("r1", 3, 3)}, now: relT0.Add(time.Second),
		wantActions: "AdoptRoute", wantPhase: v1alpha1.PhasePending, wantMsg: "adopted deployment shop/checkout",
		check: func(t *testing.T, d ReleaseDecision) {
			if w := d.Status.Workload; w.AdoptedAt == nil || w.StableRevision != "r1" || w.Release != "" {
				t.Errorf("workload status %+v, want adopted with stable r1 and no release", *w)
			}
		},
	}, {
		name: "a stable copy that never gets ready fails the adoption at the deadline, with nothing routed",
		st:   v1alpha1.RolloutStatus{Workload: &v1alpha1.WorkloadStatus{Replicas: 3, ReleaseStartedAt: &metav1.Time{Time: relT0}}},
		ws:   WorkloadState{Revision: "r1", Replicas: 3, Stable: track("r1", 3, 0)}, now: later,
		wantActions: "", wantPhase: v1alpha1.PhaseFailed, wantMsg: "cannot adopt",
	}, {
		name: "after adoption the workload is scaled down, its count kept for the copies",
		st:   adoptedStatus("r1"),
		ws:   WorkloadState{Revision: "r1", Replicas: 4, Stable: track("r1", 2, 2)}, now: relT0,
		wantActions: "SetTrack stable r1×4", wantPhase: v1alpha1.PhasePending,
		check: func(t *testing.T, d ReleaseDecision) {
			if d.Status.Workload.Replicas != 4 {
				t.Errorf("replicas %d, want 4", d.Status.Workload.Replicas)
			}
		},
	}, {
		name: "the workload is scaled to zero once the stable copy runs its count",
		st:   adoptedStatus("r1"),
		ws:   WorkloadState{Revision: "r1", Replicas: 2, Stable: track("r1", 2, 2)}, now: relT0,
		wantActions: "ScaleWorkload", wantPhase: v1alpha1.PhasePending,
	}, {
		name: "no release while the template is the stable one",
		st:   adoptedStatus("r1"),
		ws:   WorkloadState{Revision: "r1", Stable: track("r1", 2, 2)}, now: relT0,
		wantActions: "", wantPhase: v1alpha1.PhasePending,
	}, {
		name: "a new template starts a release: the canary copy runs it",
		st:   adoptedStatus("r1"),
		ws:   WorkloadState{Revision: "r2", Images: map[string]string{"checkout": "shop/checkout:2"}, Stable: track("r1", 2, 2)}, now: relT0,
		wantActions: "SetTrack canary r2×2", wantPhase: v1alpha1.PhasePending, wantMsg: "release of revision r2 (checkout=shop/checkout:2)",
		check: func(t *testing.T, d ReleaseDecision) {
			if n := len(d.Status.Releases); n != 1 || d.Status.Releases[0].Revision != "r2" || d.Status.Workload.Release != "r2" {
				t.Errorf("releases %+v, workload %+v", d.Status.Releases, *d.Status.Workload)
			}
		},
	}, {
		name: "the release waits for its canary",
		st:   running(adoptedStatus("r1"), "r2", v1alpha1.PhasePending),
		ws:   WorkloadState{Revision: "r2", Stable: track("r1", 2, 2), Canary: track("r2", 2, 1)}, now: relT0.Add(time.Second),
		wantActions: "", wantPhase: v1alpha1.PhasePending, wantMsg: "1/2",
	}, {
		name: "a ready canary lets Next start the steps",
		st:   running(adoptedStatus("r1"), "r2", v1alpha1.PhasePending),
		ws:   WorkloadState{Revision: "r2", Stable: track("r1", 2, 2), Canary: track("r2", 2, 2)}, now: relT0.Add(time.Second),
		wantActions: "SelectCanary canary", wantPhase: v1alpha1.PhasePending, wantProceed: true,
	}, {
		name: "a canary never ready fails the release at progressDeadline, with no traffic sent",
		st:   running(adoptedStatus("r1"), "r2", v1alpha1.PhasePending),
		ws: WorkloadState{Revision: "r2", Stable: track("r1", 2, 2),
			Canary: TrackState{Exists: true, Revision: "r2", Replicas: 2, Stuck: "ProgressDeadlineExceeded"}}, now: later,
		wantActions: "", wantPhase: v1alpha1.PhaseFailed, wantMsg: "not ready within progressDeadline 1m0s (0/2 ready: ProgressDeadlineExceeded)",
	}, {
		name: "a template change mid-release supersedes it: traffic back to stable at once",
		st: func() v1alpha1.RolloutStatus {
			st := running(adoptedStatus("r1"), "r2", v1alpha1.PhaseProgressing)
			st.CanaryWeight, st.AppliedWeight, st.CurrentStep = 25, 25, 1
			return st
		}(),
		ws: WorkloadState{Revision: "r3", Stable: track("r1", 2, 2), Canary: track("r2", 2, 2)}, now: relT0.Add(time.Minute),
		wantActions: "", wantPhase: v1alpha1.PhaseAborted, wantMsg: "superseded by revision r3",
		check: func(t *testing.T, d ReleaseDecision) {
			if d.Status.CanaryWeight != 0 || d.Status.Releases[0].Outcome != OutcomeSuperseded {
				t.Errorf("weight %d, release %+v; want 0 and Superseded", d.Status.CanaryWeight, d.Status.Releases[0])
			}
		},
	}, {
		name: "a superseded release, once back on stable, scales its canary down and is done",
		st: func() v1alpha1.RolloutStatus {
			st := running(adoptedStatus("r1"), "r2", v1alpha1.PhaseAborted)
			st.Releases[0].Outcome = OutcomeSuperseded
			return st
		}(),
		ws: WorkloadState{Revision: "r3", Stable: track("r1", 2, 2), Canary: track("r2", 2, 2)}, now: relT0.Add(time.Minute),
		wantActions: "SelectCanary stable; SetTrack canary r2×0", wantPhase: v1alpha1.PhaseAborted, wantMsg: "was superseded",
		check: func(t *testing.T, d ReleaseDecision) {
			if !d.Status.Workload.Done || d.Status.Releases[0].Outcome != OutcomeSuperseded {
				t.Errorf("workload %+v release %+v", *d.Status.Workload, d.Status.Releases[0])
			}
		},
	}, {
		name: "success promotes: the stable copy takes the new revision while the canary serves",
		st: func() v1alpha1.RolloutStatus {
			st := running(adoptedStatus("r1"), "r2", v1alpha1.PhaseSucceeded)
			st.CanaryWeight, st.AppliedWeight = 100, 100
			return st
		}(),
		ws: WorkloadState{Revision: "r2", Stable: track("r1", 2, 2), Canary: track("r2", 2, 2)}, now: relT0.Add(time.Minute),
		wantActions: "SetTrack stable r2×2", wantPhase: v1alpha1.PhaseSucceeded, wantMsg: "promoting revision r2",
	}, {
		name: "once stable runs the new revision, the route goes back to 100/0 on it",
		st: func() v1alpha1.RolloutStatus {
			st := running(adoptedStatus("r1"), "r2", v1alpha1.PhaseSucceeded)
			st.CanaryWeight, st.AppliedWeight = 100, 100
			return st
		}(),
		ws: WorkloadState{Revision: "r2", Stable: track("r2", 2, 2), Canary: track("r2", 2, 2)}, now: relT0.Add(time.Minute),
		wantActions: "", wantPhase: v1alpha1.PhaseSucceeded, wantMsg: "new stable",
		check: func(t *testing.T, d ReleaseDecision) {
			if d.Status.CanaryWeight != 0 || d.Status.Workload.StableRevision != "r2" || d.Status.Workload.Done {
				t.Errorf("weight %d workload %+v; want 0, stable r2, not done until the route is back", d.Status.CanaryWeight, *d.Status.Workload)
			}
		},
	}, {
		name: "with the route back, the canary is scaled down and the release recorded",
		st: func() v1alpha1.RolloutStatus {
			st := running(adoptedStatus("r2"), "r2", v1alpha1.PhaseSucceeded)
			return st
		}(),
		ws: WorkloadState{Revision: "r2", Stable: track("r2", 2, 2), Canary: track("r2", 2, 2)}, now: relT0.Add(time.Minute),
		wantActions: "SelectCanary stable; SetTrack canary r2×0", wantPhase: v1alpha1.PhaseSucceeded, wantMsg: "revision r2 serves as stable",
		check: func(t *testing.T, d ReleaseDecision) {
			if r := d.Status.Releases[0]; r.Outcome != "Succeeded" || r.FinishedAt == nil || !d.Status.Workload.Done {
				t.Errorf("release %+v done %v", r, d.Status.Workload.Done)
			}
		},
	}, {
		name: "a rollback waits for the route to be back before scaling the canary down",
		st: func() v1alpha1.RolloutStatus {
			st := running(adoptedStatus("r1"), "r2", v1alpha1.PhaseRolledBack)
			st.AppliedWeight = 10
			return st
		}(),
		ws: WorkloadState{Revision: "r2", Stable: track("r1", 2, 2), Canary: track("r2", 2, 2)}, now: relT0.Add(time.Minute),
		wantActions: "", wantPhase: v1alpha1.PhaseRolledBack,
	}, {
		name: "the same template after a failed release starts nothing",
		st: func() v1alpha1.RolloutStatus {
			st := running(adoptedStatus("r1"), "r2", v1alpha1.PhaseRolledBack)
			st.Workload.Done = true
			return st
		}(),
		ws: WorkloadState{Revision: "r2", Stable: track("r1", 2, 2), Canary: track("r2", 0, 0)}, now: relT0.Add(time.Minute),
		wantActions: "", wantPhase: v1alpha1.PhaseRolledBack,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decideRelease(c.st, c.ws, c.now)
			if got := actions(d); got != c.wantActions {
				t.Errorf("actions %q, want %q", got, c.wantActions)
			}
			if d.Status.Phase != c.wantPhase || d.Proceed != c.wantProceed {
				t.Errorf("phase %s proceed %v, want %s %v (message %q)", d.Status.Phase, d.Proceed, c.wantPhase, c.wantProceed, d.Status.Message)
			}
			if !strings.Contains(d.Status.Message, c.wantMsg) {
				t.Errorf("message %q, want it to contain %q", d.Status.Message, c.wantMsg)
			}
			if c.check != nil {
				c.check(t, d)
			}
		})
	}
}

func TestNextReleaseRetryRunsAFailedReleaseAgain(t *testing.T) {
	st := running(adoptedStatus("r1"), "r2", v1alpha1.PhaseRolledBack)
	st.Workload.Done = true
	spec := v1alpha1.RolloutSpec{Workload: &v1alpha1.WorkloadRef{Deployment: "checkout"}}
	d := NextRelease(st, spec, ReleaseObservation{Workload: relW, Retry: &Request{By: "ana"},
		State: WorkloadState{Revision: "r2", Stable: track("r1", 2, 2)}}, relT0)
	if got := actions(d); got != "SetTrack canary r2×2" || d.Status.Workload.Release != "r2" || d.Status.Workload.Done {
		t.Fatalf("actions %q workload %+v, want the release of r2 started again", got, *d.Status.Workload)
	}
	if !strings.Contains(d.Status.Message, "retried by ana") || len(d.Unannotate) == 0 {
		t.Errorf("message %q unannotate %v", d.Status.Message, d.Unannotate)
	}
}

func TestReleasesAreBounded(t *testing.T) {
	st := adoptedStatus("r0")
	for i := 1; i <= v1alpha1.MaxReleases+5; i++ {
		st.Workload.Done = true
		d := decideRelease(st, WorkloadState{Revision: fmt.Sprintf("r%d", i), Stable: track(st.Workload.StableRevision, 2, 2)}, relT0)
		st = d.Status
	}
	if n := len(st.Releases); n != v1alpha1.MaxReleases || st.Releases[n-1].Revision != fmt.Sprintf("r%d", v1alpha1.MaxReleases+5) {
		t.Fatalf("%d releases, the last %q; want %d ending with the newest", n, st.Releases[len(st.Releases)-1].Revision, v1alpha1.MaxReleases)
	}
}

func TestNextReleaseChecksTheSidecarRules(t *testing.T) {
	gaps := WorkloadState{Revision: "r2", Stable: track("r1", 2, 2), SidecarGaps: []string{"CPU limit"}}
	d := decideRelease(adoptedStatus("r1"), gaps, relT0)
	if d.Status.Phase != v1alpha1.PhaseFailed || len(d.Actions) != 0 || !d.Status.Workload.Done ||
		!strings.Contains(d.Status.Message, "istio-proxy sidecar's CPU limit") || d.Status.Releases[0].Outcome != "Failed" {
		t.Fatalf("Require: phase %s actions %q done %v message %q releases %+v; want the release refused before any pod starts",
			d.Status.Phase, actions(d), d.Status.Workload.Done, d.Status.Message, d.Status.Releases)
	}
	spec := v1alpha1.RolloutSpec{Workload: &v1alpha1.WorkloadRef{Deployment: "checkout"},
		Preflight: &v1alpha1.PreflightSpec{SidecarResources: v1alpha1.SidecarResourcesWarn}}
	d = NextRelease(adoptedStatus("r1"), spec, ReleaseObservation{Workload: relW, State: gaps}, relT0)
	c := findCondition(d.Status.Conditions, CondSidecarResources)
	if d.Status.Phase != v1alpha1.PhasePending || actions(d) != "SetTrack canary r2×2" || c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("Warn: phase %s actions %q condition %+v; want the release started with the condition False", d.Status.Phase, actions(d), c)
	}
	off := WorkloadState{Revision: "r1", Replicas: 2, InjectionOff: "label sidecar.istio.io/inject=false"}
	d = decideRelease(v1alpha1.RolloutStatus{}, off, relT0)
	if d.Status.Phase != v1alpha1.PhaseFailed || len(d.Actions) != 0 || !strings.Contains(d.Status.Message, "turns the Istio sidecar off") {
		t.Fatalf("injection off at adoption: phase %s actions %q message %q", d.Status.Phase, actions(d), d.Status.Message)
	}
}

func findCondition(cs []metav1.Condition, typ string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

func TestCanaryReplicasFollowTheWeightWithAnAutoscaler(t *testing.T) {
	st := running(adoptedStatus("r1"), "r2", v1alpha1.PhasePending)
	ws := WorkloadState{Revision: "r2", Autoscaler: "checkout", Stable: track("r1", 4, 4)}
	d := decideRelease(st, ws, relT0)
	if got := actions(d); got != "SetTrack canary r2×1" {
		t.Fatalf("coming up: %q, want one pod for the first step's 10%% of 4", got)
	}
	for _, c := range []struct {
		step int32
		want string
	}{{0, "SetTrack canary r2×1"}, {1, "SetTrack canary r2×2"}, {2, "SetTrack canary r2×4"}, {3, "SetTrack canary r2×4"}} {
		st := running(adoptedStatus("r1"), "r2", v1alpha1.PhaseProgressing)
		st.CurrentStep = c.step
		ws.Canary = track("r2", 3, 3) // a size no step wants, so every step resizes it
		if got := actions(decideRelease(st, ws, relT0)); got != c.want {
			t.Errorf("step %d: %q, want %q (sized for the next step)", c.step, got, c.want)
		}
	}
	ws.Autoscaler = ""
	st = running(adoptedStatus("r1"), "r2", v1alpha1.PhaseProgressing)
	ws.Canary = track("r2", 2, 2)
	if got := actions(decideRelease(st, ws, relT0)); got != "" {
		t.Errorf("without an autoscaler the canary keeps the stable's size: %q", got)
	}
}

func TestNextReleaseRecordsWhoSetTheImages(t *testing.T) {
	d := decideRelease(adoptedStatus("r1"), WorkloadState{Revision: "r2", RequestedBy: "olga", Stable: track("r1", 2, 2)}, relT0)
	if r := d.Status.Releases[0]; r.By != "olga" || !strings.Contains(d.Status.Message, "images set by olga") {
		t.Fatalf("release %+v message %q, want it by olga", r, d.Status.Message)
	}
	if h := d.Status.History[len(d.Status.History)-1]; h.By != "olga" || d.Events[len(d.Events)-1].By != "olga" {
		t.Errorf("release transition %+v (event by %q), want it by olga", h, d.Events[len(d.Events)-1].By)
	}
}
