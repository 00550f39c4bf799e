package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/serin-dev/serin/test/stack"
)

var (
	virtualServices = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	rollouts        = schema.GroupVersionResource{Group: "serin.dev", Version: "v1alpha1", Resource: "rollouts"}
)

// TestStack starts the full stack once, istiod included, checks each part
// against the real servers, then stops it and checks that nothing is left
// behind.
func TestStack(t *testing.T) {
	ctx := t.Context()
	begin := time.Now()
	st, err := stack.Start(ctx, stack.Options{Prometheus: true, Jaeger: true, Istiod: true, Log: tWriter{t}})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Logf("full stack started in %v", time.Since(begin).Round(10*time.Millisecond))
	t.Cleanup(func() { _ = st.Stop() })

	t.Run("CRDsServed", func(t *testing.T) { testCRDsServed(t, st) })
	t.Run("VirtualServiceRoundTrip", func(t *testing.T) { testVirtualService(t, st) })
	t.Run("InvalidRolloutRejected", func(t *testing.T) { testInvalidRollout(t, st) })
	t.Run("Kubeconfig", func(t *testing.T) { testKubeconfig(t, st) })
	t.Run("AliceForbidden", func(t *testing.T) { testAliceForbidden(t, st) })
	t.Run("PrometheusScrapesTarget", func(t *testing.T) { testPrometheusScrapes(t, st) })
	t.Run("JaegerHealthyAndReceivesSpans", func(t *testing.T) { testJaeger(t, st) })
	t.Run("IstiodReady", func(t *testing.T) { testIstiodReady(t, st) })
	t.Run("IstiodSeesConfig", func(t *testing.T) { testIstiodSeesConfig(t, st) })
	t.Run("ListenersLoopbackOnly", func(t *testing.T) { testLoopbackOnly(t, st.PIDs()) })
	t.Run("StopPrometheus", func(t *testing.T) { testStopPrometheus(t, st) })
	// Last among the subtests: the first istiod's PID is gone afterwards,
	// which the listener check above would report.
	t.Run("IstiodStopAndStart", func(t *testing.T) { testIstiodStopAndStart(t, st) })

	pids, dir := st.PIDs(), st.Dir
	if len(pids) != 6 {
		t.Errorf("PIDs() = %v, want 6 (etcd, kube-apiserver, prometheus, jaeger, istiod and istiod started again)", pids)
	}
	istiod := st.Istiod()
	stopBegin := time.Now()
	if err := st.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stack stopped in %v", time.Since(stopBegin).Round(10*time.Millisecond))
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s still exists after Stop (stat: %v)", dir, err)
	}
	// Stopped before the API server, istiod shuts down cleanly on SIGTERM.
	if err := istiod.Err(); err != nil {
		t.Errorf("istiod (pid %d) exited with %v after Stop, want status 0", istiod.PID(), err)
	}
	if err := st.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func testCRDsServed(t *testing.T, st *stack.Stack) {
	disc, err := discovery.NewDiscoveryClientForConfig(st.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"networking.istio.io/v1": {"virtualservices", "destinationrules"},
		"security.istio.io/v1":   {"peerauthentications"},
		"serin.dev/v1alpha1":     {"rollouts"},
	}
	for gv, resources := range want {
		list, err := disc.ServerResourcesForGroupVersion(gv)
		if err != nil {
			t.Errorf("discovery %s: %v", gv, err)
			continue
		}
		for _, r := range resources {
			if !slices.ContainsFunc(list.APIResources, func(a metav1.APIResource) bool { return a.Name == r }) {
				t.Errorf("%s/%s not served", gv, r)
			}
		}
	}
}

func testVirtualService(t *testing.T, st *stack.Stack) {
	dyn := dynamic.NewForConfigOrDie(st.RESTConfig())
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata":   map[string]any{"name": "reviews", "namespace": "default"},
		"spec": map[string]any{
			"hosts": []any{"reviews"},
			"http": []any{map[string]any{
				"name": "primary",
				"route": []any{
					map[string]any{"destination": map[string]any{"host": "reviews", "subset": "v1"}, "weight": int64(90)},
					map[string]any{"destination": map[string]any{"host": "reviews", "subset": "v2"}, "weight": int64(10)},
				},
			}},
		},
	}}
	if _, err := dyn.Resource(virtualServices).Namespace("default").Create(t.Context(), vs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create VirtualService: %v", err)
	}
	got, err := dyn.Resource(virtualServices).Namespace("default").Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get VirtualService: %v", err)
	}
	routes, _, _ := unstructured.NestedSlice(got.Object, "spec", "http")
	if len(routes) != 1 {
		t.Fatalf("read back %d http routes, want 1: %v", len(routes), got.Object["spec"])
	}
	weight, _, _ := unstructured.NestedInt64(routes[0].(map[string]any)["route"].([]any)[1].(map[string]any), "weight")
	if weight != 10 {
		t.Errorf("canary weight read back = %d, want 10", weight)
	}
}

func testInvalidRollout(t *testing.T, st *stack.Stack) {
	dyn := dynamic.NewForConfigOrDie(st.RESTConfig())
	ro := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "serin.dev/v1alpha1",
		"kind":       "Rollout",
		"metadata":   map[string]any{"name": "bad-steps", "namespace": "default"},
		"spec": map[string]any{
			"virtualService": "x",
			"stableSubset":   "v1",
			"canarySubset":   "v2",
			"steps":          []any{int64(50), int64(25), int64(100)},
		},
	}}
	_, err := dyn.Resource(rollouts).Namespace("default").Create(t.Context(), ro, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "strictly increasing") {
		t.Fatalf("create Rollout with steps [50,25,100]: err = %v, want Invalid with \"strictly increasing\"", err)
	}
	_, err = dyn.Resource(rollouts).Namespace("default").Get(t.Context(), "bad-steps", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("rejected Rollout was stored anyway (get: %v)", err)
	}
}

func testKubeconfig(t *testing.T, st *stack.Stack) {
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", st.Kubeconfig, err)
	}
	if _, err := dynamic.NewForConfigOrDie(cfg).Resource(rollouts).Namespace("default").List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("list rollouts with the kubeconfig (TLS verified against the CA): %v", err)
	}
}

func testAliceForbidden(t *testing.T, st *stack.Stack) {
	if st.Token("alice") == "" || st.Token("alice") == st.Token("bob") || st.Token("alice") == st.Token("admin") {
		t.Fatalf("tokens are not distinct: alice %q bob %q", st.Token("alice"), st.Token("bob"))
	}
	_, err := dynamic.NewForConfigOrDie(st.RESTConfigFor("alice")).Resource(rollouts).Namespace("default").List(t.Context(), metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("alice lists rollouts: err = %v, want Forbidden", err)
	}
	if !strings.Contains(err.Error(), `"alice"`) {
		t.Errorf("Forbidden does not name alice: %v", err)
	}
}

func testPrometheusScrapes(t *testing.T, st *stack.Stack) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE serin_stack_test_value gauge\nserin_stack_test_value 42")
	}))
	defer target.Close()
	host := strings.TrimPrefix(target.URL, "http://")
	if err := st.SetScrapeTargets("stacktest", []string{host}); err != nil {
		t.Fatal(err)
	}
	q := st.PrometheusURL + "/api/v1/query?query=" + url.QueryEscape(`up{job="stacktest"}`)
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var body struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  []any             `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := getJSON(t, q, &body); err != nil {
			last = err.Error()
		} else if r := body.Data.Result; len(r) == 1 && r[0].Value[1] == "1" && r[0].Metric["instance"] == host {
			return
		} else {
			last = fmt.Sprintf("%+v", r)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("up{job=\"stacktest\"} never became 1 for %s; last: %s", host, last)
}

func testJaeger(t *testing.T, st *stack.Stack) {
	resp, err := http.Get(st.JaegerHealthURL())
	if err != nil {
		t.Fatalf("jaeger health: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jaeger health: %s", resp.Status)
	}
	now := time.Now()
	span := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"stacktest"}}]},
	  "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /",
	  "kind":2,"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`, now.UnixNano(), now.Add(time.Millisecond).UnixNano())
	resp, err = http.Post("http://"+st.OTLPHTTPEndpoint+"/v1/traces", "application/json", strings.NewReader(span))
	if err != nil {
		t.Fatalf("OTLP/HTTP post: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP post: %s", resp.Status)
	}
	q := fmt.Sprintf("%s/api/traces?service=stacktest&limit=10&start=%d&end=%d", st.JaegerQueryURL,
		now.Add(-time.Minute).UnixMicro(), now.Add(time.Minute).UnixMicro())
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var body struct {
			Data []struct {
				TraceID string `json:"traceID"`
			} `json:"data"`
		}
		if err := getJSON(t, q, &body); err != nil {
			last = err.Error()
		} else if len(body.Data) == 1 && body.Data[0].TraceID == "5b8efff798038103d269b633813fc60c" {
			return
		} else {
			last = fmt.Sprintf("%+v", body.Data)
		}
	}
	t.Fatalf("span sent over OTLP/HTTP not found in the query API; last: %s", last)
}

func testStopPrometheus(t *testing.T, st *stack.Stack) {
	if err := st.StopPrometheus(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(st.PrometheusURL + "/-/ready"); err == nil {
		resp.Body.Close()
		t.Fatalf("Prometheus still answers after StopPrometheus: %s", resp.Status)
	}
	if err := st.StopPrometheus(); err != nil {
		t.Errorf("second StopPrometheus: %v", err)
	}
}

// getJSON GETs u and decodes a 200 JSON body into v.
func getJSON(t *testing.T, u string, v any) error {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// tWriter sends the stack's progress lines to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestRepoRootAndEnsure(t *testing.T) {
	if _, err := os.Stat(filepath.Join(stack.RepoRoot(), "go.mod")); err != nil {
		t.Errorf("RepoRoot() = %s: %v", stack.RepoRoot(), err)
	}
	err := stack.Ensure(t.Context(), io.Discard, "etcd", "no-such-component")
	if err == nil || !strings.Contains(err.Error(), `"no-such-component"`) {
		t.Errorf("Ensure(unknown component): err = %v, want it named", err)
	}
	if err := stack.Ensure(context.Background(), io.Discard, "etcd", "kube", "prometheus", "jaeger"); err != nil {
		t.Errorf("Ensure with everything installed: %v", err)
	}
}
