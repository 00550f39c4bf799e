package meshsim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Headers between simulated sidecars. They stand in for Istio's peer
// metadata exchange and are never propagated by the apps.
const (
	// hdrSource names the calling workload, as the peer metadata that Istio's
	// sidecars exchange over mTLS would.
	hdrSource = "X-Meshsim-Source"
	// hdrDelay asks the callee to take this many extra milliseconds: the
	// downstream half of Fault.DownstreamLatencyMs.
	hdrDelay = "X-Meshsim-Delay-Ms"
	// hdrPod names the Deployment workload (its key) a request to the
	// shared pod listener is for, as the pod IP would in a cluster.
	hdrPod = "X-Meshsim-Pod"
)

// hopResult is the JSON body every workload answers with: who served the
// request and what its synchronous downstream calls returned.
type hopResult struct {
	Workload string      `json:"workload,omitempty"`
	App      string      `json:"app,omitempty"`
	Version  string      `json:"version,omitempty"`
	Code     int         `json:"code"`
	Flags    string      `json:"flags,omitempty"`
	Error    string      `json:"error,omitempty"`
	Calls    []hopResult `json:"calls,omitempty"`
}

// inbound is the HTTP handler of workload w: its inbound sidecar (server
// span, destination metrics) wrapped around the app (faults, downstream
// calls).
func (s *Sim) inbound(w *workload) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { s.handle(rw, r, w) })
}

// podsInbound is the handler of the listener shared by every Deployment
// workload: it serves the request as the workload hdrPod names. A workload
// stays known after its pods go, as a terminating pod finishes the requests
// routed to it before it went.
func (s *Sim) podsInbound() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := s.workloadByKey(r.Header.Get(hdrPod))
		if w == nil || w.dep == nil {
			writeJSON(rw, http.StatusServiceUnavailable, hopResult{Code: http.StatusServiceUnavailable,
				Error: "no Deployment workload " + r.Header.Get(hdrPod)})
			return
		}
		s.handle(rw, r, w)
	})
}

// workloadByKey returns the workload with key k (see workload.key), static
// or from a Deployment, or nil.
func (s *Sim) workloadByKey(k string) *workload {
	if k == "" {
		return nil
	}
	if w, ok := s.cat.workloads[k]; ok {
		return w
	}
	if w, ok := s.deployedByKey.Load(k); ok {
		return w.(*workload)
	}
	return nil
}

// handle serves one inbound request of workload w: its inbound sidecar
// (server span, destination metrics) wrapped around the app.
func (s *Sim) handle(rw http.ResponseWriter, r *http.Request, w *workload) {
	spec := s.cat.services[w.app]
	start := time.Now()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)() // Close cancels in-flight work
	src := s.workloadByKey(r.Header.Get(hdrSource))
	host := r.Host
	h, ok := s.cat.hosts[host]
	if !ok && s.router.xds != nil && strings.HasSuffix(host, "."+w.namespace+"."+clusterDomain) {
		// Routed by istiod to a Service the catalog does not know (such as
		// a Deployment test's checkout-stable): report it as the caller did.
		h, ok = s.router.hostOf(host), true
		h.app = w.app
	}
	if !ok || h.app != w.app { // called directly, not through a Service
		host = fqdn(w.app, w.namespace)
		h = s.cat.hosts[host]
	}
	ctx = s.tr.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, span := s.tr.start(ctx, trace.SpanKindServer, spanInfo{
		self: w, route: spec.route, host: host, peerService: peerApp(src), cluster: "inbound|80||" + host,
	})
	var res hopResult
	if r.URL.Path == spec.route {
		res = s.serve(ctx, w, spec, r.Header)
	} else {
		res = hopResult{Workload: w.name(), App: w.app, Version: w.versionLabel(), Code: http.StatusNotFound,
			Error: "no such path; " + w.app + " serves " + spec.route}
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(res.Code)
	_ = json.NewEncoder(rw).Encode(res) // the caller may be gone; its metrics say so
	s.metrics.record(hop{reporter: reporterDestination, ns: w.namespace, src: src, dst: w,
		dstHost: host, dstName: h.name, code: res.Code}, time.Since(start))
	endSpan(span, res.Code, "")
}

// serve is the app behind workload w: its own latency and faults (the one
// set through the control API, with its pod template's behaviour on top),
// then its downstream calls, synchronous unless a fault amplifies them.
func (s *Sim) serve(ctx context.Context, w *workload, spec serviceSpec, in http.Header) hopResult {
	res := hopResult{Workload: w.name(), App: w.app, Version: w.versionLabel(), Code: http.StatusOK}
	f := s.faults.get(w).plus(w.behaviour())
	lat := s.latency.get(w.name())
	if err := sleep(ctx, baseLatency(lat)+f.latency(lat)+requestedDelay(in)); err != nil {
		res.Code, res.Error = http.StatusServiceUnavailable, "canceled: "+err.Error()
		return res
	}
	if failed, why := s.faults.fail(w, f); failed {
		res.Code, res.Error = http.StatusInternalServerError, why
		return res
	}
	if f.amplifies() {
		s.callInBackground(ctx, w, spec.calls, in, f)
		return res
	}
	for _, c := range spec.calls {
		sub := s.outbound(ctx, w, c, in, 0)
		res.Calls = append(res.Calls, sub)
		if sub.Code >= 500 {
			res.Code, res.Error = http.StatusBadGateway, "downstream "+c.host+" failed"
		}
	}
	return res
}

// callInBackground makes an amplified workload's downstream calls after its
// inbound response: max(DownstreamCalls,1) calls to each downstream, each
// asking the callee for DownstreamLatencyMs more. The calls stay in the
// request's trace but not in its latency. At most cap(s.async) run at once;
// beyond that they are dropped and counted.
func (s *Sim) callInBackground(ctx context.Context, w *workload, calls []call, in http.Header, f Fault) {
	parent := trace.ContextWithSpanContext(s.ctx, trace.SpanContextFromContext(ctx))
	hdr := propagated(in)
	for _, c := range calls {
		for range max(f.DownstreamCalls, 1) {
			select {
			case s.async <- struct{}{}:
			default:
				s.metrics.asyncDropped.Inc()
				continue
			}
			s.bg.Go(func() {
				defer func() { <-s.async }()
				s.outbound(parent, w, c, hdr, f.DownstreamLatencyMs)
			})
		}
	}
}

// outbound is the caller's outbound sidecar: it routes the call, sends it
// over loopback with a CLIENT span, and records the source metrics. src nil
// is the load generator, which has no sidecar and so no source metrics.
func (s *Sim) outbound(ctx context.Context, src *workload, c call, in http.Header, delayMs int) hopResult {
	start := time.Now()
	host := fqdn(c.host, s.cat.namespace)
	hdr := propagated(in)
	tgt, rerr := s.router.resolve(&request{host: host, path: c.path, method: http.MethodGet, header: hdr, source: src})
	// As Envoy does, http.url keeps the host asked for and upstream_cluster
	// names the cluster routed to: in host mode, checkout-canary's.
	cluster := "outbound|80||" + host
	if rerr == nil {
		cluster = "outbound|80|" + tgt.subset + "|" + tgt.fqdn
	}
	ctx, span := s.tr.start(ctx, trace.SpanKindClient, spanInfo{
		self: src, route: c.path, host: host, peerService: c.host, cluster: cluster,
	})
	var res hopResult
	if rerr != nil {
		res = routeFailure(rerr)
		if len(tgt.unready) > 0 {
			s.countUnready(tgt.unready)
		}
	} else {
		res = s.send(ctx, src, tgt, c.path, hdr, delayMs)
	}
	if src != nil {
		h := hop{reporter: reporterSource, ns: s.cat.namespace, src: src, dstHost: host, dstName: c.host,
			code: res.Code, flags: res.Flags}
		if rerr == nil {
			h.dstHost, h.dstName, h.dst = tgt.fqdn, tgt.host.name, tgt.wl
		}
		s.metrics.record(h, time.Since(start))
	}
	endSpan(span, res.Code, res.Flags)
	return res
}

// send makes the HTTP request to the target workload's listener, with the
// Service FQDN as Host and the trace context as traceparent.
func (s *Sim) send(ctx context.Context, src *workload, tgt target, path string, hdr http.Header, delayMs int) hopResult {
	fail := hopResult{Workload: tgt.wl.name(), App: tgt.wl.app, Version: tgt.wl.versionLabel(),
		Code: http.StatusServiceUnavailable, Flags: "UF"}
	addr := s.addrs[tgt.wl.name()]
	if tgt.wl.dep != nil {
		addr = addrOf(s.podL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		fail.Error = err.Error()
		return fail
	}
	req.Host = tgt.fqdn
	req.Header = hdr
	if src != nil {
		req.Header.Set(hdrSource, src.key())
	}
	if tgt.wl.dep != nil {
		req.Header.Set(hdrPod, tgt.wl.key())
	}
	if delayMs > 0 {
		req.Header.Set(hdrDelay, strconv.Itoa(delayMs))
	}
	s.tr.prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := s.client.Do(req)
	if err != nil { // upstream connection failure, as Envoy's UF
		fail.Error = err.Error()
		return fail
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 1<<20)
	var res hopResult
	if err := json.NewDecoder(body).Decode(&res); err != nil {
		res = hopResult{Workload: tgt.wl.name(), App: tgt.wl.app, Version: tgt.wl.versionLabel(), Error: "bad body: " + err.Error()}
	}
	_, _ = io.Copy(io.Discard, body)
	res.Code = resp.StatusCode
	return res
}

// routeFailure is the answer Envoy gives when routing fails.
func routeFailure(err error) hopResult {
	if errors.Is(err, errNoRoute) {
		return hopResult{Code: http.StatusNotFound, Flags: "NR", Error: err.Error()}
	}
	if errors.Is(err, errNoHealthy) {
		return hopResult{Code: http.StatusServiceUnavailable, Flags: "UH", Error: err.Error()}
	}
	return hopResult{Code: http.StatusServiceUnavailable, Flags: "NC", Error: err.Error()}
}

// propagated returns the headers an app forwards downstream: every X- header
// except meshsim's own, so that header-based routes keep matching on later
// hops as they do with apps that propagate them.
func propagated(in http.Header) http.Header {
	out := http.Header{}
	for k, v := range in {
		if strings.HasPrefix(k, "X-") && !strings.HasPrefix(k, "X-Meshsim-") {
			out[k] = v
		}
	}
	return out
}

// requestedDelay reads the extra latency a caller asked for.
func requestedDelay(h http.Header) time.Duration {
	ms, err := strconv.Atoi(h.Get(hdrDelay))
	if err != nil || ms <= 0 {
		return 0
	}
	return time.Duration(min(ms, maxFaultLatencyMs)) * time.Millisecond
}

// peerApp names the calling app for peer.service on a SERVER span.
func peerApp(src *workload) string {
	if src == nil {
		return unknown
	}
	return src.app
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
