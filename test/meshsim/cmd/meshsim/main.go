// Command meshsim runs the mesh simulator: a stand-in for the Envoy/Istio
// sidecar data plane, and for the kubelet and the Deployment controller,
// for local testing of serin only. It serves the demo workloads (frontend,
// checkout v1/v2, payments, inventory, and the apps/v1 Deployments of those
// apps it finds) on 127.0.0.1, writes the Deployments' Pods and status,
// routes their calls by the VirtualServices and DestinationRules it watches
// (or, with -xds-addr, by what istiod sends the sidecars over xDS),
// exposes Istio-style metrics on /metrics, sends OTLP traces, and generates
// load. See test/meshsim/README.md.
//
//	meshsim -kubeconfig /tmp/kubeconfig -namespace shop -otlp 127.0.0.1:4318 -metrics-addr 127.0.0.1:9464
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/serin-dev/serin/test/meshsim"
)

// options are the command-line flags.
type options struct {
	kubeconfig  string
	noWatch     bool
	namespace   string
	otlp        string
	rps         float64
	listenHost  string
	controlAddr string
	metricsAddr string
	logLevel    slog.Level
	seed        uint64
	background  map[string]float64
	startDelay  time.Duration
	xdsAddr     string
}

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// run parses args, starts the simulator and stops it on SIGINT or SIGTERM.
// It returns the process exit code.
func run(args []string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "meshsim: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var cfg *rest.Config
	if !o.noWatch {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = o.kubeconfig
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
		if err != nil {
			log.Error("load kubeconfig (or pass -no-watch to route everything to v1)", "err", err)
			return 1
		}
	}
	sim, err := meshsim.Start(ctx, meshsim.Options{
		Namespace: o.namespace, RESTConfig: cfg, OTLPEndpoint: o.otlp, RPS: o.rps,
		ListenHost: o.listenHost, ControlAddr: o.controlAddr, MetricsAddr: o.metricsAddr, Log: log,
		Seed: o.seed, BackgroundErrorRate: o.background, StartDelay: o.startDelay, XDSAddr: o.xdsAddr,
	})
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	fmt.Fprintf(os.Stdout, "metrics http://%s/metrics\ncontrol %s\n", sim.MetricsAddr(), sim.ControlURL())
	<-ctx.Done()
	log.Info("stopping")
	if err := sim.Close(); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}

// parseFlags reads the flags into options.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("meshsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "meshsim: a stand-in for Envoy/Istio sidecars, for local testing only.\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the API server to watch (default: $KUBECONFIG or ~/.kube/config)")
	fs.BoolVar(&o.noWatch, "no-watch", false, "watch no API server; every host goes to v1")
	fs.StringVar(&o.namespace, "namespace", "shop", "namespace of the workloads, VirtualServices and DestinationRules")
	fs.StringVar(&o.otlp, "otlp", "", `host:port of an OTLP/HTTP trace receiver; "" disables tracing`)
	fs.Float64Var(&o.rps, "rps", meshsim.DefaultRPS, "background requests per second into frontend (0 = none)")
	fs.StringVar(&o.listenHost, "listen-host", "127.0.0.1", "loopback IP the workloads listen on")
	fs.StringVar(&o.controlAddr, "control-addr", "127.0.0.1:0", "loopback host:port of the control API")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:0", "loopback host:port of /metrics")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the random errors and latencies, to replay a run (0 = pick one and log it)")
	fs.DurationVar(&o.startDelay, "start-delay", meshsim.DefaultStartDelay,
		"how long a new pod of a Deployment takes to become ready (the template annotation meshsim.serin.dev/start-delay overrides it)")
	fs.StringVar(&o.xdsAddr, "xds-addr", "",
		`host:port of istiod's plaintext xDS port: the sidecars then route by what istiod sends over ADS; "" routes by the watched VirtualServices`)
	fs.Func("background-errors", "background error rates whatever the faults, e.g. checkout/v1=0.005,checkout/v2=0.005",
		func(v string) (err error) {
			o.background, err = meshsim.ParseErrorRates(v)
			return err
		})
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.noWatch && o.xdsAddr != "" {
		return o, errors.New("-no-watch and -xds-addr exclude each other: the sidecars take their identity from the Pods")
	}
	if o.noWatch && o.kubeconfig != "" {
		return o, errors.New("-no-watch and -kubeconfig exclude each other")
	}
	return o, nil
}
