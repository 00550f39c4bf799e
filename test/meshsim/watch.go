package meshsim

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	versioned "istio.io/client-go/pkg/clientset/versioned"
	informers "istio.io/client-go/pkg/informers/externalversions"
	networkinglisters "istio.io/client-go/pkg/listers/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/connrotation"
)

// syncTimeout bounds the initial list of VirtualServices and
// DestinationRules when the caller's context has no deadline.
const syncTimeout = 30 * time.Second

// watcher keeps a router's table in step with the VirtualServices and
// DestinationRules of one namespace. It rebuilds the table on every watch
// event, so a change applies to the next request after the event, with no
// polling.
type watcher struct {
	factory informers.SharedInformerFactory
	stop    chan struct{}
	vs      networkinglisters.VirtualServiceLister
	dr      networkinglisters.DestinationRuleLister
	router  *router
	log     *slog.Logger
	mu      sync.Mutex // serializes rebuilds so the last one sees the latest state
	dialer  *connrotation.Dialer
}

// startWatcher lists and then watches networking.istio.io/v1 VirtualServices
// and DestinationRules in ns. It returns once the informers have synced and
// the first table is in place.
func startWatcher(ctx context.Context, cfg *rest.Config, ns string, r *router, log *slog.Logger) (*watcher, error) {
	// A dialer of our own keeps the connections out of client-go's shared
	// transport cache, so that close can end them.
	cfg = rest.CopyConfig(cfg)
	dialer := connrotation.NewDialer((&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	cfg.Dial = dialer.DialContext
	cs, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("istio clientset: %w", err)
	}
	// One plain list first gives a clear error (no CRD, no access) instead
	// of an informer that retries forever.
	if _, err := cs.NetworkingV1().VirtualServices(ns).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		dialer.CloseAll()
		return nil, fmt.Errorf("list VirtualServices in namespace %s (are the Istio CRDs installed?): %w", ns, err)
	}
	if _, err := cs.NetworkingV1().DestinationRules(ns).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		dialer.CloseAll()
		return nil, fmt.Errorf("list DestinationRules in namespace %s: %w", ns, err)
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	vsInf := f.Networking().V1().VirtualServices()
	drInf := f.Networking().V1().DestinationRules()
	w := &watcher{factory: f, stop: make(chan struct{}), vs: vsInf.Lister(), dr: drInf.Lister(), router: r, log: log,
		dialer: dialer}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.rebuild() },
		UpdateFunc: func(any, any) { w.rebuild() },
		DeleteFunc: func(any) { w.rebuild() },
	}
	for _, inf := range []cache.SharedIndexInformer{vsInf.Informer(), drInf.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			dialer.CloseAll()
			return nil, fmt.Errorf("add event handler: %w", err)
		}
	}
	f.Start(w.stop)
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), vsInf.Informer().HasSynced, drInf.Informer().HasSynced) {
		w.close()
		return nil, fmt.Errorf("sync VirtualServices and DestinationRules in namespace %s: %w", ns, context.Cause(syncCtx))
	}
	w.rebuild()
	return w, nil
}

// rebuild converts what the listers hold into a new table and swaps it in.
func (w *watcher) rebuild() {
	w.mu.Lock()
	defer w.mu.Unlock()
	vss, err := w.vs.List(labels.Everything())
	if err != nil {
		w.log.Error("list VirtualServices from cache", "err", err)
		return
	}
	drs, err := w.dr.List(labels.Everything())
	if err != nil {
		w.log.Error("list DestinationRules from cache", "err", err)
		return
	}
	t, errs := buildTable(vss, drs)
	for _, err := range errs {
		w.log.Warn("ignoring VirtualService, as Istio would reject it", "err", err)
	}
	w.router.table.Store(t)
	w.log.Debug("routing table rebuilt", "virtualServices", len(t.vss), "destinationRuleHosts", len(t.subsets))
}

// close stops the informers, waits for their goroutines and closes the
// connections to the API server.
func (w *watcher) close() {
	close(w.stop)
	w.factory.Shutdown()
	w.dialer.CloseAll()
}
