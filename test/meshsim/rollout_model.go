package meshsim

import (
	"sort"
	"time"
)

// modelPod is one pod the kubelet stand-in runs for a Deployment.
type modelPod struct {
	podState
	name string
	ip   string
	uid  string // set once the Pod object is written
	// readyWritten is the readiness last written to the Pod's status; nil
	// until the first status is written.
	readyWritten *bool
}

// stepPods advances a Deployment's pods to now, as the Deployment
// controller and the kubelets would, for the current template hash at want
// replicas. fresh makes a new pod of that template (it sets name, created
// and readyAt). It returns the pods that stay and those that go.
//
// The model is a rolling update with maxUnavailable 0 and every new pod
// made at once: the pods of older templates keep serving, and count as
// ready, until as many pods of the current template are ready as there
// are replicas wanted; each new ready pod lets one old one go. Old pods
// that are not ready go at once, as they serve nothing. Scaling to 0
// removes every pod at once; scaling down removes the unready pods first,
// then the newest.
func stepPods(pods []*modelPod, hash string, want int32, now time.Time, fresh func() *modelPod) (keep, gone []*modelPod) {
	var cur, old []*modelPod
	for _, p := range pods {
		if p.hash == hash {
			cur = append(cur, p)
		} else {
			old = append(old, p)
		}
	}
	if want <= 0 {
		return nil, pods
	}
	// Scale the current template: ready pods first, the oldest first, so
	// that scaling down keeps the ones that serve.
	sortForKeeping(cur, now)
	for int32(len(cur)) < want {
		cur = append(cur, fresh())
	}
	gone = append(gone, cur[want:]...)
	cur = cur[:want]
	var curReady int32
	for _, p := range cur {
		if p.ready(now) {
			curReady++
		}
	}
	sortForKeeping(old, now)
	budget := want - curReady
	for _, p := range old {
		if budget > 0 && p.ready(now) {
			keep = append(keep, p)
			budget--
		} else {
			gone = append(gone, p)
		}
	}
	return append(cur, keep...), gone
}

// sortForKeeping orders pods ready first, then the oldest first, then by
// name.
func sortForKeeping(pods []*modelPod, now time.Time) {
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if ra, rb := a.ready(now), b.ready(now); ra != rb {
			return ra
		}
		if !a.created.Equal(b.created) {
			return a.created.Before(b.created)
		}
		return a.name < b.name
	})
}

// readyByHash counts the ready pods of each template at now.
func readyByHash(pods []*modelPod, now time.Time) map[string]int32 {
	out := map[string]int32{}
	for _, p := range pods {
		if _, ok := out[p.hash]; !ok {
			out[p.hash] = 0
		}
		if p.ready(now) {
			out[p.hash]++
		}
	}
	return out
}

// states returns the podStates of pods, for deploymentStatus.
func states(pods []*modelPod) []podState {
	out := make([]podState, len(pods))
	for i, p := range pods {
		out[i] = p.podState
	}
	return out
}
