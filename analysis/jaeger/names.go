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
)

// Istio's sidecars name their spans' service "<app>.<namespace>" by default
// (the mesh config's tracing service name APP_LABEL_AND_NAMESPACE), while
// applications instrumented with OpenTelemetry use the app's name alone.
// The Source accepts both: it searches each name under whichever of the two
// forms Jaeger knows, and in edges drops the rollout's namespace from a
// name, so that "checkout.shop" and "checkout" are the same service.

// servicesTTL is how long the list of service names Jaeger knows is reused.
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

// serviceList caches the service names Jaeger knows.
type serviceList struct {
	mu      sync.Mutex
	names   []string
	fetched time.Time
}

// known returns the service names Jaeger knows, at most servicesTTL old,
// or an error when it cannot tell (an older Jaeger without the endpoint,
// or one that cannot be reached).
func (s *Source) known(ctx context.Context) ([]string, error) {
	s.services.mu.Lock()
	defer s.services.mu.Unlock()
	if s.services.names != nil && time.Since(s.services.fetched) < servicesTTL {
		return s.services.names, nil
	}
	u := s.base.JoinPath("api", "v3", "services")
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u.Redacted(), resp.StatusCode)
	}
	var body struct {
		Services []string `json:"services"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	s.services.names, s.services.fetched = append([]string{}, body.Services...), time.Now()
	return s.services.names, nil
}

// searchNames returns the names to search for m: each of m's service names
// in the forms Jaeger knows, so that a name in neither form costs no search
// and takes no share of MaxTraces. When Jaeger cannot list its services,
// the plain names are searched, as before.
func (s *Source) searchNames(ctx context.Context, m matcher) []string {
	plain := m.services()
	known, err := s.known(ctx)
	if err != nil {
		return plain
	}
	var out []string
	for _, n := range m.withIstioNames(plain) {
		if slices.Contains(known, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		// None known yet (a service that has only just sent spans): ask
		// Jaeger again next time, and let the searches say what there is.
		s.services.mu.Lock()
		s.services.names = nil
		s.services.mu.Unlock()
		return plain
	}
	return out
}
