package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// AnalysisConfig is AnalysisConfigIn for a rollout whose namespace is not
// known: it refuses what no namespace's scope could allow, and leaves which
// namespaces the queries select to AnalysisConfigIn.
func AnalysisConfig(spec v1alpha1.RolloutSpec) (analysis.Config, error) {
	return AnalysisConfigIn(spec, analysis.Scope{})
}

// AnalysisConfigIn turns a Rollout's analysis spec into the analysis
// package's Config, with every default applied, and checks it. A custom
// query that does not render or parse, or that selects series outside
// scope (the namespaces the rollout may read, see analysis.Tenancy), is
// refused naming the check; so is a match override outside scope.
func AnalysisConfigIn(spec v1alpha1.RolloutSpec, scope analysis.Scope) (analysis.Config, error) {
	a := spec.Defaulted().Analysis
	cfg := analysis.DefaultConfig()
	cfg.Window = a.Window.Duration
	cfg.MinRequests = float64(a.MinRequests)
	cfg.Alpha = *a.Alpha
	cfg.ErrorRate = errorRateLimit(cfg.ErrorRate, a.ErrorRate)
	cfg.Latency = latencyLimit(cfg.Latency, a.Latency)
	cfg.HopErrorRate, cfg.HopLatency = cfg.ErrorRate, cfg.Latency
	if h := a.Hops; h != nil {
		cfg.Hops = !h.Disabled
		cfg.HopErrorRate = errorRateLimit(cfg.HopErrorRate, h.ErrorRate)
		cfg.HopLatency = latencyLimit(cfg.HopLatency, h.Latency)
		if c := h.Calls; c != nil {
			if c.MaxRatio != nil {
				cfg.CallRate.Factor = *c.MaxRatio
			}
			cfg.CallRate.Disabled, cfg.CallRate.DryRun = c.Disabled, c.DryRun
		}
	}
	if tr := a.Traces; tr != nil {
		cfg.Traces, cfg.TracesDryRun = !tr.Disabled, tr.DryRun
	}
	vars := admissionVars(spec, scope.Namespace)
	for _, c := range a.Custom {
		cfg.Custom = append(cfg.Custom, analysis.CustomCheck{Name: c.Name, Query: c.Query, Op: c.Op, Threshold: c.Threshold, DryRun: c.DryRun})
		if err := analysis.CheckQuery(c.Query, vars, scope); err != nil {
			return cfg, fmt.Errorf("spec.analysis.custom[%s].query: %w", c.Name, err)
		}
	}
	if m := a.Match; m != nil {
		if err := analysis.CheckMatch(m.Canary, scope); err != nil {
			return cfg, fmt.Errorf("spec.analysis.match.canary: %w", err)
		}
		if err := analysis.CheckMatch(m.Stable, scope); err != nil {
			return cfg, fmt.Errorf("spec.analysis.match.stable: %w", err)
		}
	}
	return cfg, cfg.Validate()
}

// admissionVars are the query variables as far as they are known before a
// rollout runs: its namespace (when given), the window and the hosts of the
// spec. The rest (the name, and what preflight resolves) are
// analysis.Unknown.
func admissionVars(spec v1alpha1.RolloutSpec, ns string) map[string]string {
	vars := queryVars(spec, v1alpha1.ResolvedTarget{}, ns, "")
	for k := range vars {
		switch k {
		case "Window", "CanaryHost", "StableHost":
		case "Namespace":
			if ns == "" {
				vars[k] = analysis.Unknown
			}
		default:
			vars[k] = analysis.Unknown
		}
	}
	return vars
}

func errorRateLimit(l analysis.Limit, c *v1alpha1.ErrorRateCheck) analysis.Limit {
	if c == nil {
		return l
	}
	if c.MaxPercent != nil {
		l.Max = *c.MaxPercent / 100
	}
	if c.MaxIncreasePoints != nil {
		l.Slack = *c.MaxIncreasePoints / 100
	}
	l.Disabled, l.DryRun = c.Disabled, c.DryRun
	return l
}

func latencyLimit(l analysis.Limit, c *v1alpha1.LatencyCheck) analysis.Limit {
	if c == nil {
		return l
	}
	if c.MaxMs != nil {
		l.Max = *c.MaxMs
	}
	if c.MaxRatio != nil {
		l.Factor = *c.MaxRatio
	}
	if c.SlackMs != nil {
		l.Slack = *c.SlackMs
	}
	l.Disabled, l.DryRun = c.Disabled, c.DryRun
	return l
}

// analysisRequest builds one tick's request from the Rollout and what
// preflight resolved.
func analysisRequest(ro *v1alpha1.Rollout, cfg analysis.Config, now time.Time) analysis.Request {
	rt := v1alpha1.ResolvedTarget{Host: ro.Spec.Host}
	if ro.Status.Target != nil {
		rt = *ro.Status.Target
	}
	t := analysis.Target{Namespace: ro.Namespace}
	if ro.Spec.StableHost != "" {
		t.HostMode = true
		// The service is the one clients call (the VirtualService's host,
		// which preflight resolved), so hops read "checkout → payments" as
		// in subset mode; failing that, the canary host's name.
		t.Service = shortHost(ro.Spec.CanaryHost)
		if rt.Host != "" {
			t.Service = shortHost(rt.Host)
		}
		t.Canary = analysis.Side{Host: ro.Spec.CanaryHost}
		t.Stable = analysis.Side{Host: ro.Spec.StableHost}
	} else {
		t.Service = shortHost(rt.Host)
		t.Canary = analysis.Side{Host: fqdn(rt.Host, ro.Namespace), Version: rt.CanaryVersion}
		t.Stable = analysis.Side{Host: fqdn(rt.Host, ro.Namespace), Version: rt.StableVersion}
	}
	if w, ok := WorkloadOf(ro); ok && ro.Status.Workload != nil {
		// serin's two copies share the workload's labels: metrics tell
		// them apart by workload name, traces by canonical revision (the
		// revision each copy's pods are labelled with).
		host := fqdn(rt.Host, ro.Namespace)
		t.Canary = analysis.Side{Host: host, Version: ro.Status.Workload.Release, Match: map[string]string{
			"destination_service": host, "destination_workload": w.CanaryCopy(), analysis.MatchNamespaceLabel: ro.Namespace}}
		t.Stable = analysis.Side{Host: host, Version: ro.Status.Workload.StableRevision, Match: map[string]string{
			"destination_service": host, "destination_workload": w.StableCopy(), analysis.MatchNamespaceLabel: ro.Namespace}}
	}
	if m := ro.Spec.Analysis; m != nil && m.Match != nil {
		t.Canary.Match, t.Stable.Match = m.Match.Canary, m.Match.Stable
	}
	start := AnalysisStart(ro.Status, now)
	return analysis.Request{
		Namespace: ro.Namespace, Name: ro.Name, Target: t, Config: cfg, Now: now, Start: start,
		Shown: ro.Status.Analysis.Since != nil,
		Vars:  queryVars(ro.Spec, rt, ro.Namespace, ro.Name),
	}
}

func queryVars(spec v1alpha1.RolloutSpec, rt v1alpha1.ResolvedTarget, ns, name string) map[string]string {
	window := spec.Defaulted().Analysis.Window.Duration
	return map[string]string{
		"Namespace": ns, "Name": name, "Service": shortHost(rt.Host), "Host": rt.Host,
		"CanaryVersion": rt.CanaryVersion, "StableVersion": rt.StableVersion,
		"CanaryHost": spec.CanaryHost, "StableHost": spec.StableHost,
		"Window": fmt.Sprintf("%ds", int(window.Seconds())),
	}
}

// shortHost is the service name of a host: "checkout" for
// "checkout.shop.svc.cluster.local".
func shortHost(h string) string {
	s, _, _ := strings.Cut(h, ".")
	return s
}

// fqdn completes a short host to the FQDN Istio reports as
// destination_service.
func fqdn(h, ns string) string {
	switch strings.Count(h, ".") {
	case 0:
		return h + "." + ns + ".svc.cluster.local"
	case 1:
		return h + ".svc.cluster.local"
	case 2:
		return h + ".cluster.local"
	}
	return h
}

// AnalysisStart is when a rollout's analysis begins: status.analysis.since
// once recorded; before that, when its first step's weight was written
// (the step's start, in the same reconcile), so that the first analysed
// tick already judges the traffic since then instead of only taking a
// baseline. It has whole seconds, as the API server stores times, so the
// runner sees the same start before and after the status round trip.
func AnalysisStart(st v1alpha1.RolloutStatus, now time.Time) time.Time {
	switch {
	case st.Analysis.Since != nil:
		return st.Analysis.Since.Time.Truncate(time.Second)
	case st.CurrentStep == 0 && st.StepStartedAt != nil && !st.StepStartedAt.After(now):
		return st.StepStartedAt.Time.Truncate(time.Second)
	}
	return now.Truncate(time.Second)
}
