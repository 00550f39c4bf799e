package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	istio "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/istioadapter"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// controllerOptions are the flags of `serin controller`.
type controllerOptions struct {
	Kubeconfig              string
	HTTPAddr                string
	LogFormat               string
	LogLevel                string
	Namespace               string
	MeshRootNamespace       string
	LeaderElect             bool
	LeaderElectionNamespace string
	ShutdownTimeout         time.Duration
}

func parseControllerFlags(args []string) (controllerOptions, error) {
	var o controllerOptions
	fs := flag.NewFlagSet("serin controller", flag.ContinueOnError)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty uses $KUBECONFIG or the in-cluster configuration")
	fs.StringVar(&o.HTTPAddr, "http-addr", "127.0.0.1:8080", "address for /healthz, /readyz and /metrics")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.Namespace, "namespace", "", "watch Rollouts in this namespace only; empty watches all")
	fs.StringVar(&o.MeshRootNamespace, "mesh-root-namespace", "istio-system", "Istio's root namespace, where mesh-wide PeerAuthentication lives")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader through a Lease before reconciling (for more than one replica)")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease; empty uses the pod's namespace")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to wait for in-flight work on SIGTERM")
	if err := fs.Parse(args); err != nil {
		return o, err
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := controller(ctx, o, log); err != nil {
		log.Error("controller stopped", "err", err)
		return 1
	}
	log.Info("controller stopped")
	return 0
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}

// controller wires the concrete adapters into the engine and runs it
// until ctx ends.
func controller(ctx context.Context, o controllerOptions, log *slog.Logger) error {
	cfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubernetes configuration: %w", err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	mopts := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: "0"}, // served on --http-addr below
		HealthProbeBindAddress:  "0",
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "serin-controller.serin.dev",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		GracefulShutdownTimeout: &o.ShutdownTimeout,
	}
	if o.Namespace != "" {
		mopts.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{o.Namespace: {}}}
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	ic, err := istio.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("istio client: %w", err)
	}
	router, err := istioadapter.NewRouter(istioadapter.Options{Istio: ic, MeshRootNamespace: o.MeshRootNamespace})
	if err != nil {
		return err
	}
	engine, err := rollout.NewEngine(rollout.Options{
		Client:   mgr.GetClient(),
		Router:   router,
		Analyzer: analysis.AlwaysPass{}, // replaced by the Prometheus/Jaeger analyzer
		Recorder: mgr.GetEventRecorder("serin-controller"),
		Log:      log,
	})
	if err != nil {
		return err
	}
	if err := engine.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up rollout controller: %w", err)
	}
	return serve(ctx, o, log, mgr)
}

// serve runs the manager and the HTTP endpoints together, and shuts both
// down when ctx ends.
func serve(ctx context.Context, o controllerOptions, log *slog.Logger, mgr ctrl.Manager) error {
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", o.HTTPAddr, err)
	}
	var ready atomic.Bool
	srv := &http.Server{Handler: httpMux(&ready), ReadHeaderTimeout: 5 * time.Second}
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}))
	return mux
}
