package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	istioapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// meshEnv is an env with the mesh simulator sending traffic through the
// namespace's VirtualService, scraped by the real Prometheus and traced
// into the real Jaeger, and a controller analysing with both.
type meshEnv struct {
	*env
	sim *meshsim.Sim
}

func newMeshEnv(t testing.TB, rps float64, prometheusURL string) *meshEnv {
	t.Helper()
	return newMeshEnvWith(t, meshsim.Options{RPS: rps}, prometheusURL)
}

// newMeshEnvWith is newMeshEnv with more of the simulator's options (the
// namespace, API server and trace endpoint are filled in).
func newMeshEnvWith(t testing.TB, o meshsim.Options, prometheusURL string) *meshEnv {
	t.Helper()
	e := newEnv(t)
	e.mesh(nil)
	o.Namespace, o.RESTConfig, o.OTLPEndpoint = e.ns, st.RESTConfig(), st.OTLPHTTPEndpoint
	// The sidecars route by what istiod sends them over xDS, as in a
	// mesh; serin follows each weight it writes into them.
	o.XDSAddr = st.IstiodXDSAddr
	sim, err := meshsim.Start(e.ctx, o)
	must(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	job := "meshsim-" + e.ns
	must(t, st.SetScrapeTargets(job, []string{sim.MetricsAddr()}))
	t.Cleanup(func() { _ = st.SetScrapeTargets(job, nil) })
	if prometheusURL == "" {
		prometheusURL = st.PrometheusURL
	}
	e.analysisArgs = []string{"--prometheus-url", prometheusURL, "--jaeger-url", st.JaegerQueryURL, "--scrape-interval", "1s",
		"--istiod-url", st.IstiodDebugURL}
	return &meshEnv{env: e, sim: sim}
}

// analysed returns a rollout mutation with fast analysis settings.
func analysed(step time.Duration, f func(a *v1alpha1.AnalysisSpec)) func(*v1alpha1.Rollout) {
	return func(r *v1alpha1.Rollout) {
		r.Spec.StepInterval = dur(step)
		r.Spec.Analysis = &v1alpha1.AnalysisSpec{Interval: dur(time.Second), Window: dur(10 * time.Second)}
		if f != nil {
			f(r.Spec.Analysis)
		}
	}
}

func (e *meshEnv) fault(version string, f meshsim.Fault) {
	e.t.Helper()
	must(e.t, e.sim.SetFault("checkout", version, f))
}

// checksSeen polls the rollout until it is terminal and returns every
// check status it saw along the way.
func (e *meshEnv) watchChecks(name string, timeout time.Duration) (*v1alpha1.Rollout, []v1alpha1.CheckStatus) {
	e.t.Helper()
	var seen []v1alpha1.CheckStatus
	var ro *v1alpha1.Rollout
	e.eventually(timeout, "rollout "+name+" to finish", func() (bool, string) {
		ro = e.get(name)
		seen = append(seen, ro.Status.Analysis.Checks...)
		return ro.Status.Phase.Terminal(), fmt.Sprintf("%s %d%%: %s", ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.Analysis.LastReason)
	})
	return ro, seen
}

func findCheck(cs []v1alpha1.CheckStatus, verdict, check, hop, source string) *v1alpha1.CheckStatus {
	for i, c := range cs {
		if c.Verdict == verdict && c.Check == check && c.Hop == hop && c.Source == source {
			return &cs[i]
		}
	}
	return nil
}

func TestAnalysisHealthyCanaryIsPromoted(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.startController()
	e.rollout("healthy", analysed(4*time.Second, func(a *v1alpha1.AnalysisSpec) {
		// A custom PromQL check, rendered with the rollout's variables and
		// run against the real Prometheus: the canary receives traffic.
		a.Custom = []v1alpha1.CustomCheck{{
			Name: "canary-traffic", Op: ">", Threshold: 0,
			Query: `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ .Namespace }}",` +
				`destination_service_name="{{ .Service }}",destination_version="{{ .CanaryVersion }}"}[{{ .Window }}]))`,
		}}
	}))
	ro, seen := e.watchChecks("healthy", 120*time.Second)
	if ro.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("healthy canary ended %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	for _, want := range []struct{ check, hop, source string }{
		{"error-rate", "", "prometheus"}, {"latency-p99", "", "prometheus"},
		{"latency-p99", "checkout → payments", "prometheus"}, {"latency-p99", "checkout → payments", "jaeger"},
		{"canary-traffic", "", "prometheus"},
	} {
		if findCheck(seen, "Pass", want.check, want.hop, want.source) == nil {
			t.Errorf("no passing %s check on %q from %s was recorded", want.check, want.hop, want.source)
		}
	}
}

func TestAnalysisErrorsRollBack(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.fault("v2", meshsim.Fault{ErrorRate: 0.2})
	p := e.startController()
	e.rollout("errors", analysed(30*time.Second, nil))
	ro := e.waitPhase("errors", v1alpha1.PhaseRolledBack, 90*time.Second)
	msg := ro.Status.Message
	for _, want := range []string{"error-rate", "canary ", "vs stable ", "[", "–", "evidence 1/α reached at"} {
		if !strings.Contains(msg, want) {
			t.Errorf("rollback message %q does not name the error-rate check with both values, their intervals and the evidence (%q)", msg, want)
		}
	}
	// The status records the decision first; the route follows at once.
	e.eventually(5*time.Second, "route back at 100/0", func() (bool, string) {
		s, c := weights(e.vs(), "primary")
		return s == 100 && c == 0, fmt.Sprintf("%d/%d", s, c)
	})
	for _, want := range []string{`serin_rollbacks_total{reason="analysis"} 1`, "serin_rollback_detection_to_rollback_seconds_count 1"} {
		e.eventually(5*time.Second, "/metrics to show "+want, func() (bool, string) {
			return strings.Contains(httpGet(t, "http://"+p.addr+"/metrics"), want), ""
		})
	}
}

func TestAnalysisLatencyRollsBack(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.fault("v2", meshsim.Fault{LatencyMs: 300})
	e.startController()
	e.rollout("slow", analysed(30*time.Second, nil))
	ro := e.waitPhase("slow", v1alpha1.PhaseRolledBack, 90*time.Second)
	// Either inbound p99 check may see it first: Prometheus's on the
	// canary's inbound traffic, or the trace check on the edge into it.
	msg := ro.Status.Message
	if !strings.Contains(msg, "latency-p99 (inbound) failed") && !strings.Contains(msg, "latency-p99 on frontend → checkout from traces failed") {
		t.Errorf("rollback message %q does not name a p99 check on the canary's inbound traffic", msg)
	}
}

// TestAnalysisDownstreamAmplification: checkout v2 makes slow calls to
// payments while its own inbound traffic stays fine. The rollback names
// the hop. It runs twice, once with only the Prometheus edge check and
// once with only the trace check, to show that each sees it on its own.
func TestAnalysisDownstreamAmplification(t *testing.T) {
	for _, source := range []string{"prometheus", "jaeger"} {
		t.Run(source, func(t *testing.T) {
			e := newMeshEnv(t, 50, "")
			e.fault("v2", meshsim.Fault{DownstreamCalls: 3, DownstreamLatencyMs: 250})
			e.startController()
			e.rollout("amp", analysed(30*time.Second, func(a *v1alpha1.AnalysisSpec) {
				if source == "prometheus" {
					a.Traces = &v1alpha1.TraceChecks{Disabled: true}
				} else {
					a.Hops = &v1alpha1.HopChecks{Disabled: true}
				}
			}))
			ro, seen := e.watchChecks("amp", 90*time.Second)
			if ro.Status.Phase != v1alpha1.PhaseRolledBack || !strings.Contains(ro.Status.Message, "checkout → payments") {
				t.Fatalf("ended %s with %q: want a rollback naming checkout → payments", ro.Status.Phase, ro.Status.Message)
			}
			c := findCheck(seen, "Fail", "latency-p99", "checkout → payments", source)
			if c == nil {
				t.Fatalf("the %s check did not fail on checkout → payments", source)
			}
			if source == "jaeger" && c.TraceID == "" {
				t.Errorf("the failing trace check names no example trace")
			}
			if c := findCheck(seen, "Fail", "latency-p99", "", "prometheus"); c != nil {
				t.Errorf("the canary's inbound p99 failed too (%s): the regression should show on the next hop only", c.Reason)
			}
		})
	}
}

func TestAnalysisNoTrafficNeverPromotes(t *testing.T) {
	e := newMeshEnv(t, 0, "")
	e.startController()
	e.rollout("idle", analysed(2*time.Second, func(a *v1alpha1.AnalysisSpec) { a.InconclusiveLimit = dur(8 * time.Second) }))
	ro, _ := e.watchChecks("idle", 60*time.Second)
	if ro.Status.Phase != v1alpha1.PhaseRolledBack || !strings.Contains(ro.Status.Message, "inconclusive") {
		t.Fatalf("ended %s with %q: want a rollback after the inconclusive limit", ro.Status.Phase, ro.Status.Message)
	}
	for _, h := range ro.Status.History {
		if h.Reason == "StepAdvanced" || h.Reason == "Succeeded" {
			t.Errorf("a rollout with no traffic advanced: %+v", h)
		}
	}
}

// TestAnalysisPrometheusGoesAway: the controller reaches the real
// Prometheus through a proxy that is closed mid-rollout, as if Prometheus
// had stopped. The shared Prometheus itself keeps running for the other
// tests.
func TestAnalysisPrometheusGoesAway(t *testing.T) {
	target, err := url.Parse(st.PrometheusURL)
	must(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	e := newMeshEnv(t, 50, "http://"+l.Addr().String())
	e.startController()
	e.rollout("blind", analysed(6*time.Second, nil))
	e.eventually(60*time.Second, "a passing tick at step 0", func() (bool, string) {
		ro := e.get("blind")
		return ro.Status.Analysis.LastVerdict == "Pass", ro.Status.Analysis.LastReason
	})
	_ = srv.Shutdown(context.Background()) // Prometheus is gone from here on
	step := e.get("blind").Status.CurrentStep
	e.eventually(30*time.Second, "the reason to say the data source is unavailable", func() (bool, string) {
		ro := e.get("blind")
		return strings.Contains(ro.Status.Analysis.LastReason, "data source unavailable"), ro.Status.Analysis.LastReason
	})
	time.Sleep(8 * time.Second) // longer than a step's dwell
	ro := e.get("blind")
	if ro.Status.CurrentStep > step+1 || ro.Status.Phase == v1alpha1.PhaseSucceeded {
		t.Errorf("promoted while Prometheus was unavailable: step %d -> %d, phase %s", step, ro.Status.CurrentStep, ro.Status.Phase)
	}
	if ro.Status.Analysis.LastVerdict != "Inconclusive" {
		t.Errorf("last verdict %s, want Inconclusive while the data source is down", ro.Status.Analysis.LastVerdict)
	}
}

func TestAnalysisDryRunReportsButDoesNotAct(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.fault("v2", meshsim.Fault{LatencyMs: 300})
	e.startController()
	e.rollout("dry", analysed(4*time.Second, func(a *v1alpha1.AnalysisSpec) {
		a.Latency = &v1alpha1.LatencyCheck{DryRun: true}
		a.Hops = &v1alpha1.HopChecks{Latency: &v1alpha1.LatencyCheck{DryRun: true}}
		a.Traces = &v1alpha1.TraceChecks{DryRun: true}
	}))
	ro, seen := e.watchChecks("dry", 120*time.Second)
	if ro.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("ended %s (%s): a failing dry-run check must not act", ro.Status.Phase, ro.Status.Message)
	}
	c := findCheck(seen, "Fail", "latency-p99", "", "prometheus")
	if c == nil || !c.DryRun {
		t.Fatalf("the failing dry-run latency check was not reported: %+v", c)
	}
}

// TestAnalysisHostMode runs the analysis on a mesh that splits by service
// (checkout-primary and checkout-canary) instead of by subset. Inbound
// traffic is told apart by destination_service_name, a side's downstream
// calls by the workloads behind its host, and its traces by the host each
// call was routed to. A healthy canary is promoted with passing hop checks
// from both sources; one whose calls to payments are slow is rolled back
// naming that hop, while its own inbound checks pass.
func TestAnalysisHostMode(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		e := newHostModeEnv(t)
		e.startController()
		e.rollout("hosts", hostMode(4*time.Second, []int32{10, 50, 100}))
		ro, seen := e.watchChecks("hosts", 120*time.Second)
		if ro.Status.Phase != v1alpha1.PhaseSucceeded {
			t.Fatalf("healthy host-mode canary ended %s: %s", ro.Status.Phase, ro.Status.Message)
		}
		for _, source := range []string{"prometheus", "jaeger"} {
			if findCheck(seen, "Pass", "latency-p99", "checkout → payments", source) == nil {
				t.Errorf("no passing latency-p99 check on checkout → payments from %s", source)
			}
		}
	})
	t.Run("amplification", func(t *testing.T) {
		e := newHostModeEnv(t)
		e.fault("v2", meshsim.Fault{DownstreamCalls: 3, DownstreamLatencyMs: 250})
		e.startController()
		// Prometheus alone: with traces on, the trace check may see the
		// slow hop first and roll back before the metric checks have
		// their samples (the healthy case shows the trace checks work).
		e.rollout("hosts", func(r *v1alpha1.Rollout) {
			hostMode(30*time.Second, nil)(r)
			r.Spec.Analysis.Traces = &v1alpha1.TraceChecks{Disabled: true}
		})
		checkHostModeRollback(t, e)
	})
}

// newHostModeEnv replaces the namespace's subset VirtualService with one
// that splits between the hosts checkout-primary and checkout-canary.
func newHostModeEnv(t *testing.T) *meshEnv {
	e := newMeshEnv(t, 50, "")
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "checkout-hosts", Namespace: e.ns}}
	vs.Spec.Hosts = []string{e.host()}
	vs.Spec.Http = []*istioapi.HTTPRoute{{Name: "split", Route: []*istioapi.HTTPRouteDestination{
		{Destination: &istioapi.Destination{Host: "checkout-primary"}, Weight: 100},
		{Destination: &istioapi.Destination{Host: "checkout-canary"}, Weight: 0},
	}}}
	must(t, e.istio.NetworkingV1().VirtualServices(e.ns).Delete(e.ctx, "checkout", metav1.DeleteOptions{}))
	_, err := e.istio.NetworkingV1().VirtualServices(e.ns).Create(e.ctx, vs, metav1.CreateOptions{})
	must(t, err)
	return e
}

// hostMode is a rollout mutation for newHostModeEnv's VirtualService.
func hostMode(step time.Duration, steps []int32) func(*v1alpha1.Rollout) {
	return func(r *v1alpha1.Rollout) {
		analysed(step, nil)(r)
		if steps != nil {
			r.Spec.Steps = steps
		}
		r.Spec.VirtualService = "checkout-hosts"
		r.Spec.StableSubset, r.Spec.CanarySubset = "", ""
		r.Spec.StableHost, r.Spec.CanaryHost = "checkout-primary", "checkout-canary"
	}
}

func checkHostModeRollback(t *testing.T, e *meshEnv) {
	t.Helper()
	ro, seen := e.watchChecks("hosts", 90*time.Second)
	if ro.Status.Phase != v1alpha1.PhaseRolledBack || !strings.Contains(ro.Status.Message, "checkout → payments") {
		t.Fatalf("ended %s with %q: want a rollback naming checkout → payments", ro.Status.Phase, ro.Status.Message)
	}
	if findCheck(seen, "Fail", "latency-p99", "checkout → payments", "prometheus") == nil {
		t.Errorf("the Prometheus hop check did not fail on checkout → payments")
	}
	// The inbound checks measured both hosts: each side's requests were
	// found by its destination_service_name.
	measured := false
	for _, c := range seen {
		if c.Check == "error-rate" && c.Hop == "" && c.Source == "prometheus" && c.CanaryRequests > 0 && c.StableRequests > 0 {
			measured = true
			if c.Verdict == "Fail" {
				t.Errorf("the canary's inbound error rate failed (%s): the regression is on the next hop only", c.Reason)
			}
		}
	}
	if !measured {
		t.Errorf("no inbound error-rate check from Prometheus counted requests on both hosts: they were not told apart")
	}
	e.eventually(5*time.Second, "route back at 100/0", func() (bool, string) {
		v, err := e.istio.NetworkingV1().VirtualServices(e.ns).Get(e.ctx, "checkout-hosts", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		d := v.Spec.Http[0].Route
		return d[0].Weight == 100 && d[1].Weight == 0, fmt.Sprintf("%d/%d", d[0].Weight, d[1].Weight)
	})
}
