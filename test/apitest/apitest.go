// Package apitest builds what tests of the REST API and the console share:
// a client of the real API server and a read model fed by a real informer.
// It is for tests only.
package apitest

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// ReadModel returns a client of the API server at cfg and a read model fed
// by an informer on Rollouts (in namespaces, or all of them), synced. The
// informer runs until ctx ends.
func ReadModel(ctx context.Context, cfg *rest.Config, namespaces ...string) (client.Client, *readmodel.Store, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	kube, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	copts := cache.Options{Scheme: scheme}
	if len(namespaces) > 0 {
		copts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			copts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	informers, err := cache.New(cfg, copts)
	if err != nil {
		return nil, nil, fmt.Errorf("cache: %w", err)
	}
	store, err := readmodel.New()
	if err != nil {
		return nil, nil, err
	}
	if err := store.Feed(ctx, informers, nil); err != nil {
		return nil, nil, err
	}
	go func() { _ = informers.Start(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !store.Synced() {
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("read model did not sync within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return kube, store, nil
}
