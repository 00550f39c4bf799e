package readmodel

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestSummarize(t *testing.T) {
	created := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	stepAt := metav1.NewTime(created.Add(time.Minute))
	movedAt := metav1.NewTime(created.Add(2 * time.Minute))
	base := func(change func(*v1alpha1.Rollout)) *v1alpha1.Rollout {
		r := &v1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-v2", ResourceVersion: "42", CreationTimestamp: metav1.NewTime(created)},
			Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"},
		}
		change(r)
		return r
	}
	for _, tc := range []struct {
		name string
		r    *v1alpha1.Rollout
		want Summary
	}{
		{"not seen by the controller", base(func(*v1alpha1.Rollout) {}), Summary{
			Phase: v1alpha1.PhasePending, Active: true, Step: "0/4", Target: "checkout: v1 → v2", UpdatedAt: created}},
		{"pending with a zero step", base(func(r *v1alpha1.Rollout) {
			r.Status.Phase, r.Spec.Steps = v1alpha1.PhasePending, []int32{50, 100}
		}), Summary{Phase: v1alpha1.PhasePending, Active: true, Step: "0/2", Target: "checkout: v1 → v2", UpdatedAt: created}},
		{"progressing", base(func(r *v1alpha1.Rollout) {
			r.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, CurrentStep: 1, CanaryWeight: 25, StepStartedAt: &stepAt,
				Analysis: v1alpha1.AnalysisStatus{LastVerdict: "Pass", LastReason: "all 4 checks passed"}}
		}), Summary{Phase: v1alpha1.PhaseProgressing, Active: true, Step: "2/4", Weight: 25, Target: "checkout: v1 → v2",
			Verdict: "Pass", Reason: "all 4 checks passed", UpdatedAt: stepAt.Time}},
		{"rolled back, host mode, a route", base(func(r *v1alpha1.Rollout) {
			r.Spec.StableSubset, r.Spec.CanarySubset = "", ""
			r.Spec.StableHost, r.Spec.CanaryHost, r.Spec.Route = "checkout", "checkout-canary", "primary"
			r.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack, CurrentStep: 2, StepStartedAt: &stepAt,
				Message:  "rolled back: error-rate " + strings.Repeat("é", 200),
				Analysis: v1alpha1.AnalysisStatus{LastVerdict: "Fail", LastReason: "error-rate failed"},
				History:  []v1alpha1.Transition{{Time: movedAt, From: "Progressing/2 (50%)", To: "RolledBack", Reason: "AnalysisFailed"}}}
		}), Summary{Phase: v1alpha1.PhaseRolledBack, Step: "3/4", Target: "checkout, route primary: checkout → checkout-canary",
			Verdict: "Fail", Reason: "rolled back: error-rate " + strings.Repeat("é", MaxReason-len("rolled back: error-rate ")-1) + "…", UpdatedAt: movedAt.Time}},
		{"a delivered Deployment", base(func(r *v1alpha1.Rollout) {
			r.Spec.StableSubset, r.Spec.CanarySubset, r.Spec.Workload = "", "", &v1alpha1.WorkloadRef{Deployment: "checkout"}
		}), Summary{Phase: v1alpha1.PhasePending, Active: true, Step: "0/4", Target: "checkout: deployment checkout (stable → canary)", UpdatedAt: created}},
		{"a step past the ladder", base(func(r *v1alpha1.Rollout) {
			r.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseSucceeded, CurrentStep: 7, CanaryWeight: 100}
		}), Summary{Phase: v1alpha1.PhaseSucceeded, Step: "4/4", Weight: 100, Target: "checkout: v1 → v2", UpdatedAt: created}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Namespace, tc.want.Name, tc.want.ResourceVersion, tc.want.CreatedAt = "shop", "checkout-v2", "42", created
			if got := Summarize(tc.r); got != tc.want {
				t.Errorf("Summarize =\n %+v\nwant\n %+v", got, tc.want)
			}
			if n := len([]rune(Summarize(tc.r).Reason)); n > MaxReason {
				t.Errorf("reason has %d characters, more than %d", n, MaxReason)
			}
		})
	}
}

func TestRowJSON(t *testing.T) {
	s := Summarize(&v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "a", ResourceVersion: "7", CreationTimestamp: metav1.Now()},
		Spec:       v1alpha1.RolloutSpec{VirtualService: "vs", StableSubset: "v1", CanarySubset: "v2"},
		Status:     v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, Message: `<b>"quoted" & odd</b>`},
	})
	row := newRow(s)
	want, _ := json.Marshal(s)
	if string(row.JSON()) != string(want) {
		t.Errorf("row JSON\n %s\nwant json.Marshal's\n %s", row.JSON(), want)
	}
	sel, err := SelectFields([]string{"weight", "name", "phase", "name"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(row.AppendJSON([]byte("x"), sel)); got != `x{"name":"a","phase":"Progressing","weight":0}` {
		t.Errorf("selected = %s", got)
	}
	if _, err := SelectFields([]string{"name", "colour"}); err == nil || !strings.Contains(err.Error(), `"colour"`) {
		t.Errorf("unknown field: err = %v, want it named", err)
	}

	again := s
	again.ResourceVersion = "8"
	if !row.ShowsSame(newRow(again)) {
		t.Error("a new resourceVersion alone counts as a change that shows")
	}
	again.Weight = 10
	if row.ShowsSame(newRow(again)) {
		t.Error("a new weight does not count as a change that shows")
	}
}

// TestPageCoversEveryRow walks 1,000 rollouts in pages of random sizes,
// under each kind of filter, and requires every matching row exactly
// once, in order.
func TestPageCoversEveryRow(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	s, _ := New()
	phases := []v1alpha1.Phase{"", v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseSucceeded, v1alpha1.PhaseRolledBack}
	for i := range 1000 {
		ns := fmt.Sprintf("team-%d", rng.IntN(12))
		if err := s.Upsert(ro(ns, fmt.Sprintf("svc-%04d", i), "vs", phases[rng.IntN(len(phases))])); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []Filter{{}, {Namespace: "team-3"}, {Phase: v1alpha1.PhaseSucceeded}, {Namespace: "team-7", Phase: v1alpha1.PhaseProgressing}} {
		all, _ := s.Summaries(f)
		var walked []*Row
		var after *Cursor
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatalf("seed %d, filter %+v: the pages do not end", seed, f)
			}
			rows, more, err := s.Page(f, after, 1+rng.IntN(50))
			if err != nil {
				t.Fatal(err)
			}
			walked = append(walked, rows...)
			if !more {
				break
			}
			c := rows[len(rows)-1].Cursor()
			after = &c
		}
		if got, want := fmtNames(names(walked)), fmtNames(names(all)); got != want {
			t.Errorf("seed %d, filter %+v: the pages hold\n%s\nwant\n%s", seed, f, got, want)
		}
		for i := 1; i < len(walked); i++ {
			if walked[i-1].order >= walked[i].order {
				t.Fatalf("seed %d, filter %+v: %s before %s is out of order", seed, f, names(walked[i-1:i]), names(walked[i:i+1]))
			}
		}
		for _, r := range walked {
			if (f.Namespace != "" && r.Summary.Namespace != f.Namespace) || (f.Phase != "" && r.Summary.Phase != f.Phase) {
				t.Errorf("filter %+v: got %s/%s in %s", f, r.Summary.Namespace, r.Summary.Name, r.Summary.Phase)
			}
		}
	}

	// A cursor whose row is gone still marks its place.
	rows, _, _ := s.Page(Filter{}, nil, 10)
	c := rows[4].Cursor()
	_ = s.Delete(c.Namespace, c.Name)
	next, _, _ := s.Page(Filter{}, &c, 1)
	if len(next) != 1 || next[0] != rows[5] {
		t.Errorf("after a deleted row: %v, want %v", names(next), names(rows[5:6]))
	}
}

func TestDataPlaneLine(t *testing.T) {
	at := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	written := metav1.NewMicroTime(at)
	confirmed := metav1.NewMicroTime(at.Add(400 * time.Millisecond))
	for _, tc := range []struct {
		dp   *v1alpha1.DataPlaneStatus
		want string
	}{
		{nil, ""},
		{&v1alpha1.DataPlaneStatus{Weight: 25, WrittenAt: written, ConfirmedAt: &confirmed, Proxies: 12}, "In the proxies: 25% on all 12, 0.4 s after the write."},
		{&v1alpha1.DataPlaneStatus{Weight: 0, WrittenAt: written, ConfirmedAt: &confirmed, Proxies: 1}, "In the proxies: 0% on the only one, 0.4 s after the write."},
		{&v1alpha1.DataPlaneStatus{Weight: 10, WrittenAt: written, ConfirmedAt: &confirmed}, "In the proxies: 10%; no connected proxy routes the service."},
		{&v1alpha1.DataPlaneStatus{Weight: 25, WrittenAt: written, Message: "1 of 12 proxies do not carry canary weight 25% yet: a.shop"},
			"In the proxies: 1 of 12 proxies do not carry canary weight 25% yet: a.shop."},
		{&v1alpha1.DataPlaneStatus{Weight: 25, WrittenAt: written}, "In the proxies: waiting for 25%."},
	} {
		r := &v1alpha1.Rollout{Status: v1alpha1.RolloutStatus{DataPlane: tc.dp}}
		if got := DataPlaneLine(r); got != tc.want {
			t.Errorf("DataPlaneLine(%+v) = %q, want %q", tc.dp, got, tc.want)
		}
	}
}
