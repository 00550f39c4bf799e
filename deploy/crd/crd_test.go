package crd_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

// The CRD's rules are checked by the real API server of the local stack,
// which enforces them for kubectl and for the REST API alike (the REST API
// answers its Invalid errors with 422).
var st *stack.Stack

func TestMain(m *testing.M) { os.Exit(stack.Main(m, stack.Options{}, &st)) }

func kube(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(st.RESTConfig(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A runbook that is not an http(s) URL is refused, naming the field, and
// nothing is stored; a good one is kept as it is.
func TestRunbookMustBeAnHTTPURL(t *testing.T) {
	c := kube(t)
	ns := fmt.Sprintf("crd%d", time.Now().UnixNano())
	if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	rollout := func(name, runbook string) *v1alpha1.Rollout {
		return &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2",
				Notifications: &v1alpha1.Notifications{Runbook: runbook}}}
	}
	for i, bad := range []string{
		"javascript:alert(1)",
		"wiki.example.com/checkout",
		"ftp://wiki.example.com/checkout",
		"https://wiki.example.com/a b",
		`https://wiki.example.com/"><script>`,
		"https://",
		"https://?q=no-host", // past the pattern, refused by the CEL rule
		"https://wiki.example.com/" + strings.Repeat("a", 2048),
	} {
		ro := rollout(fmt.Sprintf("bad-%d", i), bad)
		err := c.Create(t.Context(), ro)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.notifications.runbook") {
			t.Errorf("runbook %.60q: create = %v, want Invalid naming spec.notifications.runbook", bad, err)
		}
		if err := c.Get(t.Context(), client.ObjectKeyFromObject(ro), &v1alpha1.Rollout{}); !apierrors.IsNotFound(err) {
			t.Errorf("runbook %.60q: get after the refusal = %v, want NotFound: nothing written", bad, err)
		}
	}
	good := rollout("good", "https://wiki.example.com/checkout/canary?team=shop#rollback")
	if err := c.Create(t.Context(), good); err != nil {
		t.Fatalf("a good runbook was refused: %v", err)
	}
	var got v1alpha1.Rollout
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(good), &got); err != nil || got.Spec.Notifications.Runbook != good.Spec.Notifications.Runbook {
		t.Fatalf("stored runbook %+v (%v), want it as given", got.Spec.Notifications, err)
	}
}
