package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// streamUsers are static users for the stream tests: the cap is per user.
var streamUsers = []string{"sse-a", "sse-b", "sse-c", "sse-d", "sse-e"}

func streamToken(user string) string { return user + "-token-0123456789" }

// streamServer serves the API with a static viewer token for each of
// streamUsers, adjusted by opts, on an httptest server that change may
// configure before it starts.
func (e *env) streamServer(t *testing.T, opts func(*api.Options), change func(*httptest.Server)) *httptest.Server {
	t.Helper()
	var file strings.Builder
	for _, u := range streamUsers {
		fmt.Fprintf(&file, "%s,%s,viewer\n", streamToken(u), u)
	}
	tokens, err := api.ParseStaticTokens(strings.NewReader(file.String()))
	if err != nil {
		t.Fatal(err)
	}
	o := api.Options{Store: e.store, Writer: api.KubeWriter{Client: e.kube}, Authenticator: tokens, Authorizer: tokens}
	if opts != nil {
		opts(&o)
	}
	h, err := api.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	if change != nil {
		change(srv)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// openRaw GETs an event stream with its own context and returns the
// response (any status) and the function that closes it.
func openRaw(t *testing.T, c *http.Client, url, token string) (*http.Response, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	closeIt := func() { cancel(); resp.Body.Close() }
	t.Cleanup(closeIt)
	return resp, closeIt
}

// TestStreamCapPerUser: one user may hold DefaultMaxStreamsPerUser
// streams; the next is refused with 429 and Retry-After, other users are
// not affected, and closing a stream frees its slot.
func TestStreamCapPerUser(t *testing.T) {
	e := getEnv(t)
	srv := e.streamServer(t, nil, nil)
	url := srv.URL + "/api/v1/events?namespace=" + e.namespace(t)
	c := &http.Client{Transport: &http.Transport{}}
	var closers []func()
	for i := range api.DefaultMaxStreamsPerUser {
		resp, closeIt := openRaw(t, c, url, streamToken("sse-a"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of one user: status %d, want 200", i+1, resp.StatusCode)
		}
		closers = append(closers, closeIt)
	}
	resp, closeIt := openRaw(t, c, url, streamToken("sse-a"))
	if resp.StatusCode != http.StatusTooManyRequests { // a stream's body never ends: do not read it
		t.Fatalf("stream %d of one user: status %d, want 429", api.DefaultMaxStreamsPerUser+1, resp.StatusCode)
	}
	b, _ := io.ReadAll(resp.Body)
	closeIt()
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"error"`) {
		t.Fatalf("429 with Retry-After %q and body %s; want a Retry-After and an error body", resp.Header.Get("Retry-After"), b)
	}
	if resp, _ := openRaw(t, c, url, streamToken("sse-b")); resp.StatusCode != http.StatusOK {
		t.Errorf("another user's stream: status %d, want 200", resp.StatusCode)
	}
	closers[0]()
	eventually(t, "a closed stream to free its slot", func() bool {
		resp, closeIt := openRaw(t, c, url, streamToken("sse-a"))
		if resp.StatusCode == http.StatusOK {
			return true
		}
		closeIt()
		return false
	})
}

// TestStreamGoroutinesReturnToBaseline opens 100 streams (20 for each of
// five users), closes them, and expects the goroutines they used, on the
// client's side and on the server's, to be gone.
func TestStreamGoroutinesReturnToBaseline(t *testing.T) {
	e := getEnv(t)
	srv := e.streamServer(t, func(o *api.Options) { o.Heartbeat = 50 * time.Millisecond }, nil)
	url := srv.URL + "/api/v1/events?namespace=" + e.namespace(t)
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	// Warm up the paths the streams take, so that lazily started
	// goroutines are part of the baseline.
	_, closeIt := openRaw(t, c, url, streamToken("sse-a"))
	closeIt()
	tr.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	var closers []func()
	for i := range 100 {
		resp, closeIt := openRaw(t, c, url, streamToken(streamUsers[i%len(streamUsers)]))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: status %d", i+1, resp.StatusCode)
		}
		closers = append(closers, closeIt)
	}
	if open := runtime.NumGoroutine(); open < baseline+100 {
		t.Fatalf("%d goroutines with 100 streams open, baseline %d: are the streams running?", open, baseline)
	}
	for _, closeIt := range closers {
		closeIt()
	}
	tr.CloseIdleConnections()
	const margin = 5
	deadline := time.Now().Add(10 * time.Second)
	for n := runtime.NumGoroutine(); n > baseline+margin; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines 10 s after 100 streams closed, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// smallBuffers shrinks the send buffer of every accepted connection, so
// that a client that stops reading blocks the server's writes soon.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestStreamDropsAStuckClient: a client that stops reading while its
// stream has far more to send than the sockets hold is dropped after
// StreamWriteTimeout, and its slot is freed. The stream is one rollout's,
// whose first event is the whole rollout, with a large request annotation
// (a list stream's summaries are small by design).
func TestStreamDropsAStuckClient(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	big := strings.Repeat("x", 200<<10) // a request annotation is part of the event
	e.mustCreate(t, ns, "a", "vs-a")
	var r v1alpha1.Rollout
	r.Namespace, r.Name = ns, "a"
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"serin.dev/padding":%q}}}`, big)
	if err := e.kube.Patch(t.Context(), &r, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the read model to see the padding", func() bool {
		r, ok := e.store.Get(ns, "a")
		return ok && r.Annotations["serin.dev/padding"] != ""
	})
	srv := e.streamServer(t, func(o *api.Options) {
		o.StreamWriteTimeout = 200 * time.Millisecond
		o.Heartbeat = time.Hour // only the initial event is sent
		o.MaxStreamsPerUser = 1
	}, func(s *httptest.Server) { s.Listener = smallBuffers{s.Listener} })

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/rollouts/%s/a/events HTTP/1.1\r\nHost: serin\r\nAuthorization: Bearer %s\r\n\r\n", ns, streamToken("sse-c"))
	time.Sleep(time.Second) // not reading: the server's writes block, then time out

	// The stream was dropped: what the sockets held, then the end, not a
	// stream that goes on sending the rest.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, bufio.NewReader(conn))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the stuck client's stream is still open after %d bytes", n)
	}
	if n >= int64(len(big)) {
		t.Errorf("read %d bytes: the whole event arrived, so the client was never stuck", n)
	}
	c := &http.Client{Transport: &http.Transport{}}
	eventually(t, "the dropped stream to free its slot", func() bool {
		resp, closeIt := openRaw(t, c, srv.URL+"/api/v1/events?namespace="+e.namespace(t), streamToken("sse-c"))
		defer closeIt()
		return resp.StatusCode == http.StatusOK
	})
}

// TestStreamOutlivesServerTimeouts: the controller's server has read and
// write timeouts for plain requests; an event stream must go on past both.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	e := getEnv(t)
	srv := e.streamServer(t, func(o *api.Options) { o.Heartbeat = 50 * time.Millisecond }, func(s *httptest.Server) {
		s.Config.ReadTimeout = 200 * time.Millisecond
		s.Config.WriteTimeout = 200 * time.Millisecond
	})
	s := e.openStream(t, srv.URL, "/api/v1/events?namespace="+e.namespace(t), streamToken("sse-d"))
	start := time.Now()
	for time.Since(start) < time.Second {
		if _, ok := <-s.events; !ok {
			t.Fatalf("the stream ended after %v, with ReadTimeout and WriteTimeout of 200ms", time.Since(start).Round(time.Millisecond))
		}
	}
	// A plain request on the same server still gets its answer.
	resp, err := srv.Client().Get(srv.URL + "/api/v1/openapi.json")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET openapi.json: %v %v", resp, err)
	}
	resp.Body.Close()
}
