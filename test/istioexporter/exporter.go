package istioexporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
)

// Bounds of Options: a stand-in for tests has no use for more, and a
// bound keeps a typo from stalling a test run.
const (
	MaxServices = 5000
	MaxRPS      = 10_000
)

// Defaults of Options.
const (
	DefaultServicesPerTarget = 100
	DefaultStep              = 100 * time.Millisecond
)

// maxStepGap bounds the traffic counted in one step after the stepping
// goroutine was held up, so that a stalled test does not come back to a
// burst of minutes of requests at once.
const maxStepGap = 5 * time.Second

// Errors of fault injection, to check with errors.Is.
var (
	// ErrUnknownWorkload means no service has the given name and version.
	ErrUnknownWorkload = errors.New("unknown workload")
	// ErrInvalidFault means a Fault field is out of range.
	ErrInvalidFault = errors.New("invalid fault")
)

// Options configure Start.
type Options struct {
	// Namespace of the services and of the watched VirtualServices;
	// required.
	Namespace string
	// Services is N, the number of services, in [1, MaxServices].
	Services int
	// RPS is the inbound rate of each service, in requests per second, in
	// [0, MaxRPS], split between v1 and v2 by the live weight.
	RPS float64
	// BackgroundErrorRate, in [0,1], is the share of requests every
	// version fails whatever its fault, drawn independently of it.
	BackgroundErrorRate float64
	// Seed seeds every draw; 0 picks one at random, which Start logs and
	// Exporter.Seed reports.
	Seed uint64
	// RESTConfig reaches the API server whose VirtualServices set the
	// weights; required.
	RESTConfig *rest.Config
	// ServicesPerTarget is how many services each /metrics listener
	// serves; 0 means DefaultServicesPerTarget.
	ServicesPerTarget int
	// Step is how often the counters advance; 0 means DefaultStep.
	Step time.Duration
	// Log receives progress and warnings; nil discards them.
	Log *slog.Logger
}

// withDefaults fills in the zero fields and refuses the rest when out of
// range, naming the field.
func (o Options) withDefaults() (Options, error) {
	switch {
	case len(validation.IsDNS1123Label(o.Namespace)) > 0:
		return o, fmt.Errorf("istioexporter: namespace %q is not a DNS-1123 label", o.Namespace)
	case o.Services < 1 || o.Services > MaxServices:
		return o, fmt.Errorf("istioexporter: services %d is not in [1,%d]", o.Services, MaxServices)
	case !(o.RPS >= 0 && o.RPS <= MaxRPS):
		return o, fmt.Errorf("istioexporter: rps %v is not in [0,%d]", o.RPS, MaxRPS)
	case !validRate(o.BackgroundErrorRate):
		return o, fmt.Errorf("istioexporter: background error rate %v is not in [0,1]", o.BackgroundErrorRate)
	case o.ServicesPerTarget < 0:
		return o, fmt.Errorf("istioexporter: services per target %d is negative", o.ServicesPerTarget)
	case o.Step < 0:
		return o, fmt.Errorf("istioexporter: step %v is negative", o.Step)
	}
	if o.ServicesPerTarget == 0 {
		o.ServicesPerTarget = DefaultServicesPerTarget
	}
	if o.Step == 0 {
		o.Step = DefaultStep
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	for o.Seed == 0 {
		o.Seed = randomSeed()
	}
	return o, nil
}

// validRate reports whether r is a probability.
func validRate(r float64) bool { return r >= 0 && r <= 1 }

// Fault is what SetFault injects into one version of one service. The zero
// Fault injects nothing.
type Fault struct {
	// ErrorRate is the probability, in [0,1], that the version answers a
	// request with HTTP 500, drawn per request from the seeded source.
	ErrorRate float64 `json:"errorRate"`
}

// Validate returns an error wrapping ErrInvalidFault that names the field
// out of range.
func (f Fault) Validate() error {
	if !validRate(f.ErrorRate) {
		return fmt.Errorf("%w: errorRate %v is not in [0,1]", ErrInvalidFault, f.ErrorRate)
	}
	return nil
}

// Exporter is a running synthetic exporter. Its methods are safe for
// concurrent use.
type Exporter struct {
	o        Options
	services []*service
	byName   map[string]*service
	targets  []*target
	control  *http.Server
	ctlAddr  string
	watcher  *watcher
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	close    sync.Once
	closeErr error
}

// target is one /metrics listener and the services it serves.
type target struct {
	m        *metrics
	services []*service
	srv      *http.Server
	addr     string
}

// newExporter builds the services and targets of o, without listening,
// watching or stepping.
func newExporter(o Options) (*Exporter, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Exporter{o: o, byName: make(map[string]*service, o.Services)}
	var t *target
	for i := 1; i <= o.Services; i++ {
		if t == nil || len(t.services) == o.ServicesPerTarget {
			t = &target{m: newMetrics()}
			e.targets = append(e.targets, t)
		}
		s := newService(t.m, o.Namespace, ServiceName(i), o.Seed)
		t.services = append(t.services, s)
		e.services = append(e.services, s)
		e.byName[s.name] = s
	}
	return e, nil
}

// Start builds the exporter, waits until the informer knows every
// service's weight, starts the /metrics listeners and the control API on
// 127.0.0.1, and steps the counters every Options.Step until Close.
func Start(ctx context.Context, o Options) (*Exporter, error) {
	if o.RESTConfig == nil {
		return nil, errors.New("istioexporter: RESTConfig is required: the weights come from the VirtualServices")
	}
	e, err := newExporter(o)
	if err != nil {
		return nil, err
	}
	if e.watcher, err = startWatcher(ctx, e.o.RESTConfig, e.o.Namespace, e.services, e.o.Log); err != nil {
		return nil, fmt.Errorf("istioexporter: %w", err)
	}
	for _, t := range e.targets {
		h := promhttp.HandlerFor(t.m.reg, promhttp.HandlerOpts{
			// Loopback has no use for gzip, which would cost more CPU
			// than the encoding itself at a thousand services.
			DisableCompression: true,
		})
		if t.srv, t.addr, err = serve(h); err != nil {
			return nil, errors.Join(fmt.Errorf("istioexporter: metrics listener: %w", err), e.Close())
		}
	}
	if e.control, e.ctlAddr, err = serve(e.controlHandler()); err != nil {
		return nil, errors.Join(fmt.Errorf("istioexporter: control listener: %w", err), e.Close())
	}
	stepCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, t := range e.targets {
		e.wg.Go(func() { e.run(stepCtx, t) })
	}
	e.o.Log.Info("istioexporter started", "namespace", e.o.Namespace, "services", len(e.services),
		"rps", e.o.RPS, "seed", e.o.Seed, "targets", e.Targets(), "control", e.ctlAddr)
	return e, nil
}

// serve serves h on a free loopback port.
func serve(h http.Handler) (*http.Server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return srv, l.Addr().String(), nil
}

// run steps t's services until ctx ends, by the time that really passed
// since the last step.
func (e *Exporter) run(ctx context.Context, t *target) {
	tick := time.NewTicker(e.o.Step)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			dt := min(now.Sub(last), maxStepGap)
			last = now
			for _, s := range t.services {
				s.step(dt, e.o.RPS, e.o.BackgroundErrorRate)
			}
		}
	}
}

// Close stops stepping, the listeners and the informer. It is safe to call
// twice.
func (e *Exporter) Close() error {
	e.close.Do(func() {
		if e.cancel != nil {
			e.cancel()
		}
		e.wg.Wait()
		var errs []error
		for _, t := range e.targets {
			if t.srv != nil {
				errs = append(errs, t.srv.Close())
			}
		}
		if e.control != nil {
			errs = append(errs, e.control.Close())
		}
		if e.watcher != nil {
			e.watcher.close()
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// Seed returns the seed of every draw.
func (e *Exporter) Seed() uint64 { return e.o.Seed }

// Services returns the service names, service-0001 first.
func (e *Exporter) Services() []string {
	out := make([]string, len(e.services))
	for i, s := range e.services {
		out[i] = s.name
	}
	return out
}

// Targets returns the host:port of every /metrics listener, for
// Prometheus to scrape.
func (e *Exporter) Targets() []string {
	out := make([]string, len(e.targets))
	for i, t := range e.targets {
		out[i] = t.addr
	}
	return out
}

// ControlAddr returns the host:port of the control API.
func (e *Exporter) ControlAddr() string { return e.ctlAddr }

// CanaryWeight returns the canary weight in percent that the service's
// traffic splits by, and false when no route sends to its subsets (then
// v1 takes it all) or the service is unknown.
func (e *Exporter) CanaryWeight(service string) (int32, bool) {
	s, ok := e.byName[service]
	if !ok {
		return 0, false
	}
	w := s.canary.Load()
	return max(w, 0), w >= 0
}

// SetFault validates f and installs it on the version of the service; the
// zero Fault clears it. It applies to the next step.
func (e *Exporter) SetFault(service, version string, f Fault) error {
	v, err := e.lookup(service, version)
	if err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("fault for %s %s: %w", service, version, err)
	}
	v.errorRate.Store(math.Float64bits(f.ErrorRate))
	return nil
}

// ClearFaults removes every fault.
func (e *Exporter) ClearFaults() {
	for _, s := range e.services {
		for _, v := range s.versions {
			v.errorRate.Store(0)
		}
	}
}

// Faults returns the faults in place, keyed "service/version".
func (e *Exporter) Faults() map[string]Fault {
	out := map[string]Fault{}
	for _, s := range e.services {
		for _, v := range s.versions {
			if r := math.Float64frombits(v.errorRate.Load()); r != 0 {
				out[s.name+"/"+v.name] = Fault{ErrorRate: r}
			}
		}
	}
	return out
}

// lookup returns the version of the service, or an error wrapping
// ErrUnknownWorkload that names them.
func (e *Exporter) lookup(service, version string) (*workload, error) {
	s, ok := e.byName[service]
	if !ok {
		return nil, fmt.Errorf("%w: no service %q (have %s … %s)", ErrUnknownWorkload, service,
			e.services[0].name, e.services[len(e.services)-1].name)
	}
	for _, v := range s.versions {
		if v.name == version {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: service %s has no version %q (have %s)", ErrUnknownWorkload, service, version,
		strings.Join([]string{StableVersion, CanaryVersion}, ", "))
}
