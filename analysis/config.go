package analysis

import (
	"fmt"
	"math"
	"time"
)

// Limit bounds one measured value of the canary: it must stay at or below
// Max, and at or below Factor × stable + Slack when stable has enough
// requests to compare with.
type Limit struct {
	// Max is the absolute limit: a fraction for error rates, milliseconds
	// for latencies.
	Max float64
	// Factor and Slack make the limit relative to stable.
	Factor float64
	Slack  float64
	// Disabled turns the check off; DryRun evaluates and reports it but
	// never lets it act.
	Disabled bool
	DryRun   bool
}

// Bound returns the effective limit given stable's value (NaN when stable
// has too few requests to compare with).
func (l Limit) Bound(stable float64) float64 {
	if math.IsNaN(stable) || l.Factor <= 0 {
		return l.Max
	}
	return math.Min(l.Max, l.Factor*stable+l.Slack)
}

// CustomCheck is a user's PromQL check: Query, rendered with the rollout's
// variables, must compare to Threshold as Op says.
type CustomCheck struct {
	Name      string
	Query     string
	Op        string // one of <, <=, >, >=
	Threshold float64
	DryRun    bool
}

// Config is everything a tick of analysis needs to know about its checks.
type Config struct {
	// Window is the range over which metrics are measured.
	Window time.Duration
	// FastWindow is the short range on which fast-fail is judged, so that a
	// regression is seen within a scrape or two instead of being diluted in
	// Window.
	FastWindow time.Duration
	// MinRequests is the sample size a check needs; below it the check is
	// Inconclusive (inbound) or Skipped (a hop the canary rarely calls).
	MinRequests float64
	// FastFailFactor: a canary value at or above FastFailFactor × the
	// absolute limit (and significant) rolls back on the first tick.
	FastFailFactor float64
	// Significance is the p-value below which an error rate above its
	// limit counts as a failure rather than noise.
	Significance float64
	ErrorRate    Limit
	Latency      Limit
	// Hops enables the per-hop checks, with their own limits.
	Hops         bool
	HopErrorRate Limit
	HopLatency   Limit
	// Traces enables the per-edge checks from traces.
	Traces       bool
	TracesDryRun bool
	Custom       []CustomCheck
}

// DefaultConfig returns the defaults that most rollouts never change:
// error rate at most 1% and stable + 0.5 pp; p99 at most 500 ms and
// 1.2 × stable + 10 ms; the same per hop; a 30 s window; 20 requests.
func DefaultConfig() Config {
	errRate := Limit{Max: 0.01, Factor: 1, Slack: 0.005}
	latency := Limit{Max: 500, Factor: 1.2, Slack: 10}
	return Config{
		Window: 30 * time.Second, FastWindow: 3 * time.Second,
		MinRequests: 20, FastFailFactor: 5, Significance: 0.01,
		ErrorRate: errRate, Latency: latency,
		Hops: true, HopErrorRate: errRate, HopLatency: latency,
		Traces: true,
	}
}

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	switch {
	case c.Window < time.Second:
		return fmt.Errorf("analysis window %v: must be at least 1s", c.Window)
	case c.MinRequests < 1:
		return fmt.Errorf("analysis minRequests %v: must be at least 1", c.MinRequests)
	case c.FastFailFactor < 1:
		return fmt.Errorf("analysis fastFailFactor %v: must be at least 1", c.FastFailFactor)
	}
	for _, cc := range c.Custom {
		switch cc.Op {
		case "<", "<=", ">", ">=":
		default:
			return fmt.Errorf("custom check %q: op %q is not one of <, <=, >, >=", cc.Name, cc.Op)
		}
		if cc.Name == "" || cc.Query == "" {
			return fmt.Errorf("custom check %q: name and query are required", cc.Name)
		}
	}
	return nil
}
