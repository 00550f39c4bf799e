package rollout

import (
	"context"
	"sync"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// meshRecheck is how often a rollout in progress has its mesh checked
// again. A check costs several API reads; on every tick of every rollout
// they would cap how many rollouts keep their interval.
const meshRecheck = 5 * time.Second

// meshChecks remembers each rollout's latest mesh check, so that it is
// repeated every meshRecheck rather than on every tick, on every tick
// while it fails (a repaired mesh is seen at once), and afresh before any
// step that raises the canary's weight. The zero value
// is ready to use; it is safe for concurrent reconciles.
type meshChecks struct {
	mu   sync.Mutex
	last map[string]meshCheck // by namespace/name/uid
}

type meshCheck struct {
	at  time.Time
	rep PreflightReport
}

// check returns the rollout's mesh check, running run when the latest is
// older than meshRecheck or failed.
func (m *meshChecks) check(ctx context.Context, ro *v1alpha1.Rollout, now time.Time, run func(context.Context) (PreflightReport, error)) (PreflightReport, error) {
	m.mu.Lock()
	c, ok := m.last[meshKey(ro)]
	m.mu.Unlock()
	if ok && c.rep.OK() && now.Sub(c.at) < meshRecheck && !now.Before(c.at) {
		return c.rep, nil
	}
	return m.fresh(ctx, ro, now, run)
}

// fresh runs the rollout's mesh check now and remembers it.
func (m *meshChecks) fresh(ctx context.Context, ro *v1alpha1.Rollout, now time.Time, run func(context.Context) (PreflightReport, error)) (PreflightReport, error) {
	rep, err := run(ctx)
	if err != nil {
		return rep, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[string]meshCheck{}
	}
	for k, old := range m.last { // rollouts gone or finished long ago
		if now.Sub(old.at) > 10*time.Minute {
			delete(m.last, k)
		}
	}
	m.last[meshKey(ro)] = meshCheck{at: now, rep: rep}
	return rep, nil
}

// meshKey names a rollout; the UID tells a new rollout of the same name.
func meshKey(ro *v1alpha1.Rollout) string {
	return ro.Namespace + "/" + ro.Name + "/" + string(ro.UID)
}
