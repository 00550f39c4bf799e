package istioexporter

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	versioned "istio.io/client-go/pkg/clientset/versioned"
	informers "istio.io/client-go/pkg/informers/externalversions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/connrotation"
)

// syncTimeout bounds the initial list of VirtualServices.
const syncTimeout = 60 * time.Second

// byHost indexes VirtualServices by the FQDNs of their hosts.
const byHost = "host"

// canaryWeight returns the canary weight, in percent, that the
// VirtualServices vss (those whose hosts include host) give host's
// subsets: the split between the v1 and v2 destinations on host of the
// first HTTP route that has any, in the oldest VirtualService that has
// one, as a sidecar routes a request without headers. ok is false when no
// route sends to a subset of host. Weights are relative, as Envoy's are;
// a lone destination without a weight gets all of its route's traffic.
func canaryWeight(vss []*networkingv1.VirtualService, host string) (weight int32, ok bool) {
	vss = slices.Clone(vss)
	slices.SortFunc(vss, func(a, b *networkingv1.VirtualService) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, vs := range vss {
		for _, r := range vs.Spec.GetHttp() {
			var w [2]int32
			n := 0
			for _, d := range r.GetRoute() {
				dst := d.GetDestination()
				if dst == nil || expand(dst.GetHost(), vs.Namespace) != host {
					continue
				}
				switch dst.GetSubset() {
				case StableVersion:
					w[0] += d.GetWeight()
				case CanaryVersion:
					w[1] += d.GetWeight()
				default:
					continue
				}
				n++
			}
			switch {
			case n == 0:
				continue
			case w[0]+w[1] > 0:
				return int32(int64(w[1]) * 100 / int64(w[0]+w[1])), true
			case n == 1 && w == [2]int32{}:
				// One destination, no weight: it takes the route's traffic.
				for _, d := range r.GetRoute() {
					if dst := d.GetDestination(); dst != nil && expand(dst.GetHost(), vs.Namespace) == host && dst.GetSubset() == CanaryVersion {
						return 100, true
					}
				}
				return 0, true
			}
		}
	}
	return 0, false
}

// expand turns a host as written in a VirtualService of namespace ns into
// an FQDN, as Istio does: a name without a dot is a Service of ns.
func expand(host, ns string) string {
	if host == "" || strings.Contains(host, ".") || strings.Contains(host, "*") {
		return host
	}
	return fqdn(host, ns)
}

// hostIndex is the byHost index function: the expanded hosts of a
// VirtualService.
func hostIndex(obj any) ([]string, error) {
	vs, ok := obj.(*networkingv1.VirtualService)
	if !ok {
		return nil, nil
	}
	out := make([]string, 0, len(vs.Spec.GetHosts()))
	for _, h := range vs.Spec.GetHosts() {
		out = append(out, expand(h, vs.Namespace))
	}
	return out, nil
}

// watcher keeps every service's canary weight in step with the
// VirtualServices of the namespace.
type watcher struct {
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	stop     chan struct{}
	dialer   *connrotation.Dialer
	byHost   map[string]*service
	log      *slog.Logger
}

// startWatcher lists and then watches the VirtualServices of ns, and
// returns once the informer has synced and every service's weight is set.
func startWatcher(ctx context.Context, cfg *rest.Config, ns string, services []*service, log *slog.Logger) (*watcher, error) {
	// A dialer of its own keeps the connections out of client-go's shared
	// transport cache, so that close ends them.
	cfg = rest.CopyConfig(cfg)
	dialer := connrotation.NewDialer((&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	cfg.Dial = dialer.DialContext
	cs, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("istio clientset: %w", err)
	}
	// A plain list first gives a clear error (no CRD, no access) instead
	// of an informer that retries forever.
	if _, err := cs.NetworkingV1().VirtualServices(ns).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		dialer.CloseAll()
		return nil, fmt.Errorf("list VirtualServices in namespace %s (are the Istio CRDs installed?): %w", ns, err)
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := f.Networking().V1().VirtualServices().Informer()
	w := &watcher{factory: f, informer: inf, stop: make(chan struct{}), dialer: dialer,
		byHost: make(map[string]*service, len(services)), log: log}
	for _, s := range services {
		w.byHost[s.host] = s
	}
	if err := inf.AddIndexers(cache.Indexers{byHost: hostIndex}); err != nil {
		dialer.CloseAll()
		return nil, fmt.Errorf("index VirtualServices by host: %w", err)
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.changed(obj) },
		UpdateFunc: func(old, obj any) { w.changed(old); w.changed(obj) },
		DeleteFunc: func(obj any) { w.changed(obj) },
	}
	if _, err := inf.AddEventHandler(h); err != nil {
		dialer.CloseAll()
		return nil, fmt.Errorf("add event handler: %w", err)
	}
	f.Start(w.stop)
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		w.close()
		return nil, fmt.Errorf("sync VirtualServices in namespace %s: %w", ns, context.Cause(syncCtx))
	}
	for _, s := range services {
		w.refresh(s)
	}
	return w, nil
}

// changed refreshes the weight of every service that obj, a VirtualService
// or a deletion tombstone, names among its hosts.
func (w *watcher) changed(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	hosts, _ := hostIndex(obj)
	for _, h := range hosts {
		if s, ok := w.byHost[h]; ok {
			w.refresh(s)
		}
	}
}

// refresh sets s's canary weight from the VirtualServices of its host.
func (w *watcher) refresh(s *service) {
	objs, err := w.informer.GetIndexer().ByIndex(byHost, s.host)
	if err != nil {
		w.log.Error("VirtualServices by host from the cache", "host", s.host, "err", err)
		return
	}
	vss := make([]*networkingv1.VirtualService, 0, len(objs))
	for _, o := range objs {
		if vs, ok := o.(*networkingv1.VirtualService); ok {
			vss = append(vss, vs)
		}
	}
	weight, ok := canaryWeight(vss, s.host)
	if !ok {
		weight = -1
	}
	s.canary.Store(weight)
}

// close stops the informer, waits for its goroutines and closes the
// connections to the API server.
func (w *watcher) close() {
	close(w.stop)
	w.factory.Shutdown()
	w.dialer.CloseAll()
}
