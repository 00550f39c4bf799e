package jaeger

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Istio's sidecars name their spans' service "<app>.<namespace>" by default
// (the mesh config's tracing service name APP_LABEL_AND_NAMESPACE), while
// applications instrumented with OpenTelemetry use the app's name alone.
// The Source accepts both: it searches each name under whichever of the two
// forms Jaeger knows, and in edges drops the rollout's namespace from a
// name, so that "checkout.shop" and "checkout" are the same service.

// servicesTTL is how long the list of service names Jaeger knows is reused
// while it names the services asked for.
const servicesTTL = 30 * time.Second

// local is service without the ".<namespace>" suffix Istio's sidecars add.
func (m matcher) local(service string) string {
	if m.namespace == "" {
		return service
	}
	return strings.TrimSuffix(service, "."+m.namespace)
}

// withIstioNames adds, after each name, its Istio form "<name>.<namespace>".
func (m matcher) withIstioNames(names []string) []string {
	if m.namespace == "" {
		return names
	}
	out := make([]string, 0, 2*len(names))
	for _, n := range names {
		out = append(out, n, n+"."+m.namespace)
	}
	return out
}

// serviceList caches the service names Jaeger lists, and how often it
// has been asked again for each target it did not name.
type serviceList struct {
	mu      sync.Mutex
	names   []string // nil until a list was had
	fetched time.Time
	failed  backoff // of the list itself, when Jaeger cannot give it
	misses  map[string]*listMiss
	flight  singleflight.Group // one request for the list at a time
}

// listMiss counts the lists in a row that named none of a target's
// services.
type listMiss struct {
	fails   int
	checked time.Time // when the latest of them was fetched
}

// known returns the service names Jaeger lists, fetched at most maxAge
// ago, and when they were fetched; or an error when it cannot tell (an
// older Jaeger without the endpoint, or one that cannot be reached), after
// which it asks again only once a backoff has passed. Concurrent callers
// share one request, and each stops waiting when its ctx ends.
func (s *Source) known(ctx context.Context, maxAge time.Duration) ([]string, time.Time, error) {
	l := &s.services
	l.mu.Lock()
	names, fetched, failed := l.names, l.fetched, l.failed
	l.mu.Unlock()
	now := s.now()
	if names != nil && now.Sub(fetched) < maxAge {
		return names, fetched, nil
	}
	if failed.err != nil && now.Before(failed.next) {
		return nil, time.Time{}, failed.err
	}
	ch := l.flight.DoChan("services", func() (any, error) {
		return nil, s.fetchServices(context.WithoutCancel(ctx))
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, time.Time{}, r.Err
		}
	case <-ctx.Done():
		return nil, time.Time{}, context.Cause(ctx)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.names, l.fetched, nil
}

// fetchServices asks Jaeger for its service list and keeps the answer, or
// records the failure for the list's backoff.
func (s *Source) fetchServices(ctx context.Context) error {
	u := s.base.JoinPath("api", "v3", "services")
	asked := s.now()
	var list []string
	err := s.get(ctx, u, &s.counts.lists, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		var body struct {
			Services []string `json:"services"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&body); err != nil {
			return err
		}
		list = append([]string{}, body.Services...)
		return nil
	})
	l := &s.services
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("jaeger: GET %s: %w", u.Redacted(), err)
		l.failed.fail(s.now(), err)
		return err
	}
	l.names, l.fetched, l.failed = list, asked, backoff{}
	for key, b := range l.misses {
		if asked.Sub(b.checked) > 4*servicesTTL {
			delete(l.misses, key) // a target no longer asked for
		}
	}
	return nil
}

// searchNames returns the names to search for m: each of m's service names
// in the forms Jaeger lists, so that a name in neither form costs no search
// and takes no share of MaxTraces. It returns none when Jaeger lists none
// of them. When Jaeger cannot list its services, the plain names are
// searched, as before.
//
// A list that names none of them is fetched again (the service may have
// just sent its first spans), but no sooner than a backoff that grows with
// each list in a row that did not name them: a service without traces
// costs neither a search nor a list per call.
func (s *Source) searchNames(ctx context.Context, m matcher) []string {
	plain := m.services()
	forms := m.withIstioNames(plain)
	names, _, err := s.known(ctx, servicesTTL)
	if err != nil {
		return plain
	}
	key := strings.Join(plain, " ")
	if out := listed(names, forms); len(out) > 0 {
		s.services.missed(key, true, time.Time{})
		return out
	}
	names, fetched, err := s.known(ctx, s.services.missDelay(key))
	if err != nil {
		return plain
	}
	out := listed(names, forms)
	s.services.missed(key, len(out) > 0, fetched)
	if len(out) == 0 {
		s.counts.skipped.Add(1)
	}
	return out
}

// listed returns the names among forms that known contains, in order.
func listed(known, forms []string) []string {
	var out []string
	for _, n := range forms {
		if slices.Contains(known, n) {
			out = append(out, n)
		}
	}
	return out
}

// missDelay is how old a list may be to say that the target key is not
// among Jaeger's services: backoffMin at first, doubled per list in a row
// that did not name it, at most servicesTTL.
func (l *serviceList) missDelay(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	fails := 0
	if b := l.misses[key]; b != nil {
		fails = max(b.fails-1, 0)
	}
	return min(backoffDelay(fails), servicesTTL)
}

// missed records whether the list fetched at fetched named the target
// key. Each list counts once, however many calls read it.
func (l *serviceList) missed(key string, found bool, fetched time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if found {
		delete(l.misses, key)
		return
	}
	b := l.misses[key]
	if b == nil {
		if l.misses == nil {
			l.misses = map[string]*listMiss{}
		}
		b = &listMiss{}
		l.misses[key] = b
	}
	if fetched.After(b.checked) {
		b.fails++
		b.checked = fetched
	}
}
