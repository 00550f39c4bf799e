package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"
	istio "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/analysis/jaeger"
	"github.com/serin-dev/serin/analysis/prometheus"
	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/istioadapter"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/deployments"
	"github.com/serin-dev/serin/rollout/notify"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/web"
)

// controllerOptions are the flags of `serin controller`.
type controllerOptions struct {
	Kubeconfig              string
	HTTPAddr                string
	MetricsAddr             string
	MetricsCertDir          string
	LogFormat               string
	LogLevel                string
	Namespace               string
	MeshRootNamespace       string
	LeaderElect             bool
	LeaderElectionNamespace string
	HA                      haOptions
	ShutdownTimeout         time.Duration
	PrometheusURL           string
	JaegerURL               string
	ScrapeInterval          time.Duration
	JaegerMaxTraces         int
	NoAnalysis              bool
	Auth                    string
	APITokenFile            string
	SecureCookies           bool
	TokenAudiences          []string
	NotifyConfig            string
	MaxConcurrentReconciles int
	KubeQPS                 float64
	KubeBurst               int
	TenancyConfig           string
	IstiodURL               string
	IstiodTokenFile         string
	DataPlaneTimeout        time.Duration
	PprofAddr               string
}

func parseControllerFlags(args []string) (controllerOptions, error) {
	var o controllerOptions
	fs := flag.NewFlagSet("serin controller", flag.ContinueOnError)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty uses $KUBECONFIG or the in-cluster configuration")
	fs.StringVar(&o.HTTPAddr, "http-addr", "127.0.0.1:8080", "address for /healthz, /readyz and, without --metrics-addr, /metrics")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "address for /metrics alone, over HTTPS, answering only callers the API server authenticates (TokenReview) and authorizes to get the non-resource URL /metrics (SubjectAccessReview), e.g. :8443; empty serves /metrics on --http-addr without authentication")
	fs.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "", "with --metrics-addr: a directory holding tls.crt and tls.key (a cert-manager Secret, say), reloaded when they change; empty uses a self-signed certificate")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.Namespace, "namespace", "", "watch Rollouts in this namespace only; empty watches all")
	fs.StringVar(&o.MeshRootNamespace, "mesh-root-namespace", "istio-system", "Istio's root namespace, where mesh-wide PeerAuthentication lives")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader through a Lease before reconciling (for more than one replica)")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease; empty uses the pod's namespace")
	o.HA.addFlags(fs)
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to wait for in-flight work on SIGTERM")
	fs.StringVar(&o.PrometheusURL, "prometheus-url", "", "Prometheus base URL for analysis, e.g. http://prometheus.istio-system:9090 (required unless --no-analysis)")
	fs.StringVar(&o.JaegerURL, "jaeger-url", "", "Jaeger query base URL for per-edge trace analysis, e.g. http://tracing.istio-system:16686; empty turns trace checks off")
	fs.DurationVar(&o.ScrapeInterval, "scrape-interval", 15*time.Second, "Prometheus's scrape interval of Istio's metrics; analysis windows span at least two. Checked against Prometheus at start-up: when Prometheus scrapes at another interval, a warning is logged and Prometheus's is used")
	fs.IntVar(&o.JaegerMaxTraces, "jaeger-max-traces", 200, "traces fetched from Jaeger per rollout per tick")
	fs.BoolVar(&o.NoAnalysis, "no-analysis", false, "run without analysis: every tick passes (AlwaysPass placeholder; never for real canaries)")
	fs.StringVar(&o.Auth, "auth", "none", "how the REST API and console authenticate: none (API off), static (--api-token-file) or kubernetes (TokenReview and SubjectAccessReview)")
	fs.StringVar(&o.APITokenFile, "api-token-file", "", "with --auth=static: a file of token,user,role lines (roles viewer and operator)")
	fs.StringVar(&o.NotifyConfig, "notify-config", "", "notification channels (YAML; see rollout/notify/README.md); empty sends none")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 16, "rollouts reconciled at once, so that one rollout's slow tick never delays another's rollback")
	fs.Float64Var(&o.KubeQPS, "kube-api-qps", 200, "queries per second to the Kubernetes API server, on every configuration path (client-go's default of 5 would cap the controller at a few ticks a second)")
	fs.IntVar(&o.KubeBurst, "kube-api-burst", 400, "burst of queries to the Kubernetes API server")
	fs.StringVar(&o.TenancyConfig, "tenancy-config", "", "which other namespaces' series each namespace's custom queries and analysis.match may select (YAML; see analysis.Tenancy); empty allows each rollout its own namespace only")
	fs.StringVar(&o.IstiodURL, "istiod-url", "", "istiod's debug API, e.g. http://istiod.istio-system:15014: confirm each weight change in the proxies (every connected proxy that routes the service has acknowledged it) before a step's dwell starts and before a rollback is notified; empty stops at the VirtualService write")
	fs.StringVar(&o.IstiodTokenFile, "istiod-token-file", "", "with --istiod-url: a file holding the bearer token for istiod's debug API, a projected service-account token with the audience istio-ca (istiod then allows serin's namespace by DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES); empty sends none, which istiod accepts only from its own host")
	fs.DurationVar(&o.DataPlaneTimeout, "dataplane-timeout", rollout.DefaultDataPlaneTimeout, "with --istiod-url: how long the proxies get to carry a written weight before the rollout is held, naming the proxies that lag")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "address for Go's profiler (/debug/pprof/), e.g. 127.0.0.1:6060, to see where a slow controller spends its time; empty serves none. It is unauthenticated: bind it to loopback")
	fs.BoolVar(&o.SecureCookies, "secure-cookies", false, "mark the console's cookies Secure; set it when the console is served over TLS")
	audiences := fs.String("token-audiences", "", "with --auth=kubernetes: comma-separated audiences a bearer token must be meant for, e.g. serin (then only tokens requested for serin sign in, such as kubectl create token SA --audience serin); empty accepts the API server's own audiences (--api-audiences), as its TokenReview does, and so any service-account token of the cluster")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.TokenAudiences, err = parseAudiences(*audiences); err != nil {
		return o, err
	}
	switch {
	case o.Auth != "none" && o.Auth != "static" && o.Auth != "kubernetes":
		return o, fmt.Errorf("--auth %q: want none, static or kubernetes", o.Auth)
	case o.Auth == "static" && o.APITokenFile == "":
		return o, errors.New("--auth=static needs --api-token-file")
	case o.Auth != "kubernetes" && len(o.TokenAudiences) > 0:
		return o, errors.New("--token-audiences is only used with --auth=kubernetes")
	case o.Auth != "static" && o.APITokenFile != "":
		return o, errors.New("--api-token-file is only used with --auth=static")
	}
	if err := o.HA.validate(o.Auth); err != nil {
		return o, err
	}
	if o.PrometheusURL == "" && !o.NoAnalysis {
		return o, errors.New("--prometheus-url is required (or --no-analysis, which promotes without measuring anything)")
	}
	if o.PrometheusURL != "" && o.NoAnalysis {
		return o, errors.New("--no-analysis and --prometheus-url contradict each other")
	}
	if o.ScrapeInterval <= 0 {
		return o, fmt.Errorf("--scrape-interval %v: must be positive", o.ScrapeInterval)
	}
	if o.IstiodURL != "" {
		if _, err := istioadapter.NewDataPlane(istioadapter.DataPlaneOptions{URL: o.IstiodURL}); err != nil {
			return o, fmt.Errorf("--istiod-url: %w", err)
		}
	}
	if o.IstiodTokenFile != "" && o.IstiodURL == "" {
		return o, errors.New("--istiod-token-file is only used with --istiod-url")
	}
	if o.DataPlaneTimeout <= 0 {
		return o, fmt.Errorf("--dataplane-timeout %v: must be positive", o.DataPlaneTimeout)
	}
	if o.MaxConcurrentReconciles < 1 {
		return o, fmt.Errorf("--max-concurrent-reconciles %d: must be at least 1", o.MaxConcurrentReconciles)
	}
	if o.KubeQPS <= 0 || o.KubeBurst < 1 {
		return o, fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d: must be positive", o.KubeQPS, o.KubeBurst)
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return o, fmt.Errorf("--log-format %q: want text or json", o.LogFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return o, fmt.Errorf("--log-level %q: %w", o.LogLevel, err)
	}
	if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
		return o, fmt.Errorf("--http-addr %q: %w", o.HTTPAddr, err)
	}
	if o.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(o.PprofAddr); err != nil {
			return o, fmt.Errorf("--pprof-addr %q: %w", o.PprofAddr, err)
		}
	}
	if o.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return o, fmt.Errorf("--metrics-addr %q: %w", o.MetricsAddr, err)
		}
	} else if o.MetricsCertDir != "" {
		return o, errors.New("--metrics-cert-dir is only used with --metrics-addr")
	}
	return o, nil
}

func newLogger(o controllerOptions) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.LogLevel)) // validated by parseControllerFlags
	hopts := &slog.HandlerOptions{Level: lvl}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, hopts))
}

func runController(args []string) int {
	o, err := parseControllerFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "serin controller: %v\n", err)
		return 2
	}
	log := newLogger(o)
	limit, err := softMemoryLimit(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serin controller: %v\n", err)
		return 2
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
		log.Info("Go soft memory limit set to 90% of the container's", "limit_bytes", limit, "from", memoryLimitEnv)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := controller(ctx, o, log); err != nil {
		log.Error("controller stopped", "err", err)
		return 1
	}
	log.Info("controller stopped")
	return 0
}

// restConfig loads the API server's configuration and sets the client's
// rate limits explicitly, whichever path it came from: client-go's
// defaults (5 QPS with --kubeconfig) would cap the ticks of every rollout.
func restConfig(o controllerOptions) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = float32(o.KubeQPS), o.KubeBurst
	return cfg, nil
}

// managerCache is the manager's cache options: only namespace, when it is
// set, and every cached object without its metadata.managedFields, which
// serin never reads and which is often the largest part of an object, so
// that the informers' memory follows the objects' content, not their
// write history (the read model is fed by the same informers). Updates of
// a cached object stay safe: the API server keeps an object's
// managedFields when an update sends none.
//
// The router reads VirtualServices, DestinationRules and
// PeerAuthentications from the same cache; with --namespace the mesh-wide
// PeerAuthentications of rootNamespace are cached too.
func managerCache(namespace, rootNamespace string) cache.Options {
	o := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if namespace != "" {
		o.DefaultNamespaces = map[string]cache.Config{namespace: {}}
		o.ByObject = map[client.Object]cache.ByObject{
			&secv1.PeerAuthentication{}: {Namespaces: map[string]cache.Config{namespace: {}, rootNamespace: {}}},
		}
	}
	return o
}

// newScheme holds the types the manager's client and cache serve:
// Kubernetes', Rollouts, and the Istio objects the router reads through
// the cache.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, netv1.AddToScheme, secv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return scheme, nil
}

// controller wires the concrete adapters into the engine and runs it
// until ctx ends.
func controller(ctx context.Context, o controllerOptions, log *slog.Logger) error {
	cfg, err := restConfig(o)
	if err != nil {
		return fmt.Errorf("kubernetes configuration: %w", err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	mopts := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  "0",
		PprofBindAddress:        o.PprofAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "serin-controller.serin.dev",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		LeaseDuration:           &o.HA.LeaseDuration,
		RenewDeadline:           &o.HA.RenewDeadline,
		RetryPeriod:             &o.HA.RetryPeriod,
		// Safe because the process ends when the manager does: a clean stop
		// hands the lead over at once rather than after LeaseDuration.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &o.ShutdownTimeout,
		Cache:                         managerCache(o.Namespace, o.MeshRootNamespace),
		MapperProvider:                newMemoMapper,
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	ic, err := istio.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("istio client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	router, err := istioadapter.NewRouter(istioadapter.Options{Istio: ic, Kube: kube, MeshRootNamespace: o.MeshRootNamespace, Cache: mgr.GetCache()})
	if err != nil {
		return err
	}
	if err := router.IndexFields(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	o.ScrapeInterval = scrapeInterval(ctx, o, log) // Prometheus's own when it answers
	queries, err := rollout.NewQueryMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	analyzer, err := newAnalyzer(o, log, queries)
	if err != nil {
		return err
	}
	notifier, err := newNotifier(ctx, o, cfg, log, mgr)
	if err != nil {
		return err
	}
	tenancy, err := loadTenancy(o)
	if err != nil {
		return err
	}
	dataPlane, err := newDataPlane(o, log, mgr)
	if err != nil {
		return err
	}
	workloads, err := deployments.New(deployments.Options{Client: mgr.GetClient(), Informers: mgr.GetCache()})
	if err != nil {
		return err
	}
	store, err := newReadModel(ctx, o, log, mgr)
	if err != nil {
		return err
	}
	var live rollout.LiveStatus // an interface holding a nil *Store would not be nil
	if store != nil {
		live = store
	}
	engine, err := rollout.NewEngine(rollout.Options{
		Client:    mgr.GetClient(),
		Router:    router,
		Workloads: workloads,
		Analyzer:  analyzer,
		Notifier:  notifier,
		Recorder:  mgr.GetEventRecorder("serin-controller"),
		Log:       log,
		Metrics:   ctrlmetrics.Registry,
		Tenancy:   tenancy,

		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		DataPlane:               dataPlane,
		DataPlaneTimeout:        o.DataPlaneTimeout,
		Live:                    live,
	})
	if err != nil {
		return err
	}
	if err := engine.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up rollout controller: %w", err)
	}
	registry := serveSeriesToo(engine.Series())
	apiHandler, err := newAPI(o, log, mgr, tenancy, store)
	if err != nil {
		return err
	}
	return serve(ctx, o, log, mgr, registry, apiHandler)
}

// newDataPlane returns the reader of istiod's debug API for --istiod-url,
// run by the manager, or nil without the flag: an interface holding a nil
// pointer would not be nil to the engine.
func newDataPlane(o controllerOptions, log *slog.Logger, mgr ctrl.Manager) (rollout.DataPlane, error) {
	if o.IstiodURL == "" {
		return nil, nil
	}
	dp, err := istioadapter.NewDataPlane(istioadapter.DataPlaneOptions{URL: o.IstiodURL, TokenFile: o.IstiodTokenFile, Log: log.With("component", "dataplane")})
	if err != nil {
		return nil, fmt.Errorf("--istiod-url: %w", err)
	}
	if err := mgr.Add(dp); err != nil {
		return nil, fmt.Errorf("add the data plane reader: %w", err)
	}
	return dp, nil
}

// loadTenancy loads --tenancy-config; nil (each rollout its own namespace
// only) without one. A file that does not parse stops the start-up.
func loadTenancy(o controllerOptions) (*analysis.Tenancy, error) {
	if o.TenancyConfig == "" {
		return nil, nil
	}
	t, err := analysis.LoadTenancy(o.TenancyConfig)
	if err != nil {
		return nil, fmt.Errorf("--tenancy-config: %w", err)
	}
	return t, nil
}

// newNotifier loads the notification channels; a config that does not
// parse, or a Secret that cannot be read, stops the start-up.
func newNotifier(ctx context.Context, o controllerOptions, cfg *rest.Config, log *slog.Logger, mgr ctrl.Manager) (rollout.Notifier, error) {
	if o.NotifyConfig == "" {
		log.Info("no --notify-config: rollout events go to Kubernetes Events only")
		return rollout.NopNotifier{}, nil
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	nc, err := notify.Load(ctx, o.NotifyConfig, notify.KubeSecrets{Client: kc.CoreV1()})
	if err != nil {
		return nil, fmt.Errorf("--notify-config: %w", err)
	}
	n, err := notify.New(nc, notify.Options{Log: log})
	if err != nil {
		return nil, fmt.Errorf("--notify-config: %w", err)
	}
	// Each channel's worker runs with the manager and stops with it.
	if err := mgr.Add(n); err != nil {
		return nil, fmt.Errorf("add notification channels: %w", err)
	}
	if err := ctrlmetrics.Registry.Register(n.Collector()); err != nil {
		return nil, fmt.Errorf("register notification metrics: %w", err)
	}
	log.Info("notification channels loaded", "channels", n.Channels())
	return n, nil
}

// newReadModel is the read model of the REST API and the console, fed by
// the manager's cache and by the engine's unwritten ticks; nil when
// --auth=none, which serves neither.
func newReadModel(ctx context.Context, o controllerOptions, log *slog.Logger, mgr ctrl.Manager) (*readmodel.Store, error) {
	if o.Auth == "none" {
		return nil, nil
	}
	store, err := readmodel.New()
	if err != nil {
		return nil, err
	}
	if err := store.Feed(ctx, mgr.GetCache(), log); err != nil {
		return nil, fmt.Errorf("feed the read model: %w", err)
	}
	return store, nil
}

// newAPI builds the REST API and the console on store, on one handler; or
// returns nil when --auth=none: there are no anonymous requests.
func newAPI(o controllerOptions, log *slog.Logger, mgr ctrl.Manager, tenancy *analysis.Tenancy, store *readmodel.Store) (http.Handler, error) {
	if o.Auth == "none" {
		log.Warn("the REST API and console are off (--auth=none)")
		return nil, nil
	}
	authn, authz, err := newAuth(o, mgr)
	if err != nil {
		return nil, err
	}
	sessionKey, err := o.HA.sessionKey()
	if err != nil {
		return nil, err
	}
	throttle := api.NewFailureThrottle(nil) // one budget of failed authentications for the API and the console
	wo := web.Options{Store: store, Authenticator: authn, Authorizer: authz, SecureCookies: o.SecureCookies, Log: log, Throttle: throttle,
		SessionKey: sessionKey}
	console, err := web.New(wo)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	writer := api.KubeWriter{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()}
	var traces api.TraceReader // nil without --jaeger-url: the API answers traces with 501
	if o.JaegerURL != "" {
		j, err := jaeger.New(jaeger.Options{QueryURL: o.JaegerURL})
		if err != nil {
			return nil, fmt.Errorf("--jaeger-url: %w", err)
		}
		traces = j
	}
	apiHandler, err := api.New(api.Options{
		Store:         store,
		Writer:        writer,
		Workloads:     writer,
		Traces:        traces,
		Authenticator: authn,
		Authorizer:    authz,
		Sessions:      console,
		Throttle:      throttle,
		Tenancy:       tenancy,
		Log:           log,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/", console)
	return mux, nil
}

// newAuth picks how the API and the console authenticate: a static token
// file, or the cluster itself (TokenReview and SubjectAccessReview), so
// that access is exactly what RBAC grants.
func newAuth(o controllerOptions, mgr ctrl.Manager) (api.Authenticator, api.Authorizer, error) {
	switch o.Auth {
	case "static":
		st, err := api.LoadStaticTokens(o.APITokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--api-token-file: %w", err)
		}
		return st, st, nil
	case "kubernetes":
		ka, err := api.NewKubeAuth(api.KubeAuthOptions{Client: mgr.GetClient(), Audiences: o.TokenAudiences})
		if err != nil {
			return nil, nil, fmt.Errorf("--auth=kubernetes: %w", err)
		}
		return ka, ka, nil
	default:
		return nil, nil, fmt.Errorf("--auth %q: want static or kubernetes", o.Auth)
	}
}

// newAnalyzer builds the analysis runner on Prometheus and, when given,
// Jaeger, each counting its queries in queries (nil counts none); or the AlwaysPass
// placeholder when asked for explicitly.
func newAnalyzer(o controllerOptions, log *slog.Logger, queries *rollout.QueryMetrics) (rollout.Analyzer, error) {
	if o.NoAnalysis {
		log.Warn("analysis is off (--no-analysis): every tick passes; do not use this for real canaries")
		return analysis.AlwaysPass{}, nil
	}
	po := prometheus.Options{Address: o.PrometheusURL, CacheTTL: min(o.ScrapeInterval, time.Second)}
	if queries != nil {
		po.Observer = queries.Source("prometheus")
	}
	prom, err := prometheus.New(po)
	if err != nil {
		return nil, fmt.Errorf("--prometheus-url: %w", err)
	}
	ro := analysis.RunnerOptions{Metrics: prom, ScrapeInterval: o.ScrapeInterval}
	if o.JaegerURL != "" {
		jo := jaeger.Options{QueryURL: o.JaegerURL, MaxTraces: o.JaegerMaxTraces}
		if queries != nil {
			jo.Observer = queries.Source("jaeger")
		}
		j, err := jaeger.New(jo)
		if err != nil {
			return nil, fmt.Errorf("--jaeger-url: %w", err)
		}
		ro.Traces = j
	}
	return analysis.NewRunner(ro), nil
}

// scrapeCheckTimeout bounds the start-up check of --scrape-interval, so
// that an unreachable Prometheus delays the start by seconds at most.
const scrapeCheckTimeout = 5 * time.Second

// scrapeInterval returns the scrape interval analysis uses: Prometheus's
// own when it can be asked (see checkScrapeInterval), else
// --scrape-interval. A --prometheus-url that does not parse is left to
// newAnalyzer to refuse.
func scrapeInterval(ctx context.Context, o controllerOptions, log *slog.Logger) time.Duration {
	if o.NoAnalysis {
		return o.ScrapeInterval
	}
	prom, err := prometheus.New(prometheus.Options{Address: o.PrometheusURL})
	if err != nil {
		return o.ScrapeInterval
	}
	return checkScrapeInterval(ctx, prom, o.ScrapeInterval, log)
}

// intervalSource is what checkScrapeInterval asks; *prometheus.Source is
// one.
type intervalSource interface {
	// ScrapeInterval returns how often Prometheus scrapes Istio's metrics.
	ScrapeInterval(ctx context.Context) (prometheus.Interval, error)
}

// checkScrapeInterval asks src once for its scrape interval and returns
// the one analysis uses. The learned interval wins over configured, since
// analysis windows are sized from it: windows shorter than two real
// scrapes leave the judge too few samples, and needlessly long ones slow
// every step. A disagreement of more than
// prometheus.IntervalTolerance is logged as a warning naming both. When
// src cannot be asked, configured stays and the log says it was not
// checked.
func checkScrapeInterval(ctx context.Context, src intervalSource, configured time.Duration, log *slog.Logger) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, scrapeCheckTimeout)
	defer cancel()
	learned, err := src.ScrapeInterval(ctx)
	if err != nil {
		log.Warn("could not check --scrape-interval against Prometheus; analysis uses it as given",
			"scrape_interval", configured, "err", err)
		return configured
	}
	if w := prometheus.IntervalMismatch(configured, learned); w != "" {
		log.Warn("--scrape-interval disagrees with Prometheus; analysis uses Prometheus's interval",
			"scrape_interval", configured, "prometheus_interval", learned.Every, "detail", w)
	} else {
		log.Info("--scrape-interval agrees with Prometheus; analysis uses Prometheus's interval",
			"scrape_interval", configured, "prometheus_interval", learned.Every, "basis", learned.Basis())
	}
	return learned.Every
}

// serve runs the manager and the HTTP endpoints together, and shuts both
// down when ctx ends.
func serve(ctx context.Context, o controllerOptions, log *slog.Logger, mgr ctrl.Manager, registry withSeries, apiHandler http.Handler) error {
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", o.HTTPAddr, err)
	}
	var ready atomic.Bool
	mux := httpMux(&ready)
	if o.MetricsAddr == "" {
		mux.Handle("GET /metrics", metricsHandler(registry))
	}
	if apiHandler != nil {
		mux.Handle("/", apiHandler) // the API under /api/ and the console
	}
	srv := newHTTPServer(ctx, mux, defaultHTTPLimits)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	log.Info("serving health and metrics", "addr", ln.Addr().String())
	go func() {
		if mgr.GetCache().WaitForCacheSync(ctx) {
			ready.Store(true)
			log.Info("caches synced; ready")
		}
	}()
	runErr := mgr.Start(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http server shutdown", "err", err)
	}
	return runErr
}

func httpMux(ready *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "caches not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// metricsOptions says where /metrics is served. With --metrics-addr,
// controller-runtime's metrics server serves it on that address alone,
// over HTTPS, behind its secure-serving filter
// (filters.WithAuthenticationAndAuthorization): the caller's bearer token
// is checked with a TokenReview and its right to get the non-resource URL
// /metrics with a SubjectAccessReview, as Kubebuilder's controllers do, so
// a Prometheus scrapes it with a service-account token bound to a
// ClusterRole granting that. The controller's own RBAC already allows
// both reviews (for --auth=kubernetes). HTTP/2 is off, as Kubebuilder
// has it, against HTTP/2 stream resets (CVE-2023-44487).
//
// Without --metrics-addr, /metrics stays on --http-addr without
// authentication beside /healthz and /readyz, as it always was: nothing
// changes for a deployment that scrapes it there, and the local stack's
// Prometheus and the tests read it so.
func metricsOptions(o controllerOptions) metricsserver.Options {
	if o.MetricsAddr == "" {
		return metricsserver.Options{BindAddress: "0"} // served on --http-addr by serve
	}
	return metricsserver.Options{
		BindAddress:    o.MetricsAddr,
		SecureServing:  true,
		CertDir:        o.MetricsCertDir,
		FilterProvider: filters.WithAuthenticationAndAuthorization,
		TLSOpts:        []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
}
