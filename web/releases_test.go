package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// seedDelivered stores, besides shop/checkout-v2, shop/delivered: a
// rollout delivering Deployment checkout, with a rolled-back release of
// 2.1 and 2.2 under way.
func seedDelivered(t testing.TB, store *readmodel.Store) {
	t.Helper()
	seedCheckout(t, store)
	now := time.Now()
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	ended := at(40 * time.Minute)
	r := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "delivered", ResourceVersion: "300", CreationTimestamp: at(2 * time.Hour)},
		Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", Workload: &v1alpha1.WorkloadRef{Deployment: "checkout"}},
		Status: v1alpha1.RolloutStatus{
			Phase: v1alpha1.PhaseProgressing, CurrentStep: 0, CanaryWeight: 10, Message: "step 1 of 4: canary weight 10%",
			Workload: &v1alpha1.WorkloadStatus{AdoptedAt: &metav1.Time{Time: now.Add(-2 * time.Hour)}, Replicas: 3, StableRevision: "6b7f9c5d4", Release: "7c8d9e0f1"},
			Releases: []v1alpha1.Release{
				{Revision: "6b7f9c5d4", Images: map[string]string{"checkout": "shop/checkout:2.0"}, StartedAt: at(90 * time.Minute),
					FinishedAt: &metav1.Time{Time: now.Add(-80 * time.Minute)}, Outcome: "Succeeded", Reason: "all steps passed"},
				{Revision: "5a6b7c8d9", Images: map[string]string{"checkout": "shop/checkout:2.1"}, StartedAt: at(45 * time.Minute), FinishedAt: &ended,
					Outcome: "RolledBack", WorstCheck: "error-rate (prometheus) Fail: canary 20% vs stable 0.5%", Reason: "rolled back: error-rate failed"},
				{Revision: "7c8d9e0f1", Images: map[string]string{"checkout": "shop/checkout:2.2"}, StartedAt: at(3 * time.Minute)},
			},
		},
	}
	if err := store.Upsert(r); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutPageShowsTheReleases: a rollout that delivers a Deployment
// lists its releases newest first, as the API's view says them (images,
// duration, outcome, worst check, which one is stable) under the
// workload's state; a rollout that delivers none has no releases table.
func TestRolloutPageShowsTheReleases(t *testing.T) {
	f := newFixtureWith(t, false, seedDelivered)
	b := newBrowser(t)
	b.login(f.srv.URL, viewerToken)

	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/delivered"))
	b.waitFor(`document.getElementById('releases') && document.getElementById('releases').rows.length === 3`,
		`(document.getElementById('releases-card') || document.body).innerText`, 10*time.Second, "the releases of delivered")
	rows := eval[[]string](b, `[...document.getElementById('releases').rows].map((r) => [...r.cells].map((c) => c.innerText.trim()).join(' | '))`)
	want := []string{
		"7c8d9e0f1 | shop/checkout:2.2 | Running",
		"5a6b7c8d9 | shop/checkout:2.1 | 5m00s | RolledBack | error-rate (prometheus) Fail: canary 20% vs stable 0.5% | rolled back: error-rate failed",
		"6b7f9c5d4 stable | shop/checkout:2.0 | 10m00s | Succeeded",
	}
	for i, w := range want {
		parts := strings.Split(w, " | ")
		for _, p := range parts {
			if i >= len(rows) || !strings.Contains(rows[i], p) {
				t.Errorf("release row %d reads %q, want %q in it (rows %q)", i, rows[i], p, rows)
			}
		}
	}
	if s := eval[string](b, `document.getElementById('workload-state').textContent`); s != "Releasing revision 7c8d9e0f1." {
		t.Errorf("the workload's state reads %q", s)
	}
	if eval[bool](b, `document.getElementById('no-releases').checkVisibility()`) {
		t.Error("the page says there are no releases next to three")
	}
	b.screenshot("releases")

	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/checkout-v2"))
	b.waitFor(`document.getElementById('history').rows.length === 1`, `document.body.innerText`, 10*time.Second, "the page of checkout-v2")
	if eval[bool](b, `document.getElementById('releases-card') !== null`) {
		t.Error("a rollout that delivers no Deployment has a releases table")
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}
