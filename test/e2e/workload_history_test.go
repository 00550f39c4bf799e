package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// The randomized history test of workload delivery (issues #10 and #14).
// Each history is a seeded sequence of what a team and the cluster do to
// a delivered Deployment: good releases by set image, bad ones (50% 5xx),
// templates whose pods never become ready, a changed replica count, and
// the controller killed with SIGKILL, interleaved with serin's progress.
// After every operation these hold:
//
//	W1 the route carries the weight the Rollout's status claims, and at
//	   rest (no release running) it is 100/0 on stable;
//	W2 no request ever goes to a pod that is not ready;
//	W3 every release record is a template change the test made, in order,
//	   and no template is released twice in a row (no second release).
//
// At the end, once the last release is over: the stable copy runs the
// last template that succeeded, with the replica count last set, and the
// canary copy and the team's Deployment are at zero.
//
// WORKLOAD_HISTORY_SEED and WORKLOAD_HISTORY_SEEDS replay or widen it.
func TestRandomWorkloadHistories(t *testing.T) {
	seeds, ops := envInt("WORKLOAD_HISTORY_SEEDS", 1), envInt("WORKLOAD_HISTORY_OPS", 12)
	first := envInt("WORKLOAD_HISTORY_SEED", 1)
	for seed := first; seed < first+seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newWorkloadHistory(t, uint64(seed))
			h.run(ops)
		})
	}
}

type workloadHistory struct {
	*meshEnv
	seed       uint64
	rng        *rand.Rand
	ctrl       *controllerProc
	log        []string
	violations []string
	unready    int64 // the simulator's count before serin started

	image      int      // the last image number set
	applied    []string // images set, in order, by the test
	succeeded  string   // the image of the last successful release
	replicas   int32
	lastChange time.Time
}

func newWorkloadHistory(t *testing.T, seed uint64) *workloadHistory {
	e := newMeshEnvWith(t, meshsim.Options{RPS: 50, Seed: seed}, "")
	e.workloadDeployment()
	e.eventually(30*time.Second, "the team's Deployment ready", func() (bool, string) {
		d := e.deployment("checkout")
		return d.Status.ReadyReplicas == 2, fmt.Sprintf("%d ready", d.Status.ReadyReplicas)
	})
	time.Sleep(time.Second)
	h := &workloadHistory{meshEnv: e, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x14)), image: 1,
		succeeded: "shop/checkout:1", replicas: 2, unready: e.sim.UnreadyRequests().Total}
	h.ctrl = e.startController()
	e.rollout("checkout", func(r *v1alpha1.Rollout) {
		r.Spec.StableSubset, r.Spec.CanarySubset = "", ""
		r.Spec.Workload = &v1alpha1.WorkloadRef{Deployment: "checkout"}
		r.Spec.ProgressDeadline = dur(6 * time.Second)
		analysed(2*time.Second, nil)(r)
	})
	e.eventually(60*time.Second, "adoption", func() (bool, string) {
		w := e.get("checkout").Status.Workload
		return w != nil && w.AdoptedAt != nil, ""
	})
	return h
}

var workloadOps = []struct {
	name   string
	weight int
	do     func(h *workloadHistory) string
}{
	{"good release", 3, func(h *workloadHistory) string { return h.release("") }},
	{"bad release", 2, func(h *workloadHistory) string {
		return h.release(`"meshsim.serin.dev/behaviour":"{\"errorRate\":0.5}"`)
	}},
	{"never-ready release", 1, func(h *workloadHistory) string { return h.release(`"meshsim.serin.dev/never-ready":"true"`) }},
	{"scale", 1, (*workloadHistory).scale},
	{"kill -9 controller", 2, (*workloadHistory).restart},
	{"wait", 2, (*workloadHistory).wait},
}

func (h *workloadHistory) run(n int) {
	total := 0
	for _, o := range workloadOps {
		total += o.weight
	}
	for done := 0; done < n; done++ {
		pick := h.rng.IntN(total)
		for _, o := range workloadOps {
			if pick -= o.weight; pick < 0 {
				h.log = append(h.log, time.Now().Format("15:04:05.000 ")+o.do(h))
				break
			}
		}
		time.Sleep(time.Duration(500+h.rng.IntN(1500)) * time.Millisecond)
		h.check()
	}
	h.settle()
	h.t.Logf("seed %d: %d operations, %d releases, %d violations:\n%s", h.seed, n, len(h.get("checkout").Status.Releases),
		len(h.violations), strings.Join(h.log, "\n"))
	if len(h.violations) > 0 {
		h.t.Errorf("seed %d: %d invariant violations (replay with WORKLOAD_HISTORY_SEED=%d WORKLOAD_HISTORY_SEEDS=1):\n%s\nhistory:\n%s",
			h.seed, len(h.violations), h.seed, strings.Join(h.violations, "\n"), strings.Join(h.log, "\n"))
	}
}

// release changes the template: a new image, with extra annotations (the
// simulator's behaviour) or none.
func (h *workloadHistory) release(annotations string) string {
	h.image++
	img := fmt.Sprintf("shop/checkout:%d", h.image)
	clear := `"meshsim.serin.dev/behaviour":null,"meshsim.serin.dev/never-ready":null`
	if annotations != "" {
		clear = annotations
	}
	h.kubectl("patch", "deployment/checkout", "-p", fmt.Sprintf(
		`{"spec":{"template":{"metadata":{"annotations":{%s}},"spec":{"containers":[{"name":"checkout","image":%q}]}}}}`, clear, img))
	h.applied = append(h.applied, img)
	if annotations == "" {
		return "set image " + img
	}
	return fmt.Sprintf("set image %s with %s", img, annotations)
}

func (h *workloadHistory) scale() string {
	h.replicas = int32(1 + h.rng.IntN(3))
	h.kubectl("scale", "deployment/checkout", fmt.Sprintf("--replicas=%d", h.replicas))
	return fmt.Sprintf("scale the team's Deployment to %d", h.replicas)
}

func (h *workloadHistory) restart() string {
	h.ctrl.kill()
	h.ctrl = h.startController()
	return "kill -9 the controller and start it again"
}

func (h *workloadHistory) wait() string {
	d := time.Duration(2+h.rng.IntN(6)) * time.Second
	time.Sleep(d)
	return "wait " + d.String()
}

func (h *workloadHistory) violate(format string, args ...any) {
	h.violations = append(h.violations, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// check verifies W1–W3. W1 gets a few seconds: a write may be in flight.
func (h *workloadHistory) check() {
	var why string
	ok := false
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		ro := h.get("checkout")
		s, c := weights(h.vs(), "primary")
		st := ro.Status
		atRest := st.Workload == nil || st.Workload.Release == "" || st.Workload.Done
		switch {
		case s+c != 100:
			why = fmt.Sprintf("route %d/%d does not add up to 100", s, c)
		case c != st.CanaryWeight:
			why = fmt.Sprintf("route sends %d%% to the canary, status says %d%% (%s)", c, st.CanaryWeight, st.Message)
		case atRest && c != 0:
			why = fmt.Sprintf("at rest the route sends %d%% to the canary", c)
		default:
			ok = true
		}
		if ok {
			break
		}
	}
	if !ok {
		h.violate("W1: %s", why)
	}
	if n := h.sim.UnreadyRequests().Total - h.unready; n != 0 {
		h.violate("W2: %d requests went to pods that were not ready: %+v", n, h.sim.UnreadyRequests())
		h.unready += n
	}
	h.checkReleases()
}

// checkReleases verifies W3 on the recorded releases.
func (h *workloadHistory) checkReleases() {
	rels := h.get("checkout").Status.Releases
	next := 0
	for i, r := range rels {
		img := r.Images["checkout"]
		j := slices.Index(h.applied[next:], img)
		if j < 0 {
			h.violate("W3: release %d of %s is not a template change the test made after the previous one (%v)", i, img, h.applied)
			return
		}
		next += j + 1
		if i > 0 && rels[i-1].Revision == r.Revision {
			h.violate("W3: revision %s (%s) released twice in a row", r.Revision, img)
		}
	}
}

// settle waits for the last release to end and checks the end state.
func (h *workloadHistory) settle() {
	var ro *v1alpha1.Rollout
	h.eventually(120*time.Second, "the last release to end", func() (bool, string) {
		ro = h.get("checkout")
		w := ro.Status.Workload
		rest := w != nil && (w.Release == "" || w.Done) && *h.deployment("checkout").Spec.Replicas == 0 &&
			h.deployment("checkout-stable").Status.ReadyReplicas == h.replicas
		if n := len(ro.Status.Releases); rest && n > 0 && ro.Status.Releases[n-1].Images["checkout"] != h.applied[len(h.applied)-1] {
			rest = false // the newest template's release has not been recorded yet
		}
		return rest, ro.Status.Message
	})
	h.check()
	for _, r := range ro.Status.Releases {
		if r.Outcome == string(v1alpha1.PhaseSucceeded) {
			h.succeeded = r.Images["checkout"]
		}
	}
	stable := h.deployment("checkout-stable")
	if img := stable.Spec.Template.Spec.Containers[0].Image; img != h.succeeded {
		h.violate("end: checkout-stable runs %s, want the last success %s", img, h.succeeded)
	}
	if *stable.Spec.Replicas != h.replicas {
		h.violate("end: checkout-stable has %d replicas, want %d as last set", *stable.Spec.Replicas, h.replicas)
	}
	if h.exists("checkout-canary") && *h.deployment("checkout-canary").Spec.Replicas != 0 {
		h.violate("end: checkout-canary still has %d replicas", *h.deployment("checkout-canary").Spec.Replicas)
	}
	if s, c := weights(h.vs(), "primary"); s != 100 || c != 0 {
		h.violate("end: route %d/%d, want 100/0 on stable", s, c)
	}
}
