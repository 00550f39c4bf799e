package meshsim

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the built-in load.
const (
	// DefaultRPS is the meshsim binary's default background rate.
	DefaultRPS = 50
	// MaxRPS bounds the background rate and Fire's pace.
	MaxRPS = 1000
	// DefaultFireRPS is Fire's pace when Options.FireRPS is 0.
	DefaultFireRPS = 200
	// MaxFire bounds the number of requests of one Fire call.
	MaxFire = 100_000
	// loadInFlight bounds the background requests in flight; beyond it,
	// requests are dropped and counted in meshsim_loadgen_dropped_total.
	loadInFlight = 64
	// fireConcurrency bounds Fire's requests in flight.
	fireConcurrency = 8
)

// NoCheckout is the key Fire counts a request under when it never reached
// a checkout workload (frontend failed, or routing failed).
const NoCheckout = "none"

// loadGen sends a steady, adjustable rate of requests into frontend, the way
// ingress traffic from outside the mesh would arrive.
type loadGen struct {
	s        *Sim
	rpsBits  atomic.Uint64 // math.Float64bits of the current rate
	wake     chan struct{} // signals a rate change
	inflight chan struct{} // bounds requests in flight
	wg       sync.WaitGroup
}

// newLoadGen returns a generator at rps; run starts it.
func newLoadGen(s *Sim, rps float64) *loadGen {
	g := &loadGen{s: s, wake: make(chan struct{}, 1), inflight: make(chan struct{}, loadInFlight)}
	g.rpsBits.Store(math.Float64bits(rps))
	return g
}

// setRPS changes the rate, clamped to [0, MaxRPS]; 0 pauses. It takes effect
// at once.
func (g *loadGen) setRPS(rps float64) {
	if rps != rps || rps < 0 { // NaN or negative
		rps = 0
	}
	g.rpsBits.Store(math.Float64bits(min(rps, MaxRPS)))
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// rps returns the current rate.
func (g *loadGen) rps() float64 { return math.Float64frombits(g.rpsBits.Load()) }

// run sends requests until ctx is done, then waits for those in flight.
func (g *loadGen) run(ctx context.Context) {
	defer g.wg.Wait()
	next := time.Now()
	for {
		rps := g.rps()
		if rps <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-g.wake:
				next = time.Now()
				continue
			}
		}
		next = nextSlot(next, rps)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-g.wake:
			t.Stop()
			next = time.Now()
			continue
		case <-t.C:
		}
		select {
		case g.inflight <- struct{}{}:
			g.wg.Go(func() {
				defer func() { <-g.inflight }()
				g.s.ingress(ctx, nil)
			})
		default:
			g.s.metrics.loadDropped.Inc()
		}
	}
}

// nextSlot advances a schedule at rps by one slot. A schedule that fell more
// than 100 ms behind restarts from now rather than bursting to catch up.
func nextSlot(prev time.Time, rps float64) time.Time {
	now := time.Now()
	if prev.Before(now.Add(-100 * time.Millisecond)) {
		prev = now
	}
	return prev.Add(time.Duration(float64(time.Second) / rps))
}

// ingress sends one request into frontend from outside the mesh, with the
// load generator's root span, and returns frontend's answer.
func (s *Sim) ingress(ctx context.Context, hdr http.Header) hopResult {
	return s.outbound(ctx, nil, call{host: Frontend, path: "/"}, hdr, 0)
}

// checkoutVersion returns the version of the checkout workload that served
// a frontend answer, or NoCheckout.
func checkoutVersion(res hopResult) string {
	for _, c := range res.Calls {
		if c.App == Checkout && c.Version != "" {
			return c.Version
		}
	}
	return NoCheckout
}

// checkoutWorkload returns the name of the checkout workload that served a
// frontend answer, or NoCheckout.
func checkoutWorkload(res hopResult) string {
	for _, c := range res.Calls {
		if c.App == Checkout && c.Workload != "" {
			return c.Workload
		}
	}
	return NoCheckout
}

// FireWorkloads is Fire counting by the checkout workload that served each
// request (for example "checkout-v1", or a Deployment's name such as
// "checkout-stable"; NoCheckout for requests that reached none).
func (s *Sim) FireWorkloads(ctx context.Context, n int) (map[string]int, error) {
	return s.fire(ctx, n, nil, checkoutWorkload)
}

// Fire sends n requests into frontend, paced at Options.FireRPS with at
// most a few in flight, and returns how many of them each checkout version
// served (keyed "v1", "v2"; NoCheckout for requests that reached none). A
// request counts for the version that served it whatever its status code.
// It stops early, with the counts so far and an error, when ctx is done.
func (s *Sim) Fire(ctx context.Context, n int) (map[string]int, error) {
	return s.FireWithHeaders(ctx, n, nil)
}

// FireWithHeaders is Fire with extra request headers (for header-matched
// routes); frontend forwards X- headers to checkout.
func (s *Sim) FireWithHeaders(ctx context.Context, n int, hdr http.Header) (map[string]int, error) {
	return s.fire(ctx, n, hdr, checkoutVersion)
}

// fire sends n requests with hdr into frontend and counts them by key.
func (s *Sim) fire(ctx context.Context, n int, hdr http.Header, key func(hopResult) string) (map[string]int, error) {
	if n < 0 || n > MaxFire {
		return nil, fmt.Errorf("fire %d requests: n must be in [0,%d]", n, MaxFire)
	}
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, fireConcurrency)
		next   = time.Now()
	)
	for i := range n {
		err := ctx.Err()
		if i > 0 && err == nil {
			next = nextSlot(next, s.fireRPS)
			err = sleep(ctx, time.Until(next))
		}
		if err == nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if err != nil {
			wg.Wait()
			return counts, fmt.Errorf("fire: stopped after %d of %d requests: %w", i, n, err)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			v := key(s.ingress(ctx, hdr.Clone()))
			mu.Lock()
			counts[v]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return counts, nil
}
