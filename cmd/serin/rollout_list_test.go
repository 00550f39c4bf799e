package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
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

// TestRolloutListFollowsPages: with more rollouts than the API's largest
// page, list prints every one exactly once, active ones first, from the
// summaries.
func TestRolloutListFollowsPages(t *testing.T) {
	store, err := readmodel.New()
	if err != nil {
		t.Fatal(err)
	}
	const n = api.MaxListLimit*2 + 100
	for i := range n {
		phase := v1alpha1.PhaseProgressing
		if i%3 == 0 {
			phase = v1alpha1.PhaseSucceeded
		}
		if err := store.Upsert(&v1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("team-%d", i%7), Name: fmt.Sprintf("svc-%04d", i), CreationTimestamp: metav1.Now()},
			Spec:       v1alpha1.RolloutSpec{VirtualService: "vs", StableSubset: "v1", CanarySubset: "v2"},
			Status:     v1alpha1.RolloutStatus{Phase: phase, CurrentStep: 1, CanaryWeight: 25},
		}); err != nil {
			t.Fatal(err)
		}
	}
	markSynced(t, store)
	tokens, _ := api.ParseStaticTokens(strings.NewReader(viewerToken + ",victor,viewer\n"))
	h, err := api.New(api.Options{Store: store, Writer: api.KubeWriter{}, Authenticator: tokens, Authorizer: tokens})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	res := cli{server: srv.URL, token: viewerToken}.run(t, "list")
	if res.code != 0 {
		t.Fatalf("list: exit %d, stderr %q", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")[1:]
	if len(lines) != n {
		t.Fatalf("list printed %d rows, want %d", len(lines), n)
	}
	seen := map[string]bool{}
	done := false
	for _, l := range lines {
		f := strings.Fields(l)
		if seen[f[0]+"/"+f[1]] {
			t.Errorf("%s/%s printed twice", f[0], f[1])
		}
		seen[f[0]+"/"+f[1]] = true
		if f[2] == "Succeeded" {
			done = true
		} else if done {
			t.Fatalf("active %s/%s after a finished rollout", f[0], f[1])
		}
		if f[2] == "Progressing" && f[3] != "2/4" {
			t.Errorf("row %q, want step 2/4", l)
		}
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

func markSynced(t *testing.T, store *readmodel.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := store.Feed(ctx, syncedInformers{}, nil); err != nil {
		t.Fatal(err)
	}
	for !store.Synced() {
		time.Sleep(time.Millisecond)
	}
}
