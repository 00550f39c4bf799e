package readmodel

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func ro(ns, name, vs string, phase v1alpha1.Phase) *v1alpha1.Rollout {
	return &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.RolloutSpec{VirtualService: vs},
		Status:     v1alpha1.RolloutStatus{Phase: phase},
	}
}

func names(rows []*Row) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Summary.Namespace+"/"+r.Summary.Name)
	}
	return out
}

func TestStoreQueries(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*v1alpha1.Rollout{
		ro("shop", "b", "checkout", v1alpha1.PhaseProgressing),
		ro("shop", "a", "checkout", v1alpha1.PhaseSucceeded),
		ro("shop", "c", "cart", ""),
		ro("bank", "a", "checkout", v1alpha1.PhaseProgressing),
		ro("sh", "z", "checkout", v1alpha1.PhaseRolledBack),
		ro("shop-eu", "a", "checkout", v1alpha1.PhasePaused),
	} {
		if err := s.Upsert(r); err != nil {
			t.Fatal(err)
		}
	}
	// Active first, then by namespace ("sh" before "shop" before
	// "shop-eu") and name.
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "[bank/a shop/b shop/c shop-eu/a sh/z shop/a]"},
		{Filter{Namespace: "shop"}, "[shop/b shop/c shop/a]"},
		{Filter{Phase: v1alpha1.PhaseProgressing}, "[bank/a shop/b]"},
		{Filter{Phase: v1alpha1.PhasePending}, "[shop/c]"}, // no phase yet: Pending
		{Filter{Namespace: "shop", Phase: v1alpha1.PhaseProgressing}, "[shop/b]"},
		{Filter{Namespace: "sho"}, "[]"},
		{Filter{Namespace: "none"}, "[]"},
	} {
		got, err := s.Summaries(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if g := fmtNames(names(got)); g != tc.want {
			t.Errorf("Summaries(%+v) = %s, want %s", tc.f, g, tc.want)
		}
	}
	got, _ := s.ByVirtualService("shop", "checkout")
	if g := fmtNames(rolloutNames(got)); g != "[shop/a shop/b]" {
		t.Errorf("ByVirtualService = %s", g)
	}

	// Update moves a rollout between index entries; the copy handed out
	// is the caller's own, without managedFields.
	rolledBack := ro("shop", "b", "checkout", v1alpha1.PhaseRolledBack)
	rolledBack.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}
	if err := s.Upsert(rolledBack); err != nil {
		t.Fatal(err)
	}
	r, ok := s.Get("shop", "b")
	if !ok || r.Status.Phase != v1alpha1.PhaseRolledBack {
		t.Fatalf("Get after update = %v, %v", r, ok)
	}
	if len(r.ManagedFields) != 0 {
		t.Error("the store kept managedFields")
	}
	r.Status.Phase = "Mutated"
	if again, _ := s.Get("shop", "b"); again.Status.Phase != v1alpha1.PhaseRolledBack {
		t.Error("a caller's change leaked into the store")
	}
	if l, _ := s.Summaries(Filter{Phase: v1alpha1.PhaseProgressing}); fmtNames(names(l)) != "[bank/a]" {
		t.Errorf("stale phase index: %v", names(l))
	}
	if l, _ := s.Summaries(Filter{Namespace: "shop"}); fmtNames(names(l)) != "[shop/c shop/a shop/b]" {
		t.Errorf("stale order: %v", names(l))
	}
	if err := s.Delete("shop", "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("shop", "b"); ok {
		t.Error("Get after Delete found the rollout")
	}
	if l, _ := s.Summaries(Filter{}); slices.Contains(names(l), "shop/b") {
		t.Errorf("a deleted rollout is still listed: %v", names(l))
	}
	if err := s.Delete("shop", "b"); err != nil {
		t.Errorf("deleting an absent rollout: %v", err)
	}
}

func rolloutNames(rs []*v1alpha1.Rollout) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Namespace+"/"+r.Name)
	}
	return out
}

func fmtNames(n []string) string {
	out := "["
	for i, s := range n {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out + "]"
}

func TestSubscribe(t *testing.T) {
	s, _ := New()
	events, cancel := s.Subscribe(2)
	slow, _ := s.Subscribe(1)
	_ = s.Upsert(ro("shop", "a", "vs", ""))
	_ = s.Delete("shop", "a")
	if e := <-events; e.Type != EventUpsert || e.Rollout.Name != "a" {
		t.Errorf("first event = %+v", e)
	}
	if e := <-events; e.Type != EventDelete {
		t.Errorf("second event = %+v", e)
	}
	// The slow subscriber missed the second event: it is dropped, its
	// channel closed after the one event it had room for.
	<-slow
	if _, open := <-slow; open {
		t.Error("a subscriber that fell behind was not dropped")
	}
	cancel()
	cancel()
	if _, open := <-events; open {
		t.Error("cancel did not close the channel")
	}
	_ = s.Upsert(ro("shop", "b", "vs", "")) // no subscribers left: must not block or panic
}

func TestWaitFor(t *testing.T) {
	s, _ := New()
	at := func(rv string) *v1alpha1.Rollout {
		r := ro("shop", "a", "vs", "")
		r.ResourceVersion = rv
		return r
	}
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if s.WaitFor(short(), "shop", "a", "7") {
		t.Error("WaitFor returned true for a rollout the store does not hold")
	}

	// A write that lands while WaitFor waits wakes it.
	done := make(chan bool)
	go func() { done <- s.WaitFor(context.Background(), "shop", "a", "9") }()
	_ = s.Upsert(at("8")) // older than wanted: keeps waiting
	select {
	case got := <-done:
		t.Fatalf("WaitFor returned %v at resourceVersion 8, want it to wait for 9", got)
	case <-time.After(50 * time.Millisecond):
	}
	_ = s.Upsert(at("9"))
	if !<-done {
		t.Error("WaitFor did not see resourceVersion 9")
	}

	_ = s.Upsert(at("12"))
	if !s.WaitFor(short(), "shop", "a", "10") {
		t.Error("a newer resourceVersion (12) does not satisfy WaitFor(10)")
	}
	if s.WaitFor(short(), "shop", "a", "13") {
		t.Error("an older resourceVersion (12) satisfies WaitFor(13)")
	}
	if s.WaitFor(short(), "shop", "a", "not-a-version") {
		t.Error("a resourceVersion that does not parse matched one that differs")
	}
}
