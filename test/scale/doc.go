// Package scale measures serin with many rollouts in progress at once, on
// the real local stack (test/stack: kube-apiserver with the Istio CRDs,
// Prometheus, Jaeger), the serin binary built from this tree, and the
// synthetic Istio exporter (test/istioexporter) standing in for the
// sidecars of N services.
//
// Its tests hold everything: BenchmarkScale (make bench-scale) prints the
// table of issue 11 for N = 1, 50 and 1,000 rollouts, and
// TestHundredRolloutsKeepTheirTicks (make test) asserts, by counting, that
// 100 rollouts keep their analysis ticks and that a faulty canary among
// them is rolled back within two of its own ticks. Every process listens
// on 127.0.0.1 only and is stopped by its PID.
package scale
