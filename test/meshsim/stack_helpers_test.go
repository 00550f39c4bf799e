package meshsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	apiv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	versioned "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Helpers for the integration tests on the real local stack.

// errNoData means a PromQL query returned no sample (or NaN).
var errNoData = errors.New("no data")

// startMesh creates namespace ns, starts a Sim there that watches the API
// server and exports traces to Jaeger, and has Prometheus scrape it. Cleanup
// closes the Sim and removes the scrape target.
func startMesh(t *testing.T, ns string, rps float64) *Sim {
	t.Helper()
	return startMeshWith(t, Options{Namespace: ns, RPS: rps})
}

// startMeshWith is startMesh with more options; it sets the namespace's
// API server and the trace endpoint.
func startMeshWith(t *testing.T, o Options) *Sim {
	t.Helper()
	ns := o.Namespace
	createNamespace(t, ns)
	o.RESTConfig, o.OTLPEndpoint = st.RESTConfig(), st.OTLPHTTPEndpoint
	if os.Getenv("MESHSIM_TEST_LOG") != "" {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := Start(t.Context(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("meshsim seed %d (Options.Seed replays its draws)", s.Seed())
	job := "meshsim-" + ns
	if err := st.SetScrapeTargets(job, []string{s.MetricsAddr()}); err != nil {
		_ = s.Close()
		t.Fatalf("SetScrapeTargets: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := st.SetScrapeTargets(job, nil); err != nil {
			t.Errorf("remove scrape target: %v", err)
		}
	})
	return s
}

// createNamespace creates ns unless it exists.
func createNamespace(t *testing.T, ns string) {
	t.Helper()
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	_, err = kc.CoreV1().Namespaces().Create(t.Context(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// istio returns an Istio clientset for the stack's API server.
func istio(t *testing.T) versioned.Interface {
	t.Helper()
	cs, err := versioned.NewForConfig(st.RESTConfig())
	if err != nil {
		t.Fatalf("istio clientset: %v", err)
	}
	return cs
}

// createCanaryRouting creates checkout's DestinationRule (subsets v1, v2)
// and VirtualService with the given weights in ns.
func createCanaryRouting(t *testing.T, ns string, v1, v2 int32) {
	t.Helper()
	cs := istio(t)
	d := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns}}
	d.Spec.Host = "checkout"
	for _, v := range []string{"v1", "v2"} {
		d.Spec.Subsets = append(d.Spec.Subsets, &apiv1alpha3.Subset{Name: v, Labels: map[string]string{"version": v}})
	}
	if _, err := cs.NetworkingV1().DestinationRules(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create DestinationRule %s/checkout: %v", ns, err)
	}
	v := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns}}
	v.Spec.Hosts = []string{"checkout"}
	v.Spec.Http = []*apiv1alpha3.HTTPRoute{route(nil, to("checkout", "v1", v1), to("checkout", "v2", v2))}
	if _, err := cs.NetworkingV1().VirtualServices(ns).Create(t.Context(), v, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create VirtualService %s/checkout: %v", ns, err)
	}
}

// updateWeights sets the weights of checkout's VirtualService in ns with an
// Update, as a controller would.
func updateWeights(t *testing.T, ns string, v1, v2 int32) {
	t.Helper()
	// Not t.Context(): this also runs in cleanups, after it is canceled.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs := istio(t)
	v, err := cs.NetworkingV1().VirtualServices(ns).Get(ctx, "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get VirtualService %s/checkout: %v", ns, err)
	}
	v.Spec.Http[0].Route[0].Weight, v.Spec.Http[0].Route[1].Weight = v1, v2
	if _, err := cs.NetworkingV1().VirtualServices(ns).Update(ctx, v, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update VirtualService %s/checkout: %v", ns, err)
	}
}

// promQuery runs an instant PromQL query and returns its single value.
func promQuery(ctx context.Context, q string) (float64, error) {
	u := st.PrometheusURL + "/api/v1/query?query=" + url.QueryEscape(q)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", q, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", q, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("query %s: decode: %w", q, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", q, body.Error)
	}
	if len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("query %s: %d series: %w", q, len(body.Data.Result), errNoData)
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("query %s: value %q: %w", q, s, errNoData)
	}
	return v, nil
}

// eventually calls check until it returns nil or timeout passes, then
// fails with check's last error.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// queryBetween returns a check that q's value lies in [lo, hi].
func queryBetween(ctx context.Context, q string, lo, hi float64, got *float64) func() error {
	return func() error {
		v, err := promQuery(ctx, q)
		if err != nil {
			return err
		}
		*got = v
		if v < lo || v > hi {
			return fmt.Errorf("%s = %g, want [%g, %g]", q, v, lo, hi)
		}
		return nil
	}
}
