package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/serin-dev/serin/rollout"
)

// EventID identifies the transition ev reports, so that the same decision
// sent twice carries the same id: receivers deduplicate on it (the webhook's
// id and X-Serin-Delivery), and so does each channel's queue.
//
// It hashes what identifies the transition and nothing that changes when
// the engine sends it again: the rollout (namespace/name), the kind, the
// step and weight, and the transition's time (see decidedAt). Channels,
// message text and the other timings do not count.
func EventID(ev rollout.Event) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%d:%s%d:%s\x00%s\x00%d\x00%d\x00%d",
		len(ev.Namespace), ev.Namespace, len(ev.Name), ev.Name, ev.Kind, ev.Step, ev.Weight, decidedAt(ev).UnixNano()))
	return hex.EncodeToString(h[:12])
}

// decidedAt is the time of the transition ev reports. For most kinds it is
// ev.Time, the tick that decided it. A rollback is different: the engine
// sends it once the route is confirmed back at 100/0, with Time (and
// CompletedAt) set to that confirmation, which is later on every attempt
// when a status write conflicts. Its failure's detection time comes from
// the status (analysis.firstFailureAt) and does not move; a rollback
// without one (the deployment window closed, the analysis stayed
// inconclusive) falls back to the last passing tick, also from the status,
// and only then to Time.
func decidedAt(ev rollout.Event) time.Time {
	if ev.Kind == rollout.EventRolledBack {
		for _, t := range []time.Time{ev.DetectedAt, ev.LastPassAt} {
			if !t.IsZero() {
				return t
			}
		}
	}
	return ev.Time
}
