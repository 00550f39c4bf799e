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
// repeated every meshRecheck rather than on every tick, and on every tick
// while it fails, so that a repaired mesh is seen at once. The zero value
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
	key := ro.Namespace + "/" + ro.Name + "/" + string(ro.UID)
	m.mu.Lock()
	c, ok := m.last[key]
	m.mu.Unlock()
	if ok && c.rep.OK() && now.Sub(c.at) < meshRecheck && !now.Before(c.at) {
		return c.rep, nil
	}
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
	m.last[key] = meshCheck{at: now, rep: rep}
	return rep, nil
}
