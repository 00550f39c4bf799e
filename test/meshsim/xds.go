package meshsim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
)

// The simulated sidecar's xDS client: one ADS stream (state of the world)
// to istiod per proxy. The protocol state is adsState's; this file holds the
// stream, the reconnects and what the proxy reports.

// istioVersion is the ISTIO_VERSION a simulated sidecar reports: istiod
// gates features on it, and the simulated sidecars follow the istiod they
// are tested with.
const istioVersion = "1.31.0"

// Reconnect backoff, as Envoy's: from xdsBackoffMin doubling to
// xdsBackoffMax, with jitter, and back to the start once a stream has
// delivered a response.
const (
	xdsBackoffMin = 100 * time.Millisecond
	xdsBackoffMax = 2 * time.Second
)

// proxyIdentity is what istiod knows a sidecar by: one Pod of its workload.
type proxyIdentity struct {
	workload       string // the workload's name (a Deployment's, or app-version)
	namespace      string
	pod            string
	ip             string
	labels         map[string]string
	serviceAccount string
	owner          string // the Deployment's kubernetes:// URI, or ""
	ports          []podPort
}

// podPort is one container port, as Istio's POD_PORTS lists it.
type podPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// nodeID is the sidecar's Envoy node ID, which istiod parses into its type,
// IP (to find the Pod and the Services that select it), ID and domain.
func (id proxyIdentity) nodeID() string {
	return fmt.Sprintf("sidecar~%s~%s.%s~%s.%s", id.ip, id.pod, id.namespace, id.namespace, clusterDomain)
}

// node is the Envoy Node of the first request: the ID and Istio's node
// metadata, as pilot-agent fills it in from the Pod (see NodeMetadata in
// istio.io/istio/pkg/model/proxy.go).
func (id proxyIdentity) node() (*corev3.Node, error) {
	ports, err := json.Marshal(id.ports)
	if err != nil {
		return nil, fmt.Errorf("pod ports of %s: %w", id.pod, err)
	}
	labels := map[string]any{}
	for k, v := range id.labels {
		labels[k] = v
	}
	m := map[string]any{
		"NAMESPACE":         id.namespace,
		"NAME":              id.pod,
		"LABELS":            labels,
		"ISTIO_VERSION":     istioVersion,
		"CLUSTER_ID":        clusterName,
		"MESH_ID":           "cluster.local",
		"INTERCEPTION_MODE": "REDIRECT",
		"WORKLOAD_NAME":     id.workload,
		"SERVICE_ACCOUNT":   id.serviceAccount,
		"INSTANCE_IPS":      id.ip,
		"POD_PORTS":         string(ports), // a JSON string, as pilot-agent sends it
	}
	if id.owner != "" {
		m["OWNER"] = id.owner
	}
	meta, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("node metadata of %s: %w", id.pod, err)
	}
	return &corev3.Node{Id: id.nodeID(), Cluster: id.workload + "." + id.namespace, Metadata: meta,
		UserAgentName: "envoy", Locality: &corev3.Locality{}}, nil
}

// proxy is one simulated sidecar's connection to istiod. Its run goroutine
// owns the ADS state; others read the published configuration and status.
type proxy struct {
	id      proxyIdentity
	conn    *grpc.ClientConn
	log     *slog.Logger
	pushes  func(typ, result string) // counts each response
	frozen  atomic.Bool
	thaw    chan struct{} // wakes run to apply what it held
	cfg     atomic.Pointer[xdsConfig]
	ready   chan struct{} // closed once routes and endpoints are in
	readyMu sync.Once
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex // guards status
	status ProxyStatus
}

// startProxy starts id's sidecar on conn; it connects in the background.
func startProxy(conn *grpc.ClientConn, id proxyIdentity, log *slog.Logger, pushes func(typ, result string), frozen bool) *proxy {
	ctx, cancel := context.WithCancel(context.Background())
	p := &proxy{id: id, conn: conn, log: log.With("proxy", id.nodeID()), pushes: pushes, thaw: make(chan struct{}, 1),
		ready: make(chan struct{}), cancel: cancel, done: make(chan struct{}),
		status: ProxyStatus{ID: id.nodeID(), Workload: id.workload, Pod: id.pod, IP: id.ip}}
	p.frozen.Store(frozen)
	p.status.Frozen = frozen
	go func() {
		defer close(p.done)
		p.run(ctx)
	}()
	return p
}

// close ends the stream and waits for run to return.
func (p *proxy) close() {
	p.cancel()
	<-p.done
}

// setFrozen freezes or thaws the proxy; a thawed proxy applies and ACKs
// the latest responses it held.
func (p *proxy) setFrozen(frozen bool) {
	p.frozen.Store(frozen)
	p.mu.Lock()
	p.status.Frozen = frozen
	p.mu.Unlock()
	if !frozen {
		select {
		case p.thaw <- struct{}{}:
		default:
		}
	}
}

// run keeps a stream open until ctx ends, reconnecting with backoff; the
// last accepted configuration stays in use meanwhile, as Envoy keeps it.
func (p *proxy) run(ctx context.Context) {
	st := newADSState()
	backoff := xdsBackoffMin
	for ctx.Err() == nil {
		got, err := p.stream(ctx, st)
		p.update(func(s *ProxyStatus) { s.Connected = false })
		if ctx.Err() != nil {
			return
		}
		p.log.Info("xDS stream to istiod ended; reconnecting", "err", err, "backoff", backoff)
		p.update(func(s *ProxyStatus) { s.LastError = err.Error() })
		if got {
			backoff = xdsBackoffMin
		}
		d := backoff/2 + rand.N(backoff/2+1) // jitter, as Envoy's
		backoff = min(2*backoff, xdsBackoffMax)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// stream runs one ADS stream: it sends the initial requests, then answers
// every response (and every thaw) until the stream breaks. It reports
// whether any response arrived.
func (p *proxy) stream(ctx context.Context, st *adsState) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	node, err := p.id.node()
	if err != nil {
		return false, err
	}
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(p.conn).StreamAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("open ADS stream: %w", err)
	}
	reqs := st.initialRequests()
	reqs[0].Node = node
	if err := sendAll(s, reqs); err != nil {
		return false, err
	}
	p.update(func(s *ProxyStatus) { s.Connected, s.Connects = true, s.Connects+1 })
	recv := make(chan *discoveryv3.DiscoveryResponse)
	errc := make(chan error, 1)
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case recv <- r:
			case <-sctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-sctx.Done():
			return got, sctx.Err()
		case err := <-errc:
			return got, fmt.Errorf("receive: %w", err)
		case r := <-recv:
			got = true
			reqs, result := st.onResponse(r, time.Now(), p.frozen.Load())
			p.pushes(shortType(r.GetTypeUrl()), result)
			if result == "rejected" {
				p.log.Warn("NACK: istiod sent configuration the simulated sidecar cannot follow",
					"type", shortType(r.GetTypeUrl()), "version", r.GetVersionInfo(), "err", reqs[0].GetErrorDetail().GetMessage())
			}
			p.publish(st)
			if err := sendAll(s, reqs); err != nil {
				return got, err
			}
		case <-p.thaw:
			reqs := st.unfreeze(time.Now())
			p.publish(st)
			if err := sendAll(s, reqs); err != nil {
				return got, err
			}
		}
	}
}

// sendAll sends reqs in order.
func sendAll(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, reqs []*discoveryv3.DiscoveryRequest) error {
	for _, r := range reqs {
		if err := s.Send(r); err != nil {
			return fmt.Errorf("send %s request: %w", shortType(r.GetTypeUrl()), err)
		}
	}
	return nil
}

// publish makes st's configuration the one the router uses and updates the
// status; the proxy is ready once it has routes and endpoints.
func (p *proxy) publish(st *adsState) {
	p.cfg.Store(st.cfg)
	rt := st.types[typeRoute]
	wc := map[string][]WeightedCluster{}
	for _, r := range st.cfg.routes {
		maps.Copy(wc, r.weightedClusters())
	}
	pending := ""
	if rt.pending != nil {
		pending = rt.pending.GetVersionInfo()
	}
	p.update(func(s *ProxyStatus) {
		s.RouteVersion, s.PendingRouteVersion, s.WeightedClusters = rt.version, pending, wc
		s.RouteUpdates = append([]RouteUpdate(nil), st.routeUpdates...)
		if n := len(st.routeUpdates); n > 0 {
			s.RouteNonce = st.routeUpdates[n-1].Nonce
		}
	})
	if st.hasRoutes() && st.types[typeEndpoint].version != "" {
		p.readyMu.Do(func() { close(p.ready) })
	}
}

// update changes the status under its lock.
func (p *proxy) update(f func(*ProxyStatus)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.status)
}

// snapshot returns a copy of the status.
func (p *proxy) snapshot() ProxyStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.status
	s.RouteUpdates = append([]RouteUpdate(nil), s.RouteUpdates...)
	s.WeightedClusters = maps.Clone(s.WeightedClusters)
	return s
}

// ProxyStatus is what one simulated sidecar has from istiod.
type ProxyStatus struct {
	// ID is the Envoy node ID, sidecar~<pod IP>~<pod>.<ns>~<ns>.svc.cluster.local,
	// as istiod's /debug/syncz lists it (with a connection number).
	ID       string `json:"id"`
	Workload string `json:"workload"`
	Pod      string `json:"pod"`
	IP       string `json:"ip"`
	// Connected is true while the ADS stream is open; Connects counts the
	// streams opened, so a reconnect shows as 2.
	Connected bool   `json:"connected"`
	Connects  int    `json:"connects"`
	LastError string `json:"lastError,omitempty"`
	// Frozen is true while the proxy neither applies nor ACKs pushes.
	Frozen bool `json:"frozen"`
	// RouteVersion and RouteNonce are the version_info and nonce of the
	// route configuration last accepted (and ACKed).
	RouteVersion string `json:"routeVersion"`
	RouteNonce   string `json:"routeNonce"`
	// PendingRouteVersion is the version held unapplied while frozen.
	PendingRouteVersion string `json:"pendingRouteVersion,omitempty"`
	// RouteUpdates are the route versions accepted, oldest first (at most
	// 64), with when each arrived and was applied.
	RouteUpdates []RouteUpdate `json:"routeUpdates"`
	// WeightedClusters are, by host FQDN, the clusters of the accepted
	// routes in route order (see WeightedCluster.Route).
	WeightedClusters map[string][]WeightedCluster `json:"weightedClusters"`
}
