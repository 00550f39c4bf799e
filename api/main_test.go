package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/test/apitest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

var st *stack.Stack

func TestMain(m *testing.M) { os.Exit(stack.Main(m, stack.Options{}, &st)) }

// Tokens of the test users.
const (
	operatorToken = "op-token-0123456789"
	viewerToken   = "viewer-token-0123456789"
)

// env is what every test shares: the API over the real API server, a
// direct client to check what was written, and the captured audit log.
type env struct {
	srv   *httptest.Server
	kube  client.Client
	store *readmodel.Store
	logs  *syncBuffer
}

var (
	envOnce sync.Once
	shared  *env
	envErr  error
)

// syncBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func getEnv(t testing.TB) *env {
	t.Helper()
	envOnce.Do(func() { shared, envErr = newEnv() })
	if envErr != nil {
		t.Fatalf("test environment: %v", envErr)
	}
	return shared
}

// newEnv lives for the whole test binary: its informer stops with it.
func newEnv() (*env, error) {
	kube, store, err := apitest.ReadModel(context.Background(), st.RESTConfig())
	if err != nil {
		return nil, err
	}
	tokens, err := api.ParseStaticTokens(strings.NewReader(
		operatorToken + ",olga,operator\n" + viewerToken + ",victor,viewer\n"))
	if err != nil {
		return nil, err
	}
	logs := &syncBuffer{}
	h, err := api.New(api.Options{
		Store: store, Writer: api.KubeWriter{Client: kube}, Workloads: api.KubeWriter{Client: kube},
		Authenticator: tokens, Authorizer: tokens,
		Log: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		return nil, err
	}
	return &env{srv: httptest.NewServer(h), kube: kube, store: store, logs: logs}, nil
}

// namespace creates a fresh namespace for one test.
func (e *env) namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	if err := e.kube.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// response is an API answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorBody(t testing.TB) api.ErrorBody {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error == "" {
		t.Fatalf("error answer is not {\"error\": ...}: %q (%v)", r.body, err)
	}
	return eb
}

// call sends one request; token "" sends none.
func (e *env) call(t testing.TB, method, path, token string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// stored lists the Rollouts of ns straight from the API server.
func (e *env) stored(t testing.TB, ns string) []v1alpha1.Rollout {
	t.Helper()
	var l v1alpha1.RolloutList
	if err := e.kube.List(t.Context(), &l, client.InNamespace(ns)); err != nil {
		t.Fatalf("list Rollouts in %q: %v", ns, err)
	}
	return l.Items
}

// eventually polls cond until it holds or 10s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createBody is a valid create request for ns/name on VirtualService vs.
func createBody(ns, name, vs string) string {
	return fmt.Sprintf(`{"namespace":%q,"name":%q,"spec":{"virtualService":%q,"stableSubset":"v1","canarySubset":"v2"}}`, ns, name, vs)
}

// mustCreate creates a rollout through the API and waits until the read
// model has it.
func (e *env) mustCreate(t testing.TB, ns, name, vs string) {
	t.Helper()
	r := e.call(t, http.MethodPost, "/api/v1/rollouts", operatorToken, strings.NewReader(createBody(ns, name, vs)))
	if r.status != http.StatusCreated {
		t.Fatalf("create %s/%s: status %d: %s", ns, name, r.status, r.body)
	}
	eventually(t, "the read model to see "+ns+"/"+name, func() bool { _, ok := e.store.Get(ns, name); return ok })
}

// setPhase writes status.phase through the status subresource, as the
// controller would, and waits until the read model sees it.
func (e *env) setPhase(t testing.TB, ns, name string, p v1alpha1.Phase) {
	t.Helper()
	var r v1alpha1.Rollout
	if err := e.kube.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
		t.Fatal(err)
	}
	r.Status.Phase = p
	if err := e.kube.Status().Update(t.Context(), &r); err != nil {
		t.Fatalf("set phase of %s/%s: %v", ns, name, err)
	}
	eventually(t, "the read model to see phase "+string(p), func() bool {
		got, ok := e.store.Get(ns, name)
		return ok && got.Status.Phase == p
	})
}
