package rollout

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestRouteHolder(t *testing.T) {
	ro := func(name string, created time.Time, p v1alpha1.Phase, route string) *v1alpha1.Rollout {
		r := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, CreationTimestamp: metav1.NewTime(created)}}
		r.Spec.VirtualService, r.Spec.Route, r.Status.Phase = "checkout", route, p
		return r
	}
	older, newer := t0, t0.Add(time.Minute)
	// retried is an old rollout retried after newer ones were created.
	retried := ro("retried", older, v1alpha1.PhasePending, "")
	deleting := ro("deleting", older, v1alpha1.PhaseProgressing, "")
	deleting.DeletionTimestamp = &metav1.Time{Time: newer}
	otherVS := ro("elsewhere", older, v1alpha1.PhaseProgressing, "")
	otherVS.Spec.VirtualService = "payments"
	otherNS := ro("abroad", older, v1alpha1.PhaseProgressing, "")
	otherNS.Namespace = "bank"
	uncreated := ro("new", time.Time{}, "", "")

	tests := []struct {
		name   string
		ro     *v1alpha1.Rollout
		others []*v1alpha1.Rollout
		want   string
	}{
		{"a free route", retried, nil, ""},
		{"itself", retried, []*v1alpha1.Rollout{retried}, ""},
		{"a retried rollout waits for one under way since", retried, []*v1alpha1.Rollout{ro("b", newer, v1alpha1.PhaseProgressing, "")}, "b"},
		{"and for one paused mid-way", retried, []*v1alpha1.Rollout{ro("b", newer, v1alpha1.PhasePaused, "")}, "b"},
		{"but not for a younger one still waiting to start", retried, []*v1alpha1.Rollout{ro("b", newer, v1alpha1.PhasePending, "")}, ""},
		{"of two waiting, the older goes first", ro("b", newer, v1alpha1.PhasePending, ""), []*v1alpha1.Rollout{ro("a", older, "", "")}, "a"},
		{"same creation time: by name", ro("b", older, "", ""), []*v1alpha1.Rollout{ro("a", older, "", "")}, "a"},
		{"finished ones hold nothing", retried, []*v1alpha1.Rollout{ro("b", newer, v1alpha1.PhaseSucceeded, ""), ro("c", newer, v1alpha1.PhaseRolledBack, "")}, ""},
		{"nor one being deleted", retried, []*v1alpha1.Rollout{deleting}, ""},
		{"nor another VirtualService or namespace", retried, []*v1alpha1.Rollout{otherVS, otherNS}, ""},
		{"another named route is free", ro("x", newer, "", "primary"), []*v1alpha1.Rollout{ro("b", older, v1alpha1.PhaseProgressing, "mobile")}, ""},
		{"the same named route is not", ro("x", newer, "", "primary"), []*v1alpha1.Rollout{ro("b", older, v1alpha1.PhaseProgressing, "primary")}, "b"},
		{"no route name clashes with any", ro("x", newer, "", "primary"), []*v1alpha1.Rollout{ro("b", older, v1alpha1.PhaseProgressing, "")}, "b"},
		{"one not yet created is younger than every stored one", uncreated, []*v1alpha1.Rollout{ro("b", newer, v1alpha1.PhasePending, "")}, "b"},
	}
	for _, tc := range tests {
		got := RouteHolder(tc.ro, tc.others)
		name := ""
		if got != nil {
			name = got.Name
		}
		if name != tc.want {
			t.Errorf("%s: holder %q, want %q", tc.name, name, tc.want)
		}
	}
}
