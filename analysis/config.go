package analysis

import (
	"fmt"
	"time"
)

// Limit bounds one measured value of the canary. Max is the absolute
// limit (the SLO), judged by its own check; Factor × stable + Slack is how
// much worse than stable the canary may be once a sequential test has
// shown that it is worse at all.
type Limit struct {
	// Max is the absolute limit: a fraction for error rates, milliseconds
	// for latencies; zero means none.
	Max float64
	// Factor and Slack make the limit relative to stable. For call rates
	// Factor is the ratio of calls per request tolerated.
	Factor float64
	Slack  float64
	// Disabled turns the check off; DryRun evaluates and reports it but
	// never lets it act.
	Disabled bool
	DryRun   bool
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
	// Window bounds how far back the first trace search of a rollout
	// reaches; it never reaches before the analysis started.
	Window time.Duration
	// MinRequests is the sample size of each side a check needs before it
	// can pass; below it the check is Inconclusive (inbound) or Skipped (a
	// hop the canary rarely calls). A failure needs no minimum: the
	// sequential test decides when the evidence suffices.
	MinRequests float64
	// Alpha bounds the probability that a canary no worse than stable is
	// ever rolled back by the built-in checks, over the whole rollout.
	Alpha     float64
	ErrorRate Limit
	Latency   Limit
	// Hops enables the per-hop checks, with their own limits.
	Hops         bool
	HopErrorRate Limit
	HopLatency   Limit
	// CallRate bounds the calls per inbound request to each hop: at most
	// Factor × stable's.
	CallRate Limit
	// Traces enables the per-edge checks from traces.
	Traces       bool
	TracesDryRun bool
	Custom       []CustomCheck
}

// DefaultConfig returns the defaults that most rollouts never change:
// error rate at most 1% and stable + 0.5 pp; p99 at most 500 ms and
// 1.2 × stable + 10 ms; per hop the same relative limits; at most 1.5 ×
// stable's calls per request; 20 requests; α = 1%.
func DefaultConfig() Config {
	errRate := Limit{Max: 0.01, Factor: 1, Slack: 0.005}
	latency := Limit{Max: 500, Factor: 1.2, Slack: 10}
	return Config{
		Window: 30 * time.Second, MinRequests: 20, Alpha: 0.01,
		ErrorRate: errRate, Latency: latency,
		Hops: true, HopErrorRate: errRate, HopLatency: latency,
		CallRate: Limit{Factor: 1.5},
		Traces:   true,
	}
}

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	switch {
	case c.Window < time.Second:
		return fmt.Errorf("analysis window %v: must be at least 1s", c.Window)
	case c.MinRequests < 1:
		return fmt.Errorf("analysis minRequests %v: must be at least 1", c.MinRequests)
	case !(c.Alpha > 0 && c.Alpha <= 0.2):
		return fmt.Errorf("analysis alpha %v: must be in (0, 0.2]", c.Alpha)
	case c.CallRate.Factor < 1 && !c.CallRate.Disabled:
		return fmt.Errorf("analysis hops.calls.maxRatio %v: must be at least 1", c.CallRate.Factor)
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
