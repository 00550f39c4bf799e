package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// sseEvent is one event of a stream; a comment has Comment set.
type sseEvent struct {
	Name, Data, Comment string
}

// stream is an open SSE response read by a goroutine.
type stream struct {
	header http.Header
	events chan sseEvent // closed at the end of the stream
	doc    []byte        // the rollout as the stream's events so far make it
}

// openStream GETs path and reads its events until the stream ends or the
// test does.
func (e *env) openStream(t *testing.T, base, path, token string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, b)
	}
	s := &stream{header: resp.Header, events: make(chan sseEvent, 100)}
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && (ev.Name != "" || ev.Comment != ""):
				s.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.Comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[len("data: "):]
			}
		}
	}()
	return s
}

// next returns the next event that is not a comment; ok is false at the
// end of the stream.
func (s *stream) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok || ev.Name != "" {
				return ev, ok
			}
		case <-timeout:
			t.Fatal("timed out waiting for an SSE event")
		}
	}
}

// rolloutEvent reads the next event and requires a "rollout" event.
func (s *stream) rolloutEvent(t *testing.T) api.RolloutEvent {
	t.Helper()
	ev, ok := s.next(t)
	if !ok || ev.Name != "rollout" {
		t.Fatalf("got %+v (open %v), want a rollout event", ev, ok)
	}
	s.doc = []byte(ev.Data)
	var re api.RolloutEvent
	if err := json.Unmarshal([]byte(ev.Data), &re); err != nil {
		t.Fatalf("rollout event data %q: %v", ev.Data, err)
	}
	return re
}

// patchEvent reads the next event, requires a "patch" event, applies it
// to the stream's previous document and returns the result and the patch.
func (s *stream) patchEvent(t *testing.T) (api.RolloutEvent, map[string]any) {
	t.Helper()
	ev, ok := s.next(t)
	if !ok || ev.Name != "patch" {
		t.Fatalf("got %+v (open %v), want a patch event", ev, ok)
	}
	var patch map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &patch); err != nil {
		t.Fatalf("patch event data %q: %v", ev.Data, err)
	}
	doc, err := api.ApplyMergePatch(s.doc, []byte(ev.Data))
	if err != nil {
		t.Fatalf("apply patch %s: %v", ev.Data, err)
	}
	s.doc = doc
	var re api.RolloutEvent
	if err := json.Unmarshal(doc, &re); err != nil {
		t.Fatalf("patched document %s: %v", doc, err)
	}
	return re, patch
}

// setStatus changes the status of ns/name through the status subresource,
// as the controller does.
func (e *env) setStatus(t *testing.T, ns, name string, change func(*v1alpha1.RolloutStatus)) {
	t.Helper()
	var r v1alpha1.Rollout
	if err := e.kube.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
		t.Fatal(err)
	}
	change(&r.Status)
	if err := e.kube.Status().Update(t.Context(), &r); err != nil {
		t.Fatalf("update status of %s/%s: %v", ns, name, err)
	}
}

// tick sets the status of an analysis tick at weight w.
func tick(at time.Time, w int32, p99 float64) func(*v1alpha1.RolloutStatus) {
	return func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.CanaryWeight = v1alpha1.PhaseProgressing, w
		now := metav1.NewTime(at)
		s.Analysis.LastTickAt, s.Analysis.LastVerdict = &now, "Pass"
		s.Analysis.Checks = []v1alpha1.CheckStatus{{Check: "latency-p99", Source: "prometheus", Verdict: "Pass",
			Canary: p99, Stable: 100, Limit: 150, Unit: "ms", Reason: "ok"}}
	}
}

func TestStreamRollout(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustCreate(t, ns, "a", "vs-a")
	all := e.openStream(t, e.srv.URL, "/api/v1/events?namespace="+ns, viewerToken)
	one := e.openStream(t, e.srv.URL, "/api/v1/rollouts/"+ns+"/a/events", viewerToken)
	if ct := one.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	if first := one.rolloutEvent(t); first.Name != "a" || first.Status.Phase != "" || first.Point != nil {
		t.Fatalf("initial event = %+v", first)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	e.setStatus(t, ns, "a", tick(t0, 10, 90))
	e.setStatus(t, ns, "a", tick(t0.Add(2*time.Second), 25, 120))

	// Later events are deltas: only what changed, never the unchanged spec.
	got, patch := one.patchEvent(t)
	if got.Status.Phase != v1alpha1.PhaseProgressing || got.Status.CanaryWeight != 10 || got.Point == nil || !got.Point.Time.Equal(t0) {
		t.Fatalf("second event = %+v, point %+v", got.Status, got.Point)
	}
	if _, has := patch["spec"]; has || patch["status"] == nil || patch["resourceVersion"] == nil {
		t.Errorf("patch = %v, want status and resourceVersion, no spec", patch)
	}
	got, patch = one.patchEvent(t)
	if got.Status.CanaryWeight != 25 || got.Point == nil || got.Point.CanaryWeight != 25 || got.Point.Checks[0].Canary != 120 {
		t.Fatalf("third event = %+v, point %+v", got.Status, got.Point)
	}
	if st := patch["status"].(map[string]any); st["phase"] != nil || st["canaryWeight"] == nil {
		t.Errorf("patch status = %v, want the weight and not the unchanged phase", st)
	}
	// The deltas add up to the rollout as GET shows it.
	var want api.RolloutEvent
	if err := json.Unmarshal(e.call(t, http.MethodGet, "/api/v1/rollouts/"+ns+"/a", viewerToken, nil).body, &want.Rollout); err != nil {
		t.Fatal(err)
	}
	if g, w := toJSON(got.Rollout), toJSON(want.Rollout); g != w {
		t.Errorf("the stream's rollout\n %s\nGET's\n %s", g, w)
	}
	r := e.call(t, http.MethodGet, "/api/v1/rollouts/"+ns+"/a/series", viewerToken, nil)
	var series api.SeriesList
	if err := json.Unmarshal(r.body, &series); r.status != 200 || err != nil || len(series.Points) != 2 {
		t.Fatalf("series: status %d: %s", r.status, r.body)
	}

	if err := e.kube.Delete(t.Context(), &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	if ev, ok := one.next(t); !ok || ev.Name != "deleted" || !strings.Contains(ev.Data, `"name":"a"`) {
		t.Fatalf("after delete: %+v (open %v), want a deleted event", ev, ok)
	}
	if ev, ok := one.next(t); ok {
		t.Fatalf("the stream went on after the delete: %+v", ev)
	}

	// The list stream saw the same changes, in order, as summaries, and
	// stays open.
	weights := []int32{}
	for {
		ev, ok := all.next(t)
		if !ok {
			t.Fatal("the list stream ended")
		}
		if ev.Name == "deleted" {
			break
		}
		if ev.Name != "summary" {
			t.Fatalf("list stream event %q, want summary", ev.Name)
		}
		var sum api.RolloutSummary
		_ = json.Unmarshal([]byte(ev.Data), &sum)
		if strings.Contains(ev.Data, `"status"`) || sum.Name != "a" || !strings.HasSuffix(sum.Step, "/4") {
			t.Errorf("summary event = %s", ev.Data)
		}
		weights = append(weights, sum.Weight)
	}
	if len(weights) < 3 || weights[0] != 0 || weights[len(weights)-2] != 10 || weights[len(weights)-1] != 25 {
		t.Errorf("list stream weights = %v, want 0 … 10, 25", weights)
	}
}

// TestStreamSkipsWhatShowsNothingNew: a change that the summary does not
// show (here an annotation: a new resourceVersion alone) sends nothing on
// the list stream, and a patch of only metadata on the rollout's stream.
func TestStreamSkipsWhatShowsNothingNew(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustCreate(t, ns, "a", "vs-a")
	all := e.openStream(t, e.srv.URL, "/api/v1/events?namespace="+ns, viewerToken)
	one := e.openStream(t, e.srv.URL, "/api/v1/rollouts/"+ns+"/a/events", viewerToken)
	if ev, _ := all.next(t); ev.Name != "summary" {
		t.Fatalf("first list event = %+v", ev)
	}
	one.rolloutEvent(t)

	r := e.get(t, ns, "a")
	r.Annotations = map[string]string{"example.com/note": "unrelated"}
	if err := e.kube.Update(t.Context(), &r); err != nil {
		t.Fatal(err)
	}
	_, patch := one.patchEvent(t)
	if _, has := patch["status"]; has {
		t.Errorf("an annotation's patch = %v, want no status", patch)
	}
	e.setStatus(t, ns, "a", tick(time.Now(), 10, 90))
	if ev, _ := all.next(t); ev.Name != "summary" || !strings.Contains(ev.Data, `"weight":10`) {
		t.Errorf("after the annotation and a tick, the list stream sent %+v, want only the tick's summary", ev)
	}
}

func TestStreamRefused(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/api/v1/rollouts/" + ns + "/none/events", "", http.StatusUnauthorized},
		{"/api/v1/events", "wrong", http.StatusUnauthorized},
		{"/api/v1/rollouts/" + ns + "/none/events", viewerToken, http.StatusNotFound},
		{"/api/v1/rollouts/" + ns + "/none/series", viewerToken, http.StatusNotFound},
		{"/api/v1/rollouts/" + ns + "/none/series", "", http.StatusUnauthorized},
	} {
		if r := e.call(t, http.MethodGet, tc.path, tc.token, nil); r.status != tc.want {
			t.Errorf("GET %s: status %d, want %d: %s", tc.path, r.status, tc.want, r.body)
		} else {
			r.errorBody(t)
		}
	}
}

func TestStreamHeartbeat(t *testing.T) {
	e := getEnv(t)
	tokens, _ := api.ParseStaticTokens(strings.NewReader(viewerToken + ",victor,viewer\n"))
	h, err := api.New(api.Options{Store: e.store, Writer: api.KubeWriter{Client: e.kube},
		Authenticator: tokens, Authorizer: tokens, Heartbeat: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after openStream's cleanup has ended the stream
	s := e.openStream(t, srv.URL, "/api/v1/events?namespace="+e.namespace(t), viewerToken)
	select {
	case ev := <-s.events:
		if ev.Comment != "ping" {
			t.Errorf("first event of an empty namespace = %+v, want a ping", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
}
