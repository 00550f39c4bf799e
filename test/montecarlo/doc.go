// Package montecarlo is a stand-in simulation, not production code: a
// seeded Monte Carlo of what Prometheus returns for Istio's metrics while a
// canary rolls out, driving serin's judge and decision function, and, for
// comparison, the judge serin shipped before issue #9 (package legacy).
// It lives under test/ because it stands in for what this machine lacks at
// scale: thousands of rollouts of Envoy sidecars scraped by Prometheus.
//
// The traffic model, per simulated rollout:
//   - Poisson arrivals at the service's rate, split between the versions by
//     the canary weight on the route; each request fails with its version's
//     error rate and takes a log-normal time, counted into Istio's default
//     buckets (analysis.IstioBuckets);
//   - checkout's inbound traffic plus two downstream hops, payments and
//     inventory: each inbound request calls each once (the canary may call
//     payments k times), each call failing with the hops' error rate;
//   - Envoy's counter series per side and response code, each created with
//     its first request, so a side's response_code="500" series appears
//     only with its first error;
//   - Prometheus scraping every 1 s or 15 s at a random phase against the
//     ticks: an instant query returns the last scrape at or before its
//     time, and increase() is Prometheus 2.x's extrapolatedRate.
//
// The new judge is the real analysis.Runner (Tracker and Evaluate) and the
// real rollout.Next, with the engine's observe and converge emulated
// around them; the old one is package legacy on windows of increase(). The
// two see the same requests, drawn from the same seed, for as long as
// their weights agree. BenchmarkJudgeMonteCarlo prints both side by side;
// the tests assert the new judge's error rates on counts of simulated
// rollouts, never on wall-clock time.
package montecarlo
