package rollout

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// LiveStatus is told the status of each tick that was not written: one
// that differs from the stored status only in the latest analysis figures
// (the tick's time, values, evidence and passing-tick count). The status
// is written only when something a person reads changes (worthWriting),
// so that `kubectl get -w` shows each change once and a steady rollout
// costs the API server nothing; the read model shows the latest figures
// from memory instead.
type LiveStatus interface {
	// Live offers ro as stored (its uid and resourceVersion) with the
	// status of its latest tick. It must not block.
	Live(ro *v1alpha1.Rollout)
}

// liveStatuses are the engine's own unwritten statuses: the basis of the
// next tick of a rollout still stored at the same resourceVersion, so
// that its figures and counts carry on from the latest tick rather than
// from the latest write. A restart or another replica starts again from
// what is stored, as it would from a write a few ticks old.
type liveStatuses struct {
	mu sync.Mutex
	m  map[types.NamespacedName]liveStatus
}

type liveStatus struct {
	uid    types.UID
	rv     string
	status v1alpha1.RolloutStatus
}

func newLiveStatuses() *liveStatuses {
	return &liveStatuses{m: map[types.NamespacedName]liveStatus{}}
}

func key(ro *v1alpha1.Rollout) types.NamespacedName {
	return types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
}

// overlay replaces ro's status with its latest unwritten one, when ro is
// still stored as it was then.
func (l *liveStatuses) overlay(ro *v1alpha1.Rollout) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.m[key(ro)]; ok {
		if s.uid == ro.UID && s.rv == ro.ResourceVersion {
			ro.Status = *s.status.DeepCopy()
			return
		}
		delete(l.m, key(ro)) // written since, by serin or anyone
	}
}

// keep records st as ro's unwritten status.
func (l *liveStatuses) keep(ro *v1alpha1.Rollout, st v1alpha1.RolloutStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[key(ro)] = liveStatus{uid: ro.UID, rv: ro.ResourceVersion, status: *st.DeepCopy()}
}

// forget drops what is kept for nn: it was written, or deleted.
func (l *liveStatuses) forget(nn types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, nn)
}
