package jaeger

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
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
// form; without a service list (an older Jaeger) the plain names.
func TestSearchNames(t *testing.T) {
	list := `{"services":["checkout"]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v3/services" || list == "" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(list))
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
	list = `{"services":["checkout","checkout.shop"]}`
	if got := newSource(t, Options{QueryURL: srv.URL}).searchNames(ctx, m); !slices.Equal(got, []string{"checkout", "checkout.shop"}) {
		t.Errorf("with both forms known: %q", got)
	}
	// A list that names none of the service's forms is not trusted until
	// its TTL: the next call asks again and sees the newcomer.
	list = `{"services":["frontend"]}`
	src := newSource(t, Options{QueryURL: srv.URL})
	if got := src.searchNames(ctx, m); !slices.Equal(got, []string{"checkout"}) {
		t.Errorf("with checkout unknown: %q, want the plain name", got)
	}
	list = `{"services":["frontend","checkout.shop"]}`
	if got := src.searchNames(ctx, m); !slices.Equal(got, []string{"checkout.shop"}) {
		t.Errorf("after checkout.shop appeared: %q", got)
	}
	list = ""
	if got := newSource(t, Options{QueryURL: srv.URL}).searchNames(ctx, m); !slices.Equal(got, []string{"checkout"}) {
		t.Errorf("without a service list: %q, want the plain name", got)
	}
}
