// Package istioexporter is a synthetic Istio metrics exporter: a stand-in
// for the Envoy sidecars of many services, for serin's scale benchmark and
// tests only (test/scale). It serves no requests, proxies nothing and must
// never be deployed.
//
// There is no Envoy on the machines serin is tested on, and the mesh
// simulator (test/meshsim) runs real HTTP hops for four services, which
// does not reach a thousand. So this exporter only counts: for N services
// service-0001 … service-NNNN of one namespace, each with the versions v1
// and v2, it advances Istio's standard metrics as if each service received
// a configured rate of requests:
//
//   - istio_requests_total and istio_request_duration_milliseconds for the
//     inbound traffic, as the receiving sidecar reports it
//     (reporter="destination"), with the labels of a real Istio mesh, so
//     that serin's queries (analysis/prometheus/queries.go) work unchanged;
//   - the same for one downstream hop per service, <service>-store, as the
//     calling sidecar reports it (reporter="source").
//
// The counts are drawn at random from a seeded source (Options.Seed), per
// service and version: a window holds a Poisson number of requests and a
// binomial number of errors, as real traffic does. Each version's error
// rate can be set at run time (SetFault, or PUT /faults/{service}/{version}
// on the control API), as the mesh simulator's faults are.
//
// Traffic splits by the live weights, as a data plane would: an informer on
// the networking.istio.io/v1 VirtualServices of the namespace gives each
// service the v1/v2 weights of the first HTTP route that sends to its
// subsets, and a change applies to the next step of the counters.
//
// Like a real mesh, whose Prometheus scrapes one target per pod, the series
// are spread over several /metrics listeners (Options.ServicesPerTarget
// services each), so that no one scrape of a thousand services' series has
// to fit in Prometheus's scrape timeout.
package istioexporter
