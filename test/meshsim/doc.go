// Package meshsim is a mesh simulator: a stand-in for the Envoy/Istio sidecar
// data plane, and for the kubelet and the Deployment controller, for local
// testing of serin only. It is not a proxy, not a kubelet, and must never be
// deployed.
//
// There is no Envoy and no container engine on the machines serin is tested
// on, so meshsim plays the data plane in one process:
//
//   - Demo workloads frontend-v1 → checkout-v1|checkout-v2 → payments-v1 and
//     inventory-v1 are real HTTP servers on 127.0.0.1, one listener each, and
//     every hop is a real HTTP request over loopback.
//   - Each outbound call is routed the way a sidecar would route it. With
//     Options.XDSAddr set, Envoy's forwarding is simulated but its
//     configuration is real: every workload's sidecar subscribes to istiod
//     over ADS (xDS state of the world) as an Istio sidecar of one of the
//     workload's Pods, ACKs or NACKs each push, and routes the workload's
//     calls by the RouteConfiguration, clusters and endpoints istiod sent
//     it (xds*.go; Sim.Proxies reports what each has, Sim.SetProxyFrozen
//     plays a stuck Envoy). Without it (unit tests, no istiod) the fallback
//     reads the VirtualServices and DestinationRules (networking.istio.io/v1)
//     of the namespace through an informer and routes by them as a sidecar
//     would, so a weight change takes effect as soon as the watch event
//     arrives.
//   - Every hop is reported the way Istio's Envoy stats report it
//     (istio_requests_total and istio_request_duration_milliseconds with the
//     standard labels, reporter="source" and reporter="destination"), so a
//     PromQL query written for a real Istio mesh works unchanged.
//   - Every hop emits a CLIENT and a SERVER span over OTLP/HTTP, with one
//     TracerProvider per workload so that service.name and service.version
//     are those of the workload.
//   - A stand-in for the kubelet and the Deployment controller (kubelet.go):
//     every apps/v1 Deployment of a demo app in the namespace becomes a
//     workload named after it, whose Pods, EndpointSlices and status
//     meshsim writes as a cluster would; its pods become ready after a
//     start delay, roll with maxUnavailable 0, and behave as their
//     template's annotations say. Routing then selects pods by the
//     DestinationRule subsets' labels and balances over ready pods; a
//     destination with none answers 503 UH and is counted
//     (meshsim_unready_requests_total, Sim.UnreadyRequests).
//   - A built-in load generator, a fault-injection API (Go and HTTP JSON),
//     background error rates per version (Options.BackgroundErrorRate) and
//     Fire, which sends N requests and counts which checkout version served
//     them.
//   - Errors and latencies are drawn at random per request from a seeded
//     source (Options.Seed; 0 picks a seed and logs it). Tests on the real
//     stack must see the variance real traffic has: a window of N requests
//     holds a binomial number of errors, not almost exactly the configured
//     share, so a canary analysis that only passes on noiseless data fails
//     here as it would in a cluster. The same seed replays the same draws.
//
// See README.md for the modelling choices (random seeded errors and
// latencies, quasi-random weighted picks, asynchronous downstream
// amplification, unknown-source ingress traffic).
package meshsim
