// Command serin-demo is `make demo`: it shows serin working on one machine.
// It starts the real local stack (etcd, kube-apiserver with the Istio and
// serin CRDs, Prometheus, Jaeger), applies the demo mesh, runs the mesh
// simulator in-process with background load, starts the serin controller as
// a child process and, in the default story (-story workload), creates the
// team's Deployment checkout and a Rollout that delivers it, waiting until
// serin has adopted it. It then prints where everything is and the story's
// commands (three releases of checkout: good, bad, good; or, with -story
// subsets, a canary between two subsets) and stays in the foreground until
// SIGINT or SIGTERM. It then stops everything it started, by PID, and exits 0.
//
// Everything listens on 127.0.0.1 only. The demo is for a developer machine,
// never for a cluster: the mesh simulator is a stand-in for Envoy.
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
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/test/meshsim"
	"github.com/serin-dev/serin/test/stack"
)

// exitInterrupted is the exit code when SIGINT or SIGTERM arrives before the
// demo is ready: the shell's convention for "stopped by SIGINT".
const exitInterrupted = 130

// Options are the demo's flags.
type Options struct {
	Serin     string  // path of the serin binary
	RPS       float64 // background load into the simulated frontend
	ReadyFile string  // where to write a readyInfo JSON once ready; "" writes none
	NoBanner  bool    // skip the banner (tests)
	// MeshSeed seeds the simulator's random errors and latencies; 0 picks
	// one, which the simulator logs.
	MeshSeed uint64
	// BackgroundErrors are error rates by "service/version" that the
	// simulated workloads have whatever the faults.
	BackgroundErrors map[string]float64
	// Story is what the demo sets up and tells: storyWorkload (the
	// default) or storySubsets.
	Story string
	// StepInterval overrides the stepInterval of the Rollout the workload
	// story creates; 0 keeps the manifest's.
	StepInterval time.Duration
}

func main() { os.Exit(run()) }

// run parses the flags, starts the demo, waits for a signal and stops the
// demo. It returns the process exit code.
func run() int {
	if len(os.Args) > 1 && os.Args[1] == "reset" {
		return runReset(os.Args[2:], os.Stdout, os.Stderr)
	}
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "serin-demo: %v\n", err)
		return 2
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Signals stay caught until the end, so that a second Ctrl-C does not
	// interrupt the stopping and leave processes behind.
	defer stopSignals()

	d := &demo{opts: o, out: os.Stdout}
	if err := d.start(ctx); err != nil {
		return d.fail(ctx, err)
	}
	if !o.NoBanner {
		d.printBanner()
	}
	if err := d.writeReadyFile(); err != nil {
		return d.fail(ctx, err)
	}
	select {
	case <-ctx.Done():
		d.progress("stopping the demo (controller, mesh simulator, local stack)")
	case <-d.ctrl.proc.Done():
		return d.fail(ctx, d.ctrl.failure(errors.New("the controller exited by itself")))
	}
	if err := d.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "serin-demo: %v\n", err)
		return 1
	}
	d.progress("stopped; nothing left running")
	return 0
}

// parseFlags reads the flags into Options.
func parseFlags(args []string, stderr io.Writer) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("serin-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Serin, "serin", filepath.Join(stack.RepoRoot(), "bin", "serin"), "path of the serin binary (make build)")
	fs.Float64Var(&o.RPS, "rps", meshsim.DefaultRPS, "background requests per second into the simulated frontend")
	fs.StringVar(&o.ReadyFile, "ready-file", defaultReadyFile(), "write a JSON file with the URLs and PIDs once everything is ready (serin-demo reset reads it)")
	fs.BoolVar(&o.NoBanner, "no-banner", false, "do not print the banner")
	fs.Uint64Var(&o.MeshSeed, "meshsim-seed", 0, "seed of the mesh simulator's random errors and latencies (0 = pick one and log it)")
	fs.StringVar(&o.Story, "story", storyWorkload, "what the demo sets up: "+storyWorkload+
		" (serin delivers the Deployment checkout; every change of its template is a release) or "+storySubsets+
		" (you apply a Rollout between the subsets v1 and v2)")
	fs.DurationVar(&o.StepInterval, "step-interval", 0, "stepInterval of the workload story's Rollout (0 = the one in deploy/demo/rollout-workload.yaml)")
	fs.Func("background-errors", "background error rates of the simulated workloads, e.g. checkout/v1=0.005,checkout/v2=0.005",
		func(v string) (err error) {
			o.BackgroundErrors, err = meshsim.ParseErrorRates(v)
			return err
		})
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.RPS < 0 || o.RPS > meshsim.MaxRPS || o.RPS != o.RPS {
		return o, fmt.Errorf("-rps %v: want a number in [0,%d]", o.RPS, meshsim.MaxRPS)
	}
	switch o.Story {
	case storyWorkload, storySubsets:
	default:
		return o, fmt.Errorf("-story %q: want %s or %s", o.Story, storyWorkload, storySubsets)
	}
	if o.StepInterval != 0 && (o.Story != storyWorkload || o.StepInterval < time.Second) {
		return o, fmt.Errorf("-step-interval %v: only for -story %s, and at least 1s (as the Rollout's stepInterval)", o.StepInterval, storyWorkload)
	}
	// The banner puts the serin binary's directory on PATH for another
	// shell, which may start anywhere.
	if abs, err := filepath.Abs(o.Serin); err == nil {
		o.Serin = abs
	}
	return o, nil
}

// demo is everything the demo started. Its fields are set in start order;
// a nil field was not started.
type demo struct {
	opts Options
	out  io.Writer
	st   *stack.Stack
	sim  *meshsim.Sim
	ctrl *controller
	// operatorToken and viewerToken log in to the console and the API.
	operatorToken, viewerToken string
}

// progress prints one visible progress line.
func (d *demo) progress(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

// start starts every part in order. On error the parts already started stay
// set in d, for stop.
func (d *demo) start(ctx context.Context) error {
	begin := time.Now()
	if d.opts.ReadyFile != "" { // a stale file would announce a demo that is not there
		if err := os.Remove(d.opts.ReadyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove old ready file: %w", err)
		}
	}
	if _, err := os.Stat(d.opts.Serin); err != nil { // fail before the slow part
		return fmt.Errorf("the serin binary: %w (run `make build` first, or pass -serin PATH)", err)
	}
	d.progress("starting the local stack: etcd, kube-apiserver, istiod, Prometheus, Jaeger (installs or builds what is missing)")
	st, err := stack.Start(ctx, stack.Options{Prometheus: true, Jaeger: true, Istiod: true, Log: d.out})
	if err != nil {
		return err
	}
	d.st = st
	mesh := filepath.Join(stack.RepoRoot(), "deploy", "demo", "mesh.yaml")
	d.progress("applying %s (namespace shop, checkout v1/v2 at 100/0, mTLS STRICT)", relToRepo(mesh))
	if err := st.ApplyYAML(ctx, mesh); err != nil {
		return err
	}
	// What a cluster would hold besides the mesh: the Services, Pods and
	// EndpointSlices of the simulated workloads, in an injected namespace,
	// so that Istio's analyzers find the hosts and subsets real.
	d.progress("creating the simulated workloads' Services, Pods (Pending: no kubelet) and EndpointSlices in shop")
	if err := st.CreateWorkloads(ctx, "shop", meshsim.Workloads()); err != nil {
		return err
	}
	if err := d.startMesh(ctx); err != nil {
		return err
	}
	var c client.Client // set in the workload story
	if d.opts.Story == storyWorkload {
		if c, err = d.kubeClient(); err != nil {
			return err
		}
		if err := d.startTeamDeployment(ctx, c); err != nil {
			return err
		}
	}
	tokenFile, err := d.writeTokens(st.Dir)
	if err != nil {
		return err
	}
	d.progress("starting the serin controller (%s)", d.opts.Serin)
	ctrl, err := startController(ctx, controllerConfig{
		Bin: d.opts.Serin, Dir: st.Dir, Kubeconfig: st.Kubeconfig,
		PrometheusURL: st.PrometheusURL, JaegerURL: st.JaegerQueryURL, TokenFile: tokenFile, IstiodURL: st.IstiodDebugURL,
	})
	if err != nil {
		return err
	}
	d.ctrl = ctrl
	if err := st.SetScrapeTargets("serin", []string{ctrl.addr}); err != nil {
		return err
	}
	if c != nil {
		if err := d.deliverWorkload(ctx, c); err != nil {
			return d.ctrl.failure(err)
		}
	}
	d.progress("ready in %v", time.Since(begin).Round(100*time.Millisecond))
	return nil
}

// startMesh starts the mesh simulator with load and tracing, and has
// Prometheus scrape it.
func (d *demo) startMesh(ctx context.Context) error {
	d.progress("starting the mesh simulator (a stand-in for Envoy's forwarding; its routes come from istiod over xDS): %v requests/s into frontend, traces to Jaeger", d.opts.RPS)
	log := slog.New(slog.NewTextHandler(d.out, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "meshsim")
	sim, err := meshsim.Start(ctx, meshsim.Options{
		Namespace: "shop", RESTConfig: d.st.RESTConfig(), OTLPEndpoint: d.st.OTLPHTTPEndpoint, XDSAddr: d.st.IstiodXDSAddr,
		RPS: d.opts.RPS, Seed: d.opts.MeshSeed, BackgroundErrorRate: d.opts.BackgroundErrors, Log: log,
	})
	if err != nil {
		return err
	}
	d.sim = sim
	return d.st.SetScrapeTargets("meshsim", []string{sim.MetricsAddr()})
}

// stop stops what was started, in reverse order: the controller first (it
// writes to the API server), then the simulator, then the stack. It goes on
// after an error, so that nothing is left running, and joins the errors.
func (d *demo) stop() error {
	var errs []error
	if d.ctrl != nil {
		errs = append(errs, d.ctrl.stop())
	}
	if d.sim != nil {
		if err := d.sim.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop the mesh simulator: %w", err))
		}
	}
	if d.st != nil {
		errs = append(errs, d.st.Stop())
	}
	if d.opts.ReadyFile != "" {
		if err := os.Remove(d.opts.ReadyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fail reports err, stops what was started and returns the exit code: 130
// when a signal interrupted the start, 1 otherwise.
func (d *demo) fail(ctx context.Context, err error) int {
	interrupted := ctx.Err() != nil
	if interrupted {
		fmt.Fprintln(os.Stderr, "serin-demo: interrupted before the demo was ready; stopping what was started")
	} else {
		fmt.Fprintf(os.Stderr, "serin-demo: FAILED: %v\n", err)
		fmt.Fprintln(os.Stderr, "serin-demo: stopping what was started")
	}
	if serr := d.stop(); serr != nil {
		fmt.Fprintf(os.Stderr, "serin-demo: while stopping: %v\n", serr)
	}
	if interrupted {
		return exitInterrupted
	}
	return 1
}

// relToRepo returns path relative to the repository root when it is inside
// it, for shorter messages.
func relToRepo(path string) string {
	if rel, err := filepath.Rel(stack.RepoRoot(), path); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return path
}
