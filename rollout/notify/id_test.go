package notify

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
)

// payloadID is the id a receiver sees in the generic webhook's body.
func payloadID(t *testing.T, ev rollout.Event) string {
	t.Helper()
	body, err := render(TypeWebhook, build(ev, testLinks), t0)
	if err != nil {
		t.Fatal(err)
	}
	var p WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func TestEventIDIsDeterministic(t *testing.T) {
	base := rolledBack()
	same := func(f func(*rollout.Event)) rollout.Event { ev := rolledBack(); f(&ev); return ev }
	// The same decision, sent again: the engine confirms the route again
	// after a status conflict, later, and may render other fields anew.
	for name, ev := range map[string]rollout.Event{
		"confirmed later": same(func(ev *rollout.Event) {
			ev.Time, ev.CompletedAt = ev.Time.Add(3*time.Second), ev.CompletedAt.Add(3*time.Second)
		}),
		"other channels": same(func(ev *rollout.Event) { ev.Channels = []string{"audit"} }),
		"other location": same(func(ev *rollout.Event) { ev.DetectedAt = ev.DetectedAt.In(time.FixedZone("X", 3600)) }),
	} {
		if got, want := payloadID(t, ev), payloadID(t, base); got != want {
			t.Errorf("%s: id %s, want %s", name, got, want)
		}
	}
	// Other events: another rollout, kind, step, weight or decision time.
	for name, ev := range map[string]rollout.Event{
		"namespace": same(func(ev *rollout.Event) { ev.Namespace = "shop2" }),
		"name":      same(func(ev *rollout.Event) { ev.Name = "checkout2" }),
		"split":     same(func(ev *rollout.Event) { ev.Namespace, ev.Name = "shop/check", "out" }),
		"kind":      same(func(ev *rollout.Event) { ev.Kind = rollout.EventAborted }),
		"step":      same(func(ev *rollout.Event) { ev.Step = 2 }),
		"weight":    same(func(ev *rollout.Event) { ev.Weight = 50 }),
		"detected":  same(func(ev *rollout.Event) { ev.DetectedAt = ev.DetectedAt.Add(time.Second) }),
	} {
		if payloadID(t, ev) == payloadID(t, base) {
			t.Errorf("%s differs but the id is the same", name)
		}
	}
	// Events other than a rollback are identified by their own time.
	a := rollout.Event{Kind: rollout.EventStepAdvanced, Namespace: "shop", Name: "checkout", Step: 1, Weight: 25, Time: t0}
	b := a
	b.Time = t0.Add(time.Second)
	if payloadID(t, a) != payloadID(t, a) || payloadID(t, a) == payloadID(t, b) {
		t.Error("a StepAdvanced's id must follow its time")
	}
}
