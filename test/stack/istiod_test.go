package stack_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/test/stack"
)

var destinationRules = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}

// testIstiodReady checks istiod's addresses, that it answers /ready, that
// with no proxy connected /debug/syncz is the empty list, and that it listens
// on exactly the four loopback ports it was given.
func testIstiodReady(t *testing.T, st *stack.Stack) {
	p := st.Istiod()
	if p == nil || p.Exited() {
		t.Fatalf("Istiod() = %v, want a running process", p)
	}
	if !strings.HasPrefix(st.IstiodXDSAddr, "127.0.0.1:") || !strings.HasPrefix(st.IstiodDebugURL, "http://127.0.0.1:") {
		t.Fatalf("IstiodXDSAddr %q, IstiodDebugURL %q: want loopback addresses", st.IstiodXDSAddr, st.IstiodDebugURL)
	}
	if !slices.Contains(st.PIDs(), p.PID()) {
		t.Errorf("PIDs() = %v lacks istiod's pid %d", st.PIDs(), p.PID())
	}
	if code, body := get(t, st.IstiodDebugURL+"/ready"); code != http.StatusOK {
		t.Errorf("GET /ready: %d %s", code, body)
	}
	if code, body := get(t, st.IstiodDebugURL+"/debug/syncz"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /debug/syncz with no proxy: %d %q, want 200 []", code, body)
	}
	ls, err := listenersOf(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, l := range ls {
		addrs = append(addrs, l.String())
	}
	debugAddr := strings.TrimPrefix(st.IstiodDebugURL, "http://")
	// xDS, debug, monitoring and ControlZ: the mTLS xDS port and the webhook
	// HTTPS port are off, the webhooks being served on the debug port.
	if len(addrs) != 4 || !slices.Contains(addrs, st.IstiodXDSAddr) || !slices.Contains(addrs, debugAddr) {
		t.Errorf("istiod listens on %v, want 4 ports including %s and %s", addrs, st.IstiodXDSAddr, debugAddr)
	}
}

// testIstiodSeesConfig applies a Service, a VirtualService and a
// DestinationRule to the API server and waits until istiod holds them: the
// Istio config in /debug/configz, the Service in its registry
// (/debug/registryz).
func testIstiodSeesConfig(t *testing.T, st *stack.Stack) {
	ctx := t.Context()
	kc := kubernetes.NewForConfigOrDie(st.RESTConfig())
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "ratings"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := kc.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Service: %v", err)
	}
	dyn := dynamic.NewForConfigOrDie(st.RESTConfig())
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "ratings", "namespace": "default"},
		"spec": map[string]any{
			"hosts": []any{"ratings"},
			"http": []any{map[string]any{"route": []any{
				map[string]any{"destination": map[string]any{"host": "ratings", "subset": "v1"}, "weight": int64(80)},
				map[string]any{"destination": map[string]any{"host": "ratings", "subset": "v2"}, "weight": int64(20)},
			}}},
		},
	}}
	dr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"name": "ratings", "namespace": "default"},
		"spec": map[string]any{"host": "ratings", "subsets": []any{
			map[string]any{"name": "v1", "labels": map[string]any{"version": "v1"}},
			map[string]any{"name": "v2", "labels": map[string]any{"version": "v2"}},
		}},
	}}
	if _, err := dyn.Resource(virtualServices).Namespace("default").Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create VirtualService: %v", err)
	}
	if _, err := dyn.Resource(destinationRules).Namespace("default").Create(ctx, dr, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create DestinationRule: %v", err)
	}
	begin := time.Now()
	waitIstiodConfig(t, st, "VirtualService/default/ratings", "DestinationRule/default/ratings")
	waitFor(t, 10*time.Second, func() error {
		_, body := get(t, st.IstiodDebugURL+"/debug/registryz")
		if !strings.Contains(body, `"hostname":"ratings.default.svc.cluster.local"`) {
			return errors.New("Service ratings.default.svc.cluster.local not in /debug/registryz")
		}
		return nil
	})
	t.Logf("istiod holds the VirtualService, DestinationRule and Service %v after they were written", time.Since(begin).Round(time.Millisecond))
}

// testIstiodStopAndStart stops istiod, checks that its ports refuse, starts
// it again and checks that it is back on the same addresses, listening on
// loopback only, with the config it held before.
func testIstiodStopAndStart(t *testing.T, st *stack.Stack) {
	first := st.Istiod()
	xds, debug := st.IstiodXDSAddr, st.IstiodDebugURL
	if err := st.StopIstiod(); err != nil {
		t.Fatal(err)
	}
	if !first.Exited() {
		t.Fatalf("istiod (pid %d) still runs after StopIstiod", first.PID())
	}
	if err := first.Err(); err != nil {
		t.Errorf("istiod (pid %d) exited with %v on SIGTERM, want status 0", first.PID(), err)
	}
	for _, addr := range []string{xds, strings.TrimPrefix(debug, "http://")} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s accepts connections after StopIstiod", addr)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s after StopIstiod: %v, want connection refused", addr, err)
		}
	}
	if err := st.StopIstiod(); err != nil {
		t.Errorf("second StopIstiod: %v", err)
	}

	begin := time.Now()
	if err := st.StartIstiod(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("istiod started again in %v", time.Since(begin).Round(10*time.Millisecond))
	second := st.Istiod()
	if second.PID() == first.PID() || second.Exited() {
		t.Fatalf("after StartIstiod: pid %d (exited %v), want a new running process (old pid %d)", second.PID(), second.Exited(), first.PID())
	}
	if st.IstiodXDSAddr != xds || st.IstiodDebugURL != debug {
		t.Errorf("addresses moved: %s %s, want %s %s", st.IstiodXDSAddr, st.IstiodDebugURL, xds, debug)
	}
	if conn, err := net.DialTimeout("tcp", xds, time.Second); err != nil {
		t.Errorf("xDS port %s after StartIstiod: %v", xds, err)
	} else {
		conn.Close()
	}
	if code, body := get(t, debug+"/debug/syncz"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /debug/syncz after the restart: %d %q, want 200 []", code, body)
	}
	testLoopbackOnly(t, []int{second.PID()})
	// Its config comes from the API server again, not from memory.
	waitIstiodConfig(t, st, "VirtualService/default/ratings", "DestinationRule/default/ratings")

	if err := st.StartIstiod(t.Context()); err != nil {
		t.Errorf("StartIstiod while it runs: %v", err)
	}
	if st.Istiod() != second {
		t.Errorf("StartIstiod while it runs started another istiod (pid %d)", st.Istiod().PID())
	}
}

// waitIstiodConfig waits until /debug/configz lists every one of want
// (Kind/namespace/name).
func waitIstiodConfig(t *testing.T, st *stack.Stack, want ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		code, body := get(t, st.IstiodDebugURL+"/debug/configz")
		if code != http.StatusOK {
			return fmt.Errorf("GET /debug/configz: %d %s", code, body)
		}
		var configs []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(body), &configs); err != nil {
			return fmt.Errorf("GET /debug/configz: %w", err)
		}
		var have []string
		for _, c := range configs {
			have = append(have, c.Kind+"/"+c.Metadata.Namespace+"/"+c.Metadata.Name)
		}
		for _, w := range want {
			if !slices.Contains(have, w) {
				return fmt.Errorf("/debug/configz has %v, lacks %s", have, w)
			}
		}
		return nil
	})
}

// waitFor polls check every 50ms until it returns nil, failing the test with
// its last error after timeout.
func waitFor(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	t.Fatalf("after %v: %v", timeout, err)
}

// get GETs u and returns the status code and body; a transport error fails
// the test.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp.StatusCode, string(b)
}
