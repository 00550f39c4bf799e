package meshsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
)

// maxAsync bounds the amplified downstream calls running in the background.
const maxAsync = 256

// Options configure Start. The zero value of each field has the meaning
// given beside it.
type Options struct {
	// Namespace of the simulated workloads and of the watched
	// VirtualServices and DestinationRules; "" means "shop".
	Namespace string
	// RESTConfig reaches the API server to watch; nil watches nothing and
	// routes every host to its default version (v1).
	RESTConfig *rest.Config
	// OTLPEndpoint is the host:port of an OTLP/HTTP receiver; "" disables
	// tracing.
	OTLPEndpoint string
	// RPS is the background load into frontend, in requests per second, at
	// most MaxRPS; 0 means none (the binary's default is DefaultRPS).
	RPS float64
	// FireRPS paces Fire, at most MaxRPS; 0 means DefaultFireRPS.
	FireRPS float64
	// ListenHost is the loopback IP the workloads listen on; "" means
	// 127.0.0.1. Each workload gets its own port.
	ListenHost string
	// ControlAddr is the loopback host:port of the control API; "" means
	// 127.0.0.1:0.
	ControlAddr string
	// MetricsAddr is the loopback host:port of /metrics; "" means
	// 127.0.0.1:0.
	MetricsAddr string
	// Seed seeds every random draw of the simulation: which requests fail,
	// how long each hop takes, and where the routing sequence starts. The
	// draws are random per request, so a window of N requests shows the
	// spread real traffic has; the same seed replays the same draws per
	// workload. 0 means a seed picked at random, which Start logs and Seed
	// reports.
	Seed uint64
	// BackgroundErrorRate gives workloads, keyed "service/version" (for
	// example "checkout/v1"), an error rate in [0,1] that they have
	// whatever the injected faults: real services fail now and then. It is
	// drawn independently of Fault.ErrorRate, and a request fails if either
	// draw fails it. nil means none. ParseErrorRates reads the flag form.
	BackgroundErrorRate map[string]float64
	// StartDelay is how long a new pod of a Deployment takes to become
	// ready (see README.md, "Deployments"); the pod template's annotation
	// meshsim.serin.dev/start-delay overrides it. 0 means
	// DefaultStartDelay; it must not be negative.
	StartDelay time.Duration
	// XDSAddr is the host:port of istiod's plaintext xDS port. When set,
	// every workload's sidecar subscribes to istiod over ADS as an Istio
	// sidecar of one of the workload's Pods and routes the workload's calls
	// by the routes, clusters and endpoints istiod sends (see README.md,
	// "Routing from istiod"); the VirtualServices and DestinationRules are
	// then not watched. It needs RESTConfig, for the Pods. "" routes by the
	// watched VirtualServices and DestinationRules.
	XDSAddr string
	// Log receives progress and warnings; nil discards them.
	Log *slog.Logger
}

// withDefaults fills in the zero fields and validates the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" {
		o.Namespace = "shop"
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return o, fmt.Errorf("namespace %q: %v", o.Namespace, errs)
	}
	if o.RPS < 0 || o.RPS > MaxRPS || o.RPS != o.RPS {
		return o, fmt.Errorf("rps %v is not in [0,%d]", o.RPS, MaxRPS)
	}
	if o.FireRPS < 0 || o.FireRPS > MaxRPS || o.FireRPS != o.FireRPS {
		return o, fmt.Errorf("fire rps %v is not in [0,%d]", o.FireRPS, MaxRPS)
	}
	if o.FireRPS == 0 {
		o.FireRPS = DefaultFireRPS
	}
	if o.ListenHost == "" {
		o.ListenHost = "127.0.0.1"
	}
	if ip := net.ParseIP(o.ListenHost); ip == nil || !ip.IsLoopback() {
		return o, fmt.Errorf("listen host %q is not a loopback IP", o.ListenHost)
	}
	for _, a := range []*string{&o.ControlAddr, &o.MetricsAddr} {
		if *a == "" {
			*a = "127.0.0.1:0"
		}
		host, _, err := net.SplitHostPort(*a)
		if err != nil {
			return o, fmt.Errorf("address %q: %w", *a, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return o, fmt.Errorf("address %q is not on a loopback IP", *a)
		}
	}
	if o.XDSAddr != "" {
		if o.RESTConfig == nil {
			return o, fmt.Errorf("xds address %s needs a RESTConfig: the sidecars take their identity from the Pods", o.XDSAddr)
		}
		if _, _, err := net.SplitHostPort(o.XDSAddr); err != nil {
			return o, fmt.Errorf("xds address %q: %w", o.XDSAddr, err)
		}
	}
	if o.StartDelay < 0 {
		return o, fmt.Errorf("start delay %v is negative", o.StartDelay)
	}
	if o.StartDelay == 0 {
		o.StartDelay = DefaultStartDelay
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Seed == 0 {
		o.Seed = randomSeed()
		o.Log.Info("meshsim seed picked at random; pass it as Options.Seed (meshsim -seed) to replay the draws", "seed", o.Seed)
	}
	return o, nil
}

// Sim is a running mesh simulator. Its methods are safe for concurrent use.
type Sim struct {
	log     *slog.Logger
	cat     *catalog
	router  *router
	faults  *faults
	metrics *metrics
	tr      *tracers
	client  *http.Client
	load    *loadGen
	fireRPS float64
	seed    uint64
	latency *streamSet // by workload name: its latency draws
	unready unreadyCounts

	// deployedByKey holds every Deployment workload served so far, by key,
	// in its latest state: the shared pod listener serves a request as the
	// workload it names, even one whose pods just went.
	deployedByKey sync.Map

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc

	addrs     map[string]string // workload name → host:port
	endpoints []endpoint
	control   net.Listener
	metricL   net.Listener
	podL      net.Listener // shared by every Deployment workload
	watch     *watcher
	kubelet   *kubelet
	proxies   *proxySet // nil unless Options.XDSAddr

	serveWG sync.WaitGroup
	bg      sync.WaitGroup // background (amplified) calls
	async   chan struct{}  // bounds bg
	loadWG  sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Start starts the simulator: one HTTP listener per static workload and one
// for the Deployment workloads, the control and metrics listeners, the
// VirtualService/DestinationRule watch and the kubelet stand-in (when
// RESTConfig is set, returning once they have synced), tracing and the
// background load. ctx bounds the start only; Close stops everything.
func Start(ctx context.Context, o Options) (*Sim, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("meshsim options: %w", err)
	}
	cat := newCatalog(o.Namespace)
	background, err := backgroundRates(cat, o.BackgroundErrorRate)
	if err != nil {
		return nil, fmt.Errorf("meshsim options: %w", err)
	}
	s := &Sim{
		log: o.Log, cat: cat, seed: o.Seed,
		router:  newRouter(cat, newPicker(newStream(o.Seed, "routing").float64())),
		faults:  newFaults(cat, o.Seed, background),
		latency: newStreamSet(o.Seed, "latency/"),
		metrics: newMetrics(), fireRPS: o.FireRPS, addrs: map[string]string{}, async: make(chan struct{}, maxAsync),
		client: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second, DisableCompression: true},
			Timeout:   3 * maxFaultLatencyMs * time.Millisecond,
		},
	}
	s.router.lb = newStream(o.Seed, "endpoints")
	s.faults.deployed = s.hasDeployed
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.load = newLoadGen(s, o.RPS)
	if err := s.start(ctx, o); err != nil {
		return nil, errors.Join(fmt.Errorf("start meshsim: %w", err), s.Close())
	}
	s.log.Info("meshsim started (a stand-in for Envoy sidecars, for local tests only)",
		"namespace", o.Namespace, "metrics", s.MetricsAddr(), "control", s.ControlURL(), "workloads", s.addrs,
		"seed", s.seed, "backgroundErrorRate", o.BackgroundErrorRate)
	return s, nil
}

// start opens the listeners, starts the watch and tracing, then serves.
func (s *Sim) start(ctx context.Context, o Options) error {
	var err error
	if s.tr, err = newTracers(ctx, o.OTLPEndpoint, s.cat); err != nil {
		return err
	}
	if s.control, err = net.Listen("tcp", o.ControlAddr); err != nil {
		return fmt.Errorf("listen control on %s: %w", o.ControlAddr, err)
	}
	if s.metricL, err = net.Listen("tcp", o.MetricsAddr); err != nil {
		return fmt.Errorf("listen metrics on %s: %w", o.MetricsAddr, err)
	}
	s.serveOn(s.control, s.controlHandler())
	mmux := http.NewServeMux()
	mmux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.serveOn(s.metricL, mmux)
	for _, name := range s.cat.workloadNames() {
		l, err := net.Listen("tcp", net.JoinHostPort(o.ListenHost, "0"))
		if err != nil {
			return fmt.Errorf("listen for workload %s: %w", name, err)
		}
		s.addrs[name] = l.Addr().String()
		s.serveOn(l, s.inbound(s.cat.workloads[name]))
	}
	if s.podL, err = net.Listen("tcp", net.JoinHostPort(o.ListenHost, "0")); err != nil {
		return fmt.Errorf("listen for Deployment workloads: %w", err)
	}
	s.serveOn(s.podL, s.podsInbound())
	if o.RESTConfig != nil {
		if o.XDSAddr == "" {
			if s.watch, err = startWatcher(ctx, o.RESTConfig, o.Namespace, s.router, s.log); err != nil {
				return err
			}
		}
		s.kubelet, err = startKubelet(ctx, o.RESTConfig, kubeletConfig{ns: o.Namespace, startDelay: o.StartDelay,
			seed: o.Seed, log: s.log, publish: s.publishDeployed})
		if err != nil {
			return err
		}
	}
	if o.XDSAddr != "" {
		if err := s.startXDS(ctx, o); err != nil {
			return err
		}
	}
	for _, e := range s.endpoints {
		s.serveWG.Go(func() {
			if err := e.srv.Serve(e.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("serve", "addr", e.l.Addr().String(), "err", err)
			}
		})
	}
	s.loadWG.Go(func() { s.load.run(s.ctx) })
	return nil
}

// endpoint is one listener and the server that will serve it.
type endpoint struct {
	srv *http.Server
	l   net.Listener
}

// serveOn registers a server for l; start serves them all once every
// listener is open and the watch has synced, so that a failed start leaves
// nothing serving.
func (s *Sim) serveOn(l net.Listener, h http.Handler) {
	s.endpoints = append(s.endpoints, endpoint{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, l: l})
}

// MetricsAddr is the host:port serving /metrics, for a Prometheus scrape
// target.
func (s *Sim) MetricsAddr() string { return addrOf(s.metricL) }

// ControlURL is the base URL of the control API, e.g. http://127.0.0.1:PORT.
func (s *Sim) ControlURL() string { return "http://" + addrOf(s.control) }

// Seed is the seed of the simulation's random draws: Options.Seed, or the
// one picked at random when that was 0. A test prints it so that a failure
// can be replayed.
func (s *Sim) Seed() uint64 { return s.seed }

// Namespace is the namespace the simulated workloads live in.
func (s *Sim) Namespace() string { return s.cat.namespace }

// WorkloadAddrs returns each workload's listen address, by workload name:
// one per static workload, and for every current Deployment workload the
// listener they share.
func (s *Sim) WorkloadAddrs() map[string]string {
	out := make(map[string]string, len(s.addrs))
	for k, v := range s.addrs {
		out[k] = v
	}
	for _, w := range s.router.topo.Load().workloads() {
		out[w.name()] = addrOf(s.podL)
	}
	return out
}

// addrOf is l's address, or "" for nil.
func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// SetFault injects f into the workload service-version (for example
// "checkout", "v2"), replacing its previous fault; the zero Fault clears it.
// It returns an error wrapping ErrUnknownWorkload or ErrInvalidFault, and
// then changes nothing.
func (s *Sim) SetFault(service, version string, f Fault) error {
	if err := s.faults.set(service, version, f); err != nil {
		return fmt.Errorf("set fault: %w", err)
	}
	s.log.Info("fault set", "service", service, "version", version, "fault", f)
	return nil
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.faults.clearAll()
	s.log.Info("faults cleared")
}

// Faults returns the faults in place, keyed "service/version".
func (s *Sim) Faults() map[string]Fault { return s.faults.list() }

// SetRPS changes the background load at once; it is clamped to
// [0, MaxRPS], and 0 pauses it.
func (s *Sim) SetRPS(rps float64) {
	s.load.setRPS(rps)
	s.log.Info("load rate set", "rps", s.load.rps())
}

// Close stops the load, the watch, every listener and background call, and
// flushes the spans. It is safe to call more than once.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

// close does Close's work once.
func (s *Sim) close() error {
	s.cancel()
	s.loadWG.Wait()
	if s.watch != nil {
		s.watch.close()
	}
	if s.kubelet != nil {
		s.kubelet.close()
	}
	if s.proxies != nil {
		s.proxies.close()
	}
	// The transport may hold connections it dialed but never used; the
	// servers count those as new, not idle, and Shutdown would wait 5 s for
	// them. Closing them here lets Shutdown see them go.
	s.client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, e := range s.endpoints {
		wg.Go(func() {
			if err := e.srv.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("shut down server: %w", err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, l := range []net.Listener{s.control, s.metricL, s.podL} { // opened, maybe not yet served
		if l != nil {
			_ = l.Close()
		}
	}
	for _, e := range s.endpoints {
		_ = e.l.Close() // a no-op error once Shutdown closed it
	}
	s.serveWG.Wait()
	s.bg.Wait()
	s.client.CloseIdleConnections()
	if s.tr != nil {
		if err := s.tr.shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
