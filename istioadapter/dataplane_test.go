package istioadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
)

func TestPushCounter(t *testing.T) {
	for in, want := range map[string]int64{
		"2026-12-01T20:30:00Z/7":  7,
		"2026-12-01T20:30:00Z/12": 12,
		// A nonce is the version and a UUID, with nothing between.
		"2026-12-01T20:30:00Z/7" + "12345678-90ab-cdef-1234-567890abcdef":   7,
		"2026-12-01T20:30:00Z/103" + "e5c3b0a2-1d2f-4c5e-9a7b-0c1d2e3f4a5b": 103,
		"": -1, "garbage": -1,
	} {
		if got := pushCounter(in); got != want {
			t.Errorf("pushCounter(%q) = %d, want %d", in, got, want)
		}
	}
}

// fakeIstiod serves /debug/syncz and /debug/config_dump as istiod does,
// from proxies whose routes and nonces a test sets.
type fakeIstiod struct {
	mu      sync.Mutex
	proxies map[string]*fakeProxy
	down    bool
}

type fakeProxy struct {
	sent, acked int // push counters of the RDS nonces
	version     int // push version of the dump
	vs          string
	clusters    map[string]uint32
}

func nonce(n int) string {
	return fmt.Sprintf("2026-12-01T20:30:00Z/%d%s", n, "12345678-90ab-cdef-1234-567890abcdef")
}

func (f *fakeIstiod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case "/debug/syncz":
		var out []map[string]string
		for id, p := range f.proxies {
			out = append(out, map[string]string{"proxy": id, "proxy_type": "sidecar", "route_sent": nonce(p.sent), "route_acked": nonce(p.acked)})
		}
		_ = json.NewEncoder(w).Encode(out)
	case "/debug/config_dump":
		p := f.proxies[r.URL.Query().Get("proxyID")]
		if p == nil {
			http.NotFound(w, r)
			return
		}
		var cs []map[string]any
		for name, wt := range p.clusters {
			cs = append(cs, map[string]any{"name": name, "weight": wt})
		}
		route := map[string]any{"weightedClusters": map[string]any{"clusters": cs}}
		if len(cs) == 1 {
			route = map[string]any{"cluster": cs[0]["name"]}
		}
		dump := map[string]any{"configs": []any{
			map[string]any{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "versionInfo": "x"},
			map[string]any{"@type": routesDumpType, "dynamicRouteConfigs": []any{map[string]any{
				"versionInfo": fmt.Sprintf("2026-12-01T20:30:00Z/%d", p.version),
				"routeConfig": map[string]any{"name": "80", "virtualHosts": []any{map[string]any{
					"name": "checkout.shop.svc.cluster.local:80", "domains": []string{"checkout.shop.svc.cluster.local", "checkout"},
					"routes": []any{map[string]any{"name": "primary", "route": route,
						"metadata": map[string]any{"filterMetadata": map[string]any{"istio": map[string]any{
							"config": "/apis/networking.istio.io/v1/namespaces/shop/virtual-service/" + p.vs}}}}},
				}}},
			}}},
		}}
		_ = json.NewEncoder(w).Encode(dump)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeIstiod) set(id string, p fakeProxy) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proxies[id] = &p
}

func subsetSplit(w uint32) map[string]uint32 {
	m := map[string]uint32{}
	if w < 100 {
		m["outbound|80|v1|checkout.shop.svc.cluster.local"] = 100 - w
	}
	if w > 0 {
		m["outbound|80|v2|checkout.shop.svc.cluster.local"] = w
	}
	return m
}

// confirmTarget is the rollout the Confirm tests ask about.
var confirmTarget = rollout.Target{Namespace: "shop", VirtualService: "checkout", Route: "primary", StableSubset: "v1", CanarySubset: "v2"}

// newConfirmFixture is a DataPlane polling a fakeIstiod by hand, on a
// clock the test moves, and confirm: one poll, then Confirm of
// confirmTarget at weight w.
func newConfirmFixture(t *testing.T) (*fakeIstiod, *DataPlane, *time.Time, func(w int32) rollout.DataPlaneReport) {
	t.Helper()
	f := &fakeIstiod{proxies: map[string]*fakeProxy{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	dp, err := NewDataPlane(DataPlaneOptions{URL: srv.URL, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC)
	dp.now = func() time.Time { return clock }
	close(dp.ready)
	confirm := func(w int32) rollout.DataPlaneReport {
		t.Helper()
		dp.pollOnce(context.Background())
		rep, err := dp.Confirm(context.Background(), confirmTarget, w)
		if err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		return rep
	}
	return f, dp, &clock, confirm
}

func TestDataPlaneConfirm(t *testing.T) {
	f, dp, clock, confirm := newConfirmFixture(t)
	ctx, target := context.Background(), confirmTarget

	f.set("frontend", fakeProxy{sent: 5, acked: 5, version: 5, vs: "checkout", clusters: subsetSplit(25)})
	f.set("checkout", fakeProxy{sent: 5, acked: 4, version: 5, vs: "checkout", clusters: subsetSplit(25)}) // not acked yet
	f.set("ingress", fakeProxy{sent: 5, acked: 5, version: 5, vs: "other", clusters: subsetSplit(0)})      // routes another service
	if rep := confirm(25); rep.Proxies != 2 || !slices.Equal(rep.Stragglers, []string{"checkout"}) {
		t.Errorf("report %+v, want 2 proxies with checkout straggling", rep)
	}
	f.set("checkout", fakeProxy{sent: 5, acked: 5, version: 5, vs: "checkout", clusters: subsetSplit(25)})
	if rep := confirm(25); rep.Proxies != 2 || !rep.Confirmed() {
		t.Errorf("report %+v, want both confirmed", rep)
	}
	// The rollback: 0% sends one cluster; a proxy still on 25% lags.
	f.set("frontend", fakeProxy{sent: 6, acked: 6, version: 6, vs: "checkout", clusters: subsetSplit(0)})
	if rep := confirm(0); !slices.Equal(rep.Stragglers, []string{"checkout"}) {
		t.Errorf("report %+v, want checkout (still at 25%%) straggling", rep)
	}
	// A push of endpoints only: the dump's version passed the routes'.
	f.set("checkout", fakeProxy{sent: 6, acked: 6, version: 7, vs: "checkout", clusters: subsetSplit(0)})
	if rep := confirm(0); !slices.Equal(rep.Stragglers, []string{"checkout"}) {
		t.Errorf("report %+v right after the dump, want checkout to settle first", rep)
	}
	*clock = clock.Add(time.Second)
	if rep := confirm(0); !rep.Confirmed() {
		t.Errorf("report %+v once settled, want confirmed", rep)
	}
	// istiod goes away: unreachable once the last answer is stale.
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	dp.pollOnce(ctx)
	if _, err := dp.Confirm(ctx, target, 0); err != nil {
		t.Errorf("Confirm right after one failed poll: %v, want the last answer", err)
	}
	*clock = clock.Add(5 * time.Second)
	dp.pollOnce(ctx)
	if _, err := dp.Confirm(ctx, target, 0); !errors.Is(err, rollout.ErrControlPlaneUnreachable) {
		t.Errorf("Confirm with istiod down: %v, want ErrControlPlaneUnreachable", err)
	}
}

func TestDataPlaneSides(t *testing.T) {
	subset := rollout.Target{Namespace: "shop", VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"}
	host := rollout.Target{Namespace: "shop", VirtualService: "checkout", StableHost: "checkout-stable", CanaryHost: "checkout-canary.shop"}
	for _, tc := range []struct {
		cluster string
		t       rollout.Target
		want    trackSide
	}{
		{"outbound|80|v2|checkout.shop.svc.cluster.local", subset, sideCanary},
		{"outbound|80|v1|checkout.shop.svc.cluster.local", subset, sideStable},
		{"outbound|80|v3|checkout.shop.svc.cluster.local", subset, sideOther},
		{"outbound|80||checkout-canary.shop.svc.cluster.local", host, sideCanary},
		{"outbound|80||checkout-stable.shop.svc.cluster.local", host, sideStable},
		{"outbound|80||payments.shop.svc.cluster.local", host, sideOther},
		{"inbound|8080||", subset, sideOther},
	} {
		if got := side(tc.cluster, tc.t); got != tc.want {
			t.Errorf("side(%q) = %d, want %d", tc.cluster, got, tc.want)
		}
	}
	r := vsRoute{clusters: []clusterWeight{{"outbound|80|v1|checkout.shop.svc.cluster.local", 75}, {"outbound|80|v2|checkout.shop.svc.cluster.local", 25}}}
	if got := canaryShare(r, subset); got != 25 {
		t.Errorf("canaryShare = %d, want 25", got)
	}
	if _, err := NewDataPlane(DataPlaneOptions{URL: "istiod:15014"}); err == nil {
		t.Error("NewDataPlane accepted a URL without a scheme")
	}
}

// With a token file, every request carries the token, read afresh (a
// projected token rotates).
func TestDataPlaneSendsTheToken(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write([]byte("[]"))
	}))
	defer srv.Close()
	file := t.TempDir() + "/token"
	if err := os.WriteFile(file, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dp, err := NewDataPlane(DataPlaneOptions{URL: srv.URL, TokenFile: file})
	if err != nil {
		t.Fatal(err)
	}
	dp.pollOnce(context.Background())
	if err := os.WriteFile(file, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	dp.pollOnce(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"Bearer first", "Bearer second"}) {
		t.Errorf("Authorization headers %q, want the file's token each time", seen)
	}
}

// TestDataPlaneRereadsALaggingProxy: a dump that shows older routes than
// the push whose nonce it was read for (a race with the push, or istiod
// answering from an older state) is read again while the proxy lags, even
// though istiod sends it nothing new: a held rollout writes nothing that
// would make istiod push again. Each straggler says why it lags.
func TestDataPlaneRereadsALaggingProxy(t *testing.T) {
	f, _, clock, confirm := newConfirmFixture(t)
	// Push 6 sent the 10% routes, but the dump read for it shows 0%.
	f.set("frontend", fakeProxy{sent: 6, acked: 6, version: 5, vs: "checkout", clusters: subsetSplit(0)})
	f.set("checkout", fakeProxy{sent: 6, acked: 5, version: 6, vs: "checkout", clusters: subsetSplit(10)})
	rep := confirm(10)
	if !slices.Equal(rep.Stragglers, []string{"checkout", "frontend"}) ||
		!slices.Equal(rep.Lag, []string{"not acknowledged", "its routes send 0%"}) {
		t.Fatalf("report %+v, want checkout not acknowledged and frontend at 0%%", rep)
	}
	// istiod now answers with the routes it sent; no new nonce.
	f.set("frontend", fakeProxy{sent: 6, acked: 6, version: 6, vs: "checkout", clusters: subsetSplit(10)})
	if rep := confirm(10); !slices.Contains(rep.Stragglers, "frontend") {
		t.Errorf("report %+v within the re-read interval, want frontend still lagging on its last dump", rep)
	}
	*clock = clock.Add(time.Second)
	if rep := confirm(10); slices.Contains(rep.Stragglers, "frontend") {
		t.Errorf("report %+v after the re-read interval, want frontend's dump read again and carrying 10%%", rep)
	}
	// A proxy that carries the weight is not read again: its dump stands.
	f.set("frontend", fakeProxy{sent: 6, acked: 6, version: 6, vs: "checkout", clusters: subsetSplit(0)})
	*clock = clock.Add(time.Minute)
	if rep := confirm(10); slices.Contains(rep.Stragglers, "frontend") {
		t.Errorf("report %+v, want frontend's dump not read again while it carries the weight", rep)
	}
}
