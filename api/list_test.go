package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// listFixture is the API's handler over a read model loaded in memory
// with n realistic rollouts, for tests and benchmarks that call it
// directly (httptest.NewRecorder), without a network or an API server.
type listFixture struct {
	h      http.Handler
	store  *readmodel.Store
	writer *countingWriter
}

// countingWriter is a RolloutWriter that counts its calls and writes
// nothing, so that tests can assert that a request wrote nothing.
type countingWriter struct {
	mu    sync.Mutex
	calls int
}

func (w *countingWriter) Create(context.Context, *v1alpha1.Rollout, bool) (*v1alpha1.Rollout, error) {
	w.count()
	return nil, errors.New("countingWriter writes nothing")
}

func (w *countingWriter) Update(context.Context, string, string, func(*v1alpha1.Rollout) error) (*v1alpha1.Rollout, error) {
	w.count()
	return nil, errors.New("countingWriter writes nothing")
}

func (w *countingWriter) count() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
}

func (w *countingWriter) writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

func newListFixture(tb testing.TB, n int) *listFixture {
	tb.Helper()
	store, err := readmodel.New()
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	for i := range n {
		if err := store.Upsert(realisticRollout(rng, i, now)); err != nil {
			tb.Fatal(err)
		}
	}
	markSynced(tb, store)
	tokens, err := api.ParseStaticTokens(strings.NewReader(operatorToken + ",olga,operator\n" + viewerToken + ",victor,viewer\n"))
	if err != nil {
		tb.Fatal(err)
	}
	w := &countingWriter{}
	h, err := api.New(api.Options{Store: store, Writer: w, Authenticator: tokens, Authorizer: tokens})
	if err != nil {
		tb.Fatal(err)
	}
	return &listFixture{h: h, store: store, writer: w}
}

// get answers GET path through the handler.
func (f *listFixture) get(path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// realisticRollout is rollout i of a busy cluster: 20 namespaces, most
// rollouts in progress with a full analysis (inbound and per-hop checks
// from both sources, 30 ticks of history, transitions, conditions), some
// paused, finished or not yet picked up.
func realisticRollout(rng *rand.Rand, i int, now time.Time) *v1alpha1.Rollout {
	ns := fmt.Sprintf("team-%02d", rng.IntN(20))
	name := fmt.Sprintf("svc-%04d-v2", i)
	created := metav1.NewTime(now.Add(-time.Duration(rng.IntN(3600)) * time.Second))
	r := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: fmt.Sprint(1000 + i), CreationTimestamp: created,
			UID: "0b8f9e2c-6a1d-4c8e-9d7a-3f2e1b0c9d8e", Generation: 1, Finalizers: []string{v1alpha1.Finalizer}},
		Spec: v1alpha1.RolloutSpec{VirtualService: fmt.Sprintf("svc-%04d", i), StableSubset: "v1", CanarySubset: "v2",
			Steps: []int32{10, 25, 50, 100}, StepInterval: &metav1.Duration{Duration: 30 * time.Second}},
	}
	phase := []v1alpha1.Phase{v1alpha1.PhaseProgressing, v1alpha1.PhaseProgressing, v1alpha1.PhaseProgressing, v1alpha1.PhaseProgressing,
		v1alpha1.PhaseProgressing, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseSucceeded, v1alpha1.PhaseRolledBack, ""}[rng.IntN(10)]
	if phase == "" {
		return r
	}
	step := int32(rng.IntN(4))
	tick := metav1.NewTime(now.Add(-2 * time.Second))
	st := &r.Status
	st.Phase, st.CurrentStep, st.CanaryWeight, st.AppliedWeight = phase, step, r.Spec.Steps[step], r.Spec.Steps[step]
	st.StepStartedAt, st.WeightConfirmedAt = &tick, &tick
	st.ObservedGeneration = 1
	st.Message = fmt.Sprintf("step %d of 4: %d%% canary; analysis passed for 24s of 30s", step+1, st.CanaryWeight)
	st.Target = &v1alpha1.ResolvedTarget{Route: "primary", Host: r.Spec.VirtualService + "." + ns + ".svc.cluster.local", StableVersion: "v1", CanaryVersion: "v2"}
	for _, c := range []string{"Preflight", "MTLSStrict", "Progressing"} {
		st.Conditions = append(st.Conditions, metav1.Condition{Type: c, Status: metav1.ConditionTrue, Reason: "Ok", Message: c + " holds", LastTransitionTime: created})
	}
	a := &st.Analysis
	a.LastVerdict, a.LastReason, a.LastTickAt, a.Since, a.CleanSince, a.PassedTicks = "Pass", "all 8 checks passed", &tick, &created, &tick, 12
	for _, hop := range []string{"", "checkout → payments", "checkout → cart", "checkout → inventory"} {
		for _, src := range []string{"prometheus", "jaeger"} {
			a.Checks = append(a.Checks,
				v1alpha1.CheckStatus{Check: "error-rate", Hop: hop, Source: src, Verdict: "Pass", Kind: "error-rate", Canary: rng.Float64(), Stable: rng.Float64(),
					Limit: 1, Unit: "%", CanaryRequests: 1200, StableRequests: 9800, Evidence: rng.Float64(), Threshold: 100, Reason: "within the limit"},
				v1alpha1.CheckStatus{Check: "latency-p99", Hop: hop, Source: src, Verdict: "Pass", Kind: "latency-p99", Canary: 80 + 40*rng.Float64(), Stable: 90,
					Limit: 150, Unit: "ms", CanaryRequests: 1200, StableRequests: 9800, Reason: "within the limit", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"})
		}
	}
	for k := range 30 {
		a.History = append(a.History, v1alpha1.AnalysisTick{Time: metav1.NewTime(now.Add(-time.Duration(60-2*k) * time.Second)), Verdict: "Pass", Reason: "all 8 checks passed"})
	}
	for s := range step + 1 {
		st.History = append(st.History, v1alpha1.Transition{Time: created, From: "Pending", To: fmt.Sprintf("Progressing/%d (%d%%)", s, r.Spec.Steps[s]),
			Reason: "StepAdvanced", Message: "analysis passed for 30s"})
	}
	if phase == v1alpha1.PhaseRolledBack {
		st.CanaryWeight, st.AppliedWeight = 0, 0
		a.LastVerdict, a.LastReason = "Fail", "error-rate on checkout → payments: canary 4.9% against stable 0.4%, evidence 250 ≥ 100"
		st.Message = "rolled back: " + a.LastReason
	}
	return r
}

// listAll walks every page of path (which has a query) and returns the
// items in the order received.
func (f *listFixture) listAll(t *testing.T, path string) ([]map[string]any, int) {
	t.Helper()
	var items []map[string]any
	pages := 0
	token := ""
	for {
		p := path
		if token != "" {
			p += "&continue=" + url.QueryEscape(token)
		}
		rec := f.get(p)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, rec.Code, rec.Body)
		}
		var page struct {
			Items    []map[string]any `json:"items"`
			Continue string           `json:"continue"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		items = append(items, page.Items...)
		pages++
		if page.Continue == "" {
			return items, pages
		}
		if pages > 2000 {
			t.Fatal("the pages do not end")
		}
		token = page.Continue
	}
}

// TestListPagesCoverEveryRollout lists 1,000 rollouts in pages: every
// rollout comes exactly once, active ones first, then by namespace and
// name, and each item is the summary.
func TestListPagesCoverEveryRollout(t *testing.T) {
	f := newListFixture(t, 1000)
	for _, limit := range []int{1, 37, api.DefaultListLimit, api.MaxListLimit} {
		items, pages := f.listAll(t, fmt.Sprintf("/api/v1/rollouts?limit=%d", limit))
		if want := (1000 + limit - 1) / limit; pages != want {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, want)
		}
		seen := map[string]int{}
		for _, it := range items {
			seen[it["namespace"].(string)+"/"+it["name"].(string)]++
		}
		if len(seen) != 1000 || len(items) != 1000 {
			t.Fatalf("limit %d: %d items, %d distinct, want 1000 of each", limit, len(items), len(seen))
		}
		ordered := sort.SliceIsSorted(items, func(i, j int) bool {
			a, b := items[i], items[j]
			if a["active"] != b["active"] {
				return a["active"].(bool)
			}
			if a["namespace"] != b["namespace"] {
				return a["namespace"].(string) < b["namespace"].(string)
			}
			return a["name"].(string) < b["name"].(string)
		})
		if !ordered {
			t.Errorf("limit %d: the items are not active first, then by namespace and name", limit)
		}
	}

	// The default page, and the summary, not the status.
	rec := f.get("/api/v1/rollouts")
	var page api.RolloutList
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || len(page.Items) != api.DefaultListLimit || page.Continue == "" {
		t.Fatalf("default page: %d items, continue %q (%v)", len(page.Items), page.Continue, err)
	}
	if strings.Contains(rec.Body.String(), `"status"`) || strings.Contains(rec.Body.String(), `"spec"`) {
		t.Error("the list carries the full status or spec")
	}
	first := page.Items[0]
	if !first.Active || !strings.Contains(first.Step, "/4") || !strings.Contains(first.Target, ": v1 → v2") || first.ResourceVersion == "" {
		t.Errorf("first item = %+v", first)
	}

	// Filters and fields.
	items, _ := f.listAll(t, "/api/v1/rollouts?namespace=team-03&phase=Progressing&limit=7&fields=name,phase,weight")
	if len(items) == 0 {
		t.Fatal("no Progressing rollouts in team-03")
	}
	want, _ := f.store.Summaries(readmodel.Filter{Namespace: "team-03", Phase: v1alpha1.PhaseProgressing})
	if len(items) != len(want) {
		t.Errorf("filtered: %d items, want %d", len(items), len(want))
	}
	for i, it := range items {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range it {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, []string{"name", "phase", "weight"}) || it["phase"] != "Progressing" || it["name"] != want[i].Summary.Name {
			t.Errorf("filtered item %d = %v", i, it)
		}
	}
}

func TestListBadQuery(t *testing.T) {
	f := newListFixture(t, 3)
	notJSON := base64.RawURLEncoding.EncodeToString([]byte("not json"))
	noName := base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"ns":"team-01"}`))
	for _, tc := range []struct{ query, param string }{
		{"limit=0", "limit"},
		{"limit=-3", "limit"},
		{"limit=abc", "limit"},
		{"limit=", "limit"},
		{"limit=501", "limit"},
		{"limit=1&limit=2", "limit"},
		{"continue=%25%25%25", "continue"},
		{"continue=" + notJSON, "continue"},
		{"continue=" + noName, "continue"},
		{"fields=name,colour", "colour"},
		{"fields=", "fields"},
		{"fields=name,,phase", "fields"},
		{"phase=Sleeping", "phase"},
	} {
		rec := f.get("/api/v1/rollouts?" + tc.query)
		var eb api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); rec.Code != http.StatusBadRequest || err != nil || !strings.Contains(eb.Error, tc.param) {
			t.Errorf("?%s: %d %s, want 400 naming %s", tc.query, rec.Code, rec.Body, tc.param)
		}
	}
	if n := f.writer.writes(); n != 0 {
		t.Errorf("bad lists made %d writes", n)
	}
	if rows, _ := f.store.Summaries(readmodel.Filter{}); len(rows) != 3 {
		t.Errorf("the read model holds %d rollouts after bad lists, want 3", len(rows))
	}
	if rec := f.get("/api/v1/rollouts?continue=&phase="); rec.Code != http.StatusOK {
		t.Errorf("empty continue and phase: %d %s, want 200 (from the start, any phase)", rec.Code, rec.Body)
	}
}

// BenchmarkListRollouts1000 measures GET /api/v1/rollouts through the gin
// handler over a read model of 1,000 realistic rollouts: the default page
// (100), the largest page (500), a field selection, and the walk over
// every page at the largest size. It reports p50 and p99 of one request
// (one walk for "all") and the bytes of an answer.
func BenchmarkListRollouts1000(b *testing.B) {
	f := newListFixture(b, 1000)
	for _, bc := range []struct{ name, path string }{
		{"default", "/api/v1/rollouts"},
		{"limit=500", "/api/v1/rollouts?limit=500"},
		{"fields", "/api/v1/rollouts?limit=500&fields=name,phase,weight"},
		{"namespace", "/api/v1/rollouts?namespace=team-07"},
		{"all", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var lat []time.Duration
			size := 0
			for b.Loop() {
				start := time.Now()
				n := 0
				if bc.path != "" {
					n = f.mustGet(b, bc.path)
				} else {
					n = f.walk(b, "/api/v1/rollouts?limit=500")
				}
				lat = append(lat, time.Since(start))
				size = n
			}
			slices.Sort(lat)
			p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
			b.ReportMetric(float64(p50)/1e6, "p50-ms")
			b.ReportMetric(float64(p99)/1e6, "p99-ms")
			b.ReportMetric(float64(size), "bytes/answer")
		})
	}
}

// mustGet answers path and returns the size of the body.
func (f *listFixture) mustGet(b *testing.B, path string) int {
	rec := f.get(path)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.Len()
}

// walk follows the continue tokens of path from its first page to its
// last and returns the bytes of all pages.
func (f *listFixture) walk(b *testing.B, path string) int {
	total, token := 0, ""
	for {
		p := path
		if token != "" {
			p += "&continue=" + token
		}
		rec := f.get(p)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", p, rec.Code, rec.Body)
		}
		total += rec.Body.Len()
		// The token is the answer's last member; finding it there keeps
		// the client's decoding out of the measure.
		body := rec.Body.Bytes()
		i := bytes.LastIndex(body, []byte(`],"continue":"`))
		if i < 0 {
			return total
		}
		token = string(body[i+len(`],"continue":"`) : len(body)-2])
	}
}

// syncedInformers is just enough of a controller-runtime cache for
// readmodel.Feed to mark the store synced without an API server.
type syncedInformers struct{ cache.Informers }

func (syncedInformers) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	return syncedInformer{}, nil
}

type syncedInformer struct{ cache.Informer }

func (syncedInformer) AddEventHandler(toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	return syncedRegistration{}, nil
}

type syncedRegistration struct {
	toolscache.ResourceEventHandlerRegistration
}

func (syncedRegistration) HasSynced() bool { return true }

func markSynced(tb testing.TB, store *readmodel.Store) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	if err := store.Feed(ctx, syncedInformers{}, nil); err != nil {
		tb.Fatal(err)
	}
	for !store.Synced() {
		time.Sleep(time.Millisecond)
	}
}
