package main

import (
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// TestManagerCacheStripsManagedFields runs the manager's cache options on
// the real API server: a cached Rollout has no managedFields, while the
// API server's copy keeps them, also after an update made from the cached
// object.
func TestManagerCacheStripsManagedFields(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	opts := managerCache(ns, "istio-system")
	opts.Scheme = scheme
	c, err := cache.New(st.RESTConfig(), opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(t.Context()) }()
	if !c.WaitForCacheSync(t.Context()) {
		t.Fatal("the cache did not sync")
	}

	e.mustStart(t, ns, "a", "vs-a")
	key := client.ObjectKey{Namespace: ns, Name: "a"}
	var cached v1alpha1.Rollout
	deadline := time.Now().Add(10 * time.Second)
	for c.Get(t.Context(), key, &cached) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the cache never held the rollout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if stored := e.get(t, ns, "a"); len(stored.ManagedFields) == 0 {
		t.Fatal("the API server's Rollout has no managedFields: nothing to strip, the test proves nothing")
	}
	if len(cached.ManagedFields) != 0 {
		t.Errorf("the cached Rollout has %d managedFields entries, want none", len(cached.ManagedFields))
	}

	cached.Labels = map[string]string{"team": "shop"}
	if err := e.kube.Update(t.Context(), &cached); err != nil {
		t.Fatal(err)
	}
	if stored := e.get(t, ns, "a"); len(stored.ManagedFields) == 0 || stored.Labels["team"] != "shop" {
		t.Errorf("after an update from the cached object: labels %v, %d managedFields entries; want the label and the entries kept",
			stored.Labels, len(stored.ManagedFields))
	}
}
