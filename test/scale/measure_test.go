package scale

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/test/istioexporter"
)

// faultErrorRate is the headline's fault: half the canary's requests fail.
const faultErrorRate = 0.5

// run is one world with its observer and sampler, once its rollouts are
// created.
type run struct {
	*world
	obs     *observer
	smp     *sampler
	names   []string  // the rollouts created at the start, one per service
	created time.Time // when their creation began
}

// start builds the world of n services, starts the controller, the
// watches and the sampler, and creates one Rollout per service.
func start(t testing.TB, ctx context.Context, n int, rps float64, interval time.Duration) *run {
	t.Helper()
	w := newWorld(t, ctx, n, rps, interval)
	w.waitPrometheus()
	w.startController()
	r := &run{world: w, obs: w.observe(ctx), smp: w.sample(ctx)}
	for i := range n {
		r.names = append(r.names, service(i))
	}
	r.created = time.Now()
	logf(t, "creating %d Rollouts", n)
	w.createRollouts()
	return r
}

// startup is how long the rollouts took to get going.
type startup struct {
	atFirstStep  int           // rollouts at their first step, weight confirmed
	firstStep    time.Duration // from the first create to the last of them
	analysedOnce int           // rollouts analysed at least once
	firstTick    time.Duration // from the first create to the last of those
}

// waitStarted waits until every rollout is at its first step and has been
// analysed once, or timeout passes; it reports how far they got.
func (r *run) waitStarted(timeout time.Duration) startup {
	deadline := r.created.Add(timeout)
	var s startup
	var lastTick time.Time
	for {
		var last time.Time
		s.atFirstStep, last = r.obs.atFirstStep(r.names)
		s.firstStep = last.Sub(r.created)
		s.analysedOnce = 0
		lastTick = time.Time{}
		for _, name := range r.names {
			if ts := r.smp.ticksOf(name); len(ts) > 0 {
				s.analysedOnce++
				if ts[0].After(lastTick) {
					lastTick = ts[0]
				}
			}
		}
		s.firstTick = lastTick.Sub(r.created)
		done := s.atFirstStep == r.n && s.analysedOnce == r.n
		if done || time.Now().After(deadline) {
			logf(r.t, "%d/%d at their first step (last after %v), %d/%d analysed once (last after %v)",
				s.atFirstStep, r.n, s.firstStep.Round(time.Millisecond), s.analysedOnce, r.n, s.firstTick.Round(time.Millisecond))
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// steady is what a measurement window showed, with N in progress and the
// harness writing nothing.
type steady struct {
	window          time.Duration
	cpuCores        float64 // the controller's
	promCPUCores    float64 // Prometheus's, for context
	harnessCores    float64 // this test process's: the exporter, the watches and the sampler
	rssMiB, peakMiB float64
	queries         float64 // evaluated by Prometheus
	ticks           int     // analysis ticks of every rollout
	rolloutWrites   int
	vsWrites        int
	eventWrites     int
	intervals       []float64 // seconds between two ticks of one rollout
	depth           []float64 // work queue depth samples
}

func (s steady) writesPerSecond() float64 {
	return float64(s.rolloutWrites+s.vsWrites+s.eventWrites) / s.window.Seconds()
}

func (s steady) queriesPerTick() float64 {
	if s.ticks == 0 {
		return math.NaN()
	}
	return s.queries / float64(s.ticks)
}

// measure watches the run for d and returns what it saw.
func (r *run) measure(d time.Duration) steady {
	r.t.Helper()
	promPID := st.Prometheus().PID()
	cpu0, err := readCPU(r.ctrl.PID())
	must(r.t, err)
	pcpu0, err := readCPU(promPID)
	must(r.t, err)
	hcpu0, err := readCPU(os.Getpid())
	must(r.t, err)
	q0, err := promQueries(r.ctx)
	must(r.t, err)
	from := time.Now()
	logf(r.t, "measuring for %v", d)
	select {
	case <-time.After(d):
	case <-r.ctx.Done():
		r.t.Fatalf("measurement window: %v", r.ctx.Err())
	}
	to := time.Now()
	cpu1, err := readCPU(r.ctrl.PID())
	must(r.t, err)
	pcpu1, err := readCPU(promPID)
	must(r.t, err)
	hcpu1, err := readCPU(os.Getpid())
	must(r.t, err)
	q1, err := promQueries(r.ctx)
	must(r.t, err)
	s := steady{window: to.Sub(from), queries: q1 - q0, depth: r.smp.depthIn(from, to)}
	s.cpuCores = (cpu1 - cpu0).Seconds() / s.window.Seconds()
	s.promCPUCores = (pcpu1 - pcpu0).Seconds() / s.window.Seconds()
	s.harnessCores = (hcpu1 - hcpu0).Seconds() / s.window.Seconds()
	if rss := r.smp.rssIn(from, to); len(rss) > 0 {
		s.rssMiB, s.peakMiB = rss[len(rss)-1]/(1<<20), slices.Max(rss)/(1<<20)
	}
	s.rolloutWrites, s.vsWrites, s.eventWrites = r.obs.writesIn(from, to)
	for _, ts := range r.smp.allTicks() {
		var prev time.Time
		for _, t := range ts {
			if t.Before(from) || t.After(to) {
				continue
			}
			s.ticks++
			if !prev.IsZero() {
				s.intervals = append(s.intervals, t.Sub(prev).Seconds())
			}
			prev = t
		}
	}
	return s
}

// listTimes GETs /api/v1/rollouts (the first page, as the console asks
// for it) n times in a row and returns each duration and the last size.
func (r *run) listTimes(n int) (seconds []float64, bytes int) {
	r.t.Helper()
	for range n {
		req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, "http://"+r.ctrlAddr+"/api/v1/rollouts", nil)
		must(r.t, err)
		req.Header.Set("Authorization", "Bearer "+r.apiToken)
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		must(r.t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		must(r.t, err)
		if resp.StatusCode != http.StatusOK {
			r.t.Fatalf("GET /api/v1/rollouts: %s: %s", resp.Status, b)
		}
		seconds, bytes = append(seconds, d.Seconds()), len(b)
	}
	return seconds, bytes
}

// rollback is one fault on a canary in progress.
type rollback struct {
	rollout string
	at      time.Time     // when the fault was injected
	latency time.Duration // fault → canary weight 0 on the VirtualService's watch
	ticks   int           // the rollout's own ticks in (fault, weight 0]
	done    bool          // weight 0 seen within the bound
	note    string
}

// ready waits until rollout name is at its first step with the weight on
// its route and a passing tick, as a canary that is about to break is.
func (r *run) ready(name, svc string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, _ := r.obs.status(name)
		if r.obs.weight(svc) == firstStepWeight && st.AppliedWeight == firstStepWeight &&
			st.Analysis.LastVerdict == "Pass" && len(r.smp.ticksOf(name)) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rollout %s not at %d%% with a passing tick after %v: phase %s, weight %d, verdict %q: %s",
				name, firstStepWeight, timeout, st.Phase, st.AppliedWeight, st.Analysis.LastVerdict, st.Analysis.LastReason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// breakCanary injects faultErrorRate on svc's canary, waits (at most
// timeout) for its VirtualService's canary weight 0, clears the fault,
// and counts rollout name's ticks in between.
func (r *run) breakCanary(name, svc string, timeout time.Duration) rollback {
	r.t.Helper()
	t0 := time.Now()
	must(r.t, r.exp.SetFault(svc, istioexporter.CanaryVersion, istioexporter.Fault{ErrorRate: faultErrorRate}))
	defer func() { must(r.t, r.exp.SetFault(svc, istioexporter.CanaryVersion, istioexporter.Fault{})) }()
	rb := rollback{rollout: name, at: t0}
	deadline := t0.Add(timeout)
	var t1 time.Time
	for {
		var ok bool
		if t1, ok = r.obs.weightSince(svc, 0, t0); ok {
			rb.done = true
			// Why it went to 0 (the fault, or analysis that stayed
			// inconclusive too long) is for the reader of the table.
			time.Sleep(r.smp.every)
			st, _ := r.obs.status(name)
			rb.note = fmt.Sprintf("%s: %s", st.Phase, short(st.Message, 160))
			break
		}
		if time.Now().After(deadline) {
			t1 = time.Now()
			st, _ := r.obs.status(name)
			rb.note = fmt.Sprintf("not rolled back after %v: phase %s, verdict %q", timeout, st.Phase, st.Analysis.LastVerdict)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	rb.latency = t1.Sub(t0)
	// The gauge of the decisive tick may be read a sample after the
	// weight: give the sampler two more samples.
	time.Sleep(2 * r.smp.every)
	for _, t := range r.smp.ticksOf(name) {
		if t.After(t0) && !t.After(t1) {
			rb.ticks++
		}
	}
	return rb
}

// trials runs n rollbacks, each on another rollout in progress where
// there are enough (service 1, then evenly spread); where there are not,
// a rolled-back service gets a fresh Rollout first.
func (r *run) trials(n int, timeout time.Duration) []rollback {
	r.t.Helper()
	var out []rollback
	current := map[int]string{} // service index → its Rollout used last
	for k := range n {
		i := k * r.n / n
		svc, name := service(i), service(i)
		if old, used := current[i]; used {
			name = fmt.Sprintf("%s-t%d", svc, k+1)
			r.replace(old, name, svc, timeout)
		}
		current[i] = name
		// A canary not yet analysed still gets its fault once its weight
		// is on the route, as one that breaks early would: the time to
		// act on it is the headline, however long it waits.
		note := ""
		if err := r.ready(name, svc, timeout/3); err != nil {
			if r.obs.weight(svc) != firstStepWeight {
				out = append(out, rollback{rollout: name, note: err.Error()})
				continue
			}
			note = "(fault injected before a passing tick: " + short(err.Error(), 200) + ")"
		}
		rb := r.breakCanary(name, svc, timeout)
		rb.note = strings.TrimSpace(rb.note + " " + note)
		logf(r.t, "trial %d on %s: weight 0 after %v, %d of its ticks %s", k+1, name, rb.latency.Round(time.Millisecond), rb.ticks, rb.note)
		out = append(out, rb)
	}
	return out
}

// replace deletes Rollout old of svc, waits until it is gone with the
// route at 100/0, and creates a fresh one, name.
func (r *run) replace(old, name, svc string, timeout time.Duration) {
	r.t.Helper()
	must(r.t, client.IgnoreNotFound(r.c.Delete(r.ctx, r.rolloutFor(old, svc))))
	eventually(r.t, timeout, "Rollout "+old+" to be gone and the route of "+svc+" at 100/0", func() (bool, string) {
		err := r.c.Get(r.ctx, client.ObjectKey{Namespace: r.ns, Name: old}, r.rolloutFor(old, svc))
		gone := err != nil && client.IgnoreNotFound(err) == nil
		return gone && r.obs.weight(svc) == 0, fmt.Sprintf("get: %v, weight %d", err, r.obs.weight(svc))
	})
	must(r.t, r.c.Create(r.ctx, r.rolloutFor(name, svc)))
}

// percentile is the nearest-rank p-th percentile of xs, NaN when empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// short cuts s to n runes.
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
