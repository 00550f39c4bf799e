package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
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
)

// Tokens of the test users.
const (
	operatorToken = "op-token-0123456789"
	viewerToken   = "viewer-token-0123456789"
)

// cliEnv is the REST API (the real api.New handler) over the real API
// server, and a direct client to set up and check what was written.
type cliEnv struct {
	handler http.Handler
	srv     *httptest.Server
	kube    client.Client
	store   *readmodel.Store
}

var (
	cliEnvOnce sync.Once
	sharedEnv  *cliEnv
	cliEnvErr  error
)

func getCLIEnv(t testing.TB) *cliEnv {
	t.Helper()
	cliEnvOnce.Do(func() { sharedEnv, cliEnvErr = newCLIEnv() })
	if cliEnvErr != nil {
		t.Fatalf("test environment: %v", cliEnvErr)
	}
	return sharedEnv
}

// newCLIEnv lives for the whole test binary: its informer stops with it.
func newCLIEnv() (*cliEnv, error) {
	kube, store, err := apitest.ReadModel(context.Background(), st.RESTConfig())
	if err != nil {
		return nil, err
	}
	tokens, err := api.ParseStaticTokens(strings.NewReader(
		operatorToken + ",olga,operator\n" + viewerToken + ",victor,viewer\n"))
	if err != nil {
		return nil, err
	}
	h, err := api.New(api.Options{
		Store: store, Writer: api.KubeWriter{Client: kube}, Workloads: api.KubeWriter{Client: kube},
		Authenticator: tokens, Authorizer: tokens,
	})
	if err != nil {
		return nil, err
	}
	return &cliEnv{handler: h, srv: httptest.NewServer(h), kube: kube, store: store}, nil
}

// lockedBuffer is a bytes.Buffer safe to read while a command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what one CLI run printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs `serin rollout args...` against server with token from the
// environment ($SERIN_SERVER, $SERIN_TOKEN).
type cli struct {
	server, token string
	tty           bool
	stdin         string
}

func (c cli) io(stdout, stderr *lockedBuffer) cliIO {
	env := map[string]string{"SERIN_SERVER": c.server, "SERIN_TOKEN": c.token}
	return cliIO{
		Stdin: strings.NewReader(c.stdin), Stdout: stdout, Stderr: stderr,
		Getenv: func(k string) string { return env[k] }, TTY: c.tty,
		Now: time.Now, PollInterval: 50 * time.Millisecond,
	}
}

func (c cli) run(t testing.TB, args ...string) result {
	t.Helper()
	var stdout, stderr lockedBuffer
	code := rolloutMain(t.Context(), args, c.io(&stdout, &stderr))
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// operator is the CLI with the operator's token.
func (e *cliEnv) operator() cli { return cli{server: e.srv.URL, token: operatorToken} }

// namespace creates a fresh namespace for one test.
func (e *cliEnv) namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	if err := e.kube.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// stored lists the Rollouts of ns straight from the API server.
func (e *cliEnv) stored(t testing.TB, ns string) []v1alpha1.Rollout {
	t.Helper()
	var l v1alpha1.RolloutList
	if err := e.kube.List(t.Context(), &l, client.InNamespace(ns)); err != nil {
		t.Fatalf("list Rollouts in %q: %v", ns, err)
	}
	return l.Items
}

// get reads one Rollout straight from the API server.
func (e *cliEnv) get(t testing.TB, ns, name string) v1alpha1.Rollout {
	t.Helper()
	var r v1alpha1.Rollout
	if err := e.kube.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	return r
}

// mustStart starts ns/name through the CLI and waits until the read model
// has it.
func (e *cliEnv) mustStart(t testing.TB, ns, name, vs string) {
	t.Helper()
	res := e.operator().run(t, "start", "-n", ns, name, "--virtual-service", vs, "--stable-subset", "v1", "--canary-subset", "v2")
	if res.code != 0 {
		t.Fatalf("start %s/%s: exit %d: %s", ns, name, res.code, res.stderr)
	}
	eventually(t, "the read model to see "+ns+"/"+name, func() bool { _, ok := e.store.Get(ns, name); return ok })
}

// setStatus changes the status through the status subresource, as the
// controller would, and waits until the read model sees it.
func (e *cliEnv) setStatus(t testing.TB, ns, name string, change func(*v1alpha1.RolloutStatus)) {
	t.Helper()
	r := e.get(t, ns, name)
	change(&r.Status)
	if err := e.kube.Status().Update(t.Context(), &r); err != nil {
		t.Fatalf("update status of %s/%s: %v", ns, name, err)
	}
	eventually(t, "the read model to see the new status of "+ns+"/"+name, func() bool {
		got, ok := e.store.Get(ns, name)
		return ok && got.ResourceVersion == r.ResourceVersion
	})
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
