package jaeger

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/serin-dev/serin/analysis"
)

// istioNamed renames every span's service to Istio's "<app>.<namespace>".
func istioNamed(ns string, spans []ts) []ts {
	out := slices.Clone(spans)
	for i := range out {
		out[i].svc += "." + ns
	}
	return out
}

// TestEdgesIstioServiceNames: Istio's sidecars name services
// "checkout.shop". The source searches that name, as Jaeger's service list
// says it exists, with the whole trace budget, and the edges drop the
// namespace. A checkout of another namespace is not this rollout's.
func TestEdgesIstioServiceNames(t *testing.T) {
	spans := istioNamed("shop", concat(
		call3("c1", "v2", 300, false), call3("c2", "v2", 280, true),
		call3("s1", "v1", 20, false), call3("s2", "v1", 25, false),
	))
	spans = append(spans, istioNamed("other", call3("x1", "v2", 9000, true))...)
	var searched []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v3/services":
			_, _ = w.Write([]byte(`{"services":["checkout.other","checkout.shop","frontend.shop","payments.shop"]}`))
		case "/api/v3/traces":
			q := r.URL.Query()
			searched = append(searched, q.Get("query.service_name")+" "+q.Get("query.num_traces"))
			_, _ = w.Write([]byte(otlpJSON(t, spans...)))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	got, err := newSource(t, Options{QueryURL: srv.URL}).Edges(context.Background(), checkoutV2, since, until)
	if err != nil {
		t.Fatalf("Edges: %v", err)
	}
	if !slices.Equal(searched, []string{"checkout.shop 200"}) {
		t.Errorf("searches = %q, want only checkout.shop with the whole budget", searched)
	}
	toPay := got[analysis.Edge{From: "checkout", To: "payments"}]
	if toPay.Canary.Requests != 2 || toPay.Canary.Errors != 1 || toPay.Stable.Requests != 2 {
		t.Errorf("checkout → payments = %+v, want 2 canary calls (1 failed) and 2 stable", toPay.Pair)
	}
	if front := got[analysis.Edge{From: "frontend", To: "checkout"}]; front.Canary.Requests != 2 || front.Stable.Requests != 2 {
		t.Errorf("frontend → checkout = %+v", front.Pair)
	}
	if len(got) != 2 {
		t.Errorf("edges = %v, want frontend → checkout and checkout → payments only", got)
	}
}

// TestSearchNames: the names searched are those Jaeger knows, in either
// form; none when it knows neither; without a service list (an older
// Jaeger) the plain names. A list that names neither form is fetched again
// after a backoff, and then sees the newcomer.
func TestSearchNames(t *testing.T) {
	var mu sync.Mutex
	list := `{"services":["checkout"]}`
	setList := func(l string) { mu.Lock(); list = l; mu.Unlock() }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		l := list
		mu.Unlock()
		if r.URL.Path != "/api/v3/services" || l == "" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(l))
	}))
	t.Cleanup(srv.Close)
	m, err := newMatcher(checkoutV2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got := newSource(t, Options{QueryURL: srv.URL}).searchNames(ctx, m); !slices.Equal(got, []string{"checkout"}) {
		t.Errorf("with checkout known: %q", got)
	}
	setList(`{"services":["checkout","checkout.shop"]}`)
	if got := newSource(t, Options{QueryURL: srv.URL}).searchNames(ctx, m); !slices.Equal(got, []string{"checkout", "checkout.shop"}) {
		t.Errorf("with both forms known: %q", got)
	}
	setList(`{"services":["frontend"]}`)
	clock := &fakeClock{t: base}
	src := newSource(t, Options{QueryURL: srv.URL, Now: clock.now})
	if got := src.searchNames(ctx, m); len(got) != 0 {
		t.Errorf("with checkout unknown: %q, want none", got)
	}
	setList(`{"services":["frontend","checkout.shop"]}`)
	if got := src.searchNames(ctx, m); len(got) != 0 {
		t.Errorf("at once after a miss: %q, want none (the list is not fetched again yet)", got)
	}
	clock.add(backoffMin)
	if got := src.searchNames(ctx, m); !slices.Equal(got, []string{"checkout.shop"}) {
		t.Errorf("after checkout.shop appeared and the backoff passed: %q", got)
	}
	setList("")
	if got := newSource(t, Options{QueryURL: srv.URL}).searchNames(ctx, m); !slices.Equal(got, []string{"checkout"}) {
		t.Errorf("without a service list: %q, want the plain name", got)
	}
}
