package meshsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/connrotation"
)

// ErrNoProxy means a workload has no sidecar connected to istiod: the
// simulator is not in xDS mode, or the workload has no Pod to be.
var ErrNoProxy = errors.New("no xDS proxy")

// proxyTick is how often the proxy set looks for a warmed-up replacement
// proxy to switch to; Pod events wake it at once.
const proxyTick = 200 * time.Millisecond

// proxySet runs one simulated sidecar per workload that has a Pod: the
// static workloads' stand-in Pods (stack.CreateWorkloads) and the kubelet
// stand-in's Pods of Deployments. It watches the Pods of the namespace to
// give each proxy a real Pod's name and IP, so that istiod associates it
// with that Pod, and to map the endpoint IPs istiod sends back to workloads.
type proxySet struct {
	ns      string
	cat     *catalog
	conn    *grpc.ClientConn
	log     *slog.Logger
	pushes  func(workload, typ, result string)
	factory informers.SharedInformerFactory
	pods    corelisters.PodLister
	dialer  *connrotation.Dialer
	stop    chan struct{}
	wake    chan struct{}
	done    sync.WaitGroup

	byIP atomic.Pointer[map[string]string] // Pod IP → workload key, every IP seen

	mu     sync.Mutex
	slots  map[string]*proxySlot // by workload name
	frozen map[string]bool
}

// proxySlot is a workload's sidecar. When its Pod goes, a replacement for
// another Pod warms up in next while cur keeps routing, as a new pod's
// sidecar is ready before the old pod stops.
type proxySlot struct {
	cur, next *proxy
}

// startProxies dials istiod at addr (plaintext), watches the Pods of ns and
// starts a proxy for each workload with one. It returns once the Pods have
// synced; waitReady waits for the proxies' first configuration.
func startProxies(ctx context.Context, cfg *rest.Config, addr string, cat *catalog, log *slog.Logger,
	pushes func(workload, typ, result string)) (*proxySet, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// istiod may be stopped and started again on the same address: come
		// back within a second or two, not gRPC's default two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 2 * time.Second,
			Backoff: backoff.Config{BaseDelay: xdsBackoffMin, Multiplier: 2, Jitter: 0.2, MaxDelay: xdsBackoffMax}}))
	if err != nil {
		return nil, fmt.Errorf("dial istiod at %s: %w", addr, err)
	}
	cfg = rest.CopyConfig(cfg)
	dialer := connrotation.NewDialer((&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	cfg.Dial = dialer.DialContext
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("kubernetes clientset: %w", err)
	}
	ps := &proxySet{ns: cat.namespace, cat: cat, conn: conn, log: log, pushes: pushes, dialer: dialer,
		stop: make(chan struct{}), wake: make(chan struct{}, 1), slots: map[string]*proxySlot{}, frozen: map[string]bool{}}
	ps.byIP.Store(&map[string]string{})
	ps.factory = informers.NewSharedInformerFactoryWithOptions(kc, 0, informers.WithNamespace(cat.namespace))
	podInf := ps.factory.Core().V1().Pods()
	ps.pods = podInf.Lister()
	poke := func() {
		select {
		case ps.wake <- struct{}{}:
		default:
		}
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() },
	}); err != nil {
		ps.closeClients()
		return nil, fmt.Errorf("add Pod event handler: %w", err)
	}
	ps.factory.Start(ps.stop)
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), podInf.Informer().HasSynced) {
		ps.close()
		return nil, fmt.Errorf("sync Pods in namespace %s: %w", cat.namespace, context.Cause(syncCtx))
	}
	ps.reconcile()
	ps.done.Go(ps.run)
	return ps, nil
}

// run reconciles on every Pod event and every tick until close.
func (ps *proxySet) run() {
	t := time.NewTicker(proxyTick)
	defer t.Stop()
	for {
		select {
		case <-ps.stop:
			return
		case <-ps.wake:
		case <-t.C:
		}
		ps.reconcile()
	}
}

// reconcile indexes the Pod IPs and brings the proxies in line with the
// Pods: a new workload gets a proxy, a workload whose proxy's Pod went gets
// a replacement (switched to once it has its configuration), a workload
// with no Pod left loses its proxy.
func (ps *proxySet) reconcile() {
	pods, err := ps.pods.List(labels.Everything())
	if err != nil {
		ps.log.Error("list Pods from cache", "err", err)
		return
	}
	ps.index(pods)
	want := map[string]proxyIdentity{}
	for _, p := range sortedPods(pods) {
		name, _, ok := podWorkload(p, ps.cat)
		if !ok || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		if _, seen := want[name]; !seen || ps.isCurrentPod(name, p.Name) {
			want[name] = identityOf(p, name)
		}
	}
	var closing []*proxy
	ps.mu.Lock()
	for name, id := range want {
		closing = append(closing, ps.step(name, id)...)
	}
	for name, slot := range ps.slots {
		if _, ok := want[name]; !ok {
			closing = append(closing, slot.cur, slot.next)
			delete(ps.slots, name)
		}
	}
	ps.mu.Unlock()
	for _, p := range closing {
		if p != nil {
			p.close()
		}
	}
}

// step moves one workload's slot towards a proxy for id and returns the
// proxies to close. Called with mu held.
func (ps *proxySet) step(name string, id proxyIdentity) []*proxy {
	slot := ps.slots[name]
	switch {
	case slot == nil:
		ps.slots[name] = &proxySlot{cur: ps.start(id)}
	case slot.cur.id.pod == id.pod:
		if n := slot.next; n != nil {
			slot.next = nil
			return []*proxy{n}
		}
	case slot.next != nil && slot.next.id.pod == id.pod:
		if isClosed(slot.next.ready) {
			old := slot.cur
			slot.cur, slot.next = slot.next, nil
			ps.log.Info("sidecar replaced: its Pod went", "workload", name, "old", old.id.pod, "new", id.pod)
			return []*proxy{old}
		}
	default:
		old := slot.next
		slot.next = ps.start(id)
		return []*proxy{old}
	}
	return nil
}

// start starts a proxy for id, frozen if its workload is.
func (ps *proxySet) start(id proxyIdentity) *proxy {
	return startProxy(ps.conn, id, ps.log, func(typ, result string) { ps.pushes(id.workload, typ, result) }, ps.frozen[id.workload])
}

// isCurrentPod reports whether pod is the one name's proxy (or its
// replacement) speaks for, so that a proxy keeps its Pod while it exists.
func (ps *proxySet) isCurrentPod(name, pod string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	slot := ps.slots[name]
	return slot != nil && (slot.cur.id.pod == pod || (slot.next != nil && slot.next.id.pod == pod))
}

// index adds the IPs of pods to the IP → workload key index. IPs are never
// forgotten, so that an endpoint istiod still lists for a Pod just deleted
// maps to the workload that served it, as a terminating pod still answers.
func (ps *proxySet) index(pods []*corev1.Pod) {
	old := *ps.byIP.Load()
	var next map[string]string
	for _, p := range pods {
		_, key, ok := podWorkload(p, ps.cat)
		if !ok || p.Status.PodIP == "" || old[p.Status.PodIP] == key {
			continue
		}
		if next == nil {
			next = make(map[string]string, len(old)+1)
			for k, v := range old {
				next[k] = v
			}
		}
		next[p.Status.PodIP] = key
	}
	if next != nil {
		ps.byIP.Store(&next)
	}
}

// workloadKey returns the workload key (see workload.key) of the Pod with
// ip, or "".
func (ps *proxySet) workloadKey(ip string) string { return (*ps.byIP.Load())[ip] }

// config returns the configuration name's sidecar routes by: its
// replacement's once that is ready, else its current one's. nil means the
// workload has no proxy, or one without configuration yet.
func (ps *proxySet) config(name string) (*xdsConfig, string) {
	ps.mu.Lock()
	slot := ps.slots[name]
	ps.mu.Unlock()
	if slot == nil {
		return nil, ""
	}
	p := slot.cur
	if n := slot.next; n != nil && isClosed(n.ready) {
		p = n
	}
	if !isClosed(p.ready) {
		return nil, p.id.nodeID()
	}
	return p.cfg.Load(), p.id.nodeID()
}

// waitReady waits until every proxy has its first routes and endpoints.
func (ps *proxySet) waitReady(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	ps.mu.Lock()
	var all []*proxy
	for _, s := range ps.slots {
		all = append(all, s.cur)
	}
	ps.mu.Unlock()
	for _, p := range all {
		select {
		case <-p.ready:
		case <-ctx.Done():
			st := p.snapshot()
			return fmt.Errorf("sidecar %s of workload %s got no routes and endpoints from istiod at %s (connected %v, last error %q): %w",
				st.ID, st.Workload, addr, st.Connected, st.LastError, context.Cause(ctx))
		}
	}
	return nil
}

// statuses returns every proxy's status (a replacement's too), by
// workload.
func (ps *proxySet) statuses() []ProxyStatus {
	ps.mu.Lock()
	var all []*proxy
	for _, s := range ps.slots {
		all = append(all, s.cur)
		if s.next != nil {
			all = append(all, s.next)
		}
	}
	ps.mu.Unlock()
	out := make([]ProxyStatus, 0, len(all))
	for _, p := range all {
		out = append(out, p.snapshot())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Workload != out[j].Workload {
			return out[i].Workload < out[j].Workload
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// setFrozen freezes or thaws name's sidecar, and its replacements to come.
func (ps *proxySet) setFrozen(name string, frozen bool) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	slot := ps.slots[name]
	if slot == nil {
		return fmt.Errorf("%w for workload %s in namespace %s: it has no Pod with an IP", ErrNoProxy, name, ps.ns)
	}
	ps.frozen[name] = frozen
	slot.cur.setFrozen(frozen)
	if slot.next != nil {
		slot.next.setFrozen(frozen)
	}
	return nil
}

// close stops every proxy, the Pod watch and the connections.
func (ps *proxySet) close() {
	close(ps.stop)
	ps.done.Wait()
	ps.mu.Lock()
	slots := ps.slots
	ps.slots = map[string]*proxySlot{}
	ps.mu.Unlock()
	for _, s := range slots {
		s.cur.close()
		if s.next != nil {
			s.next.close()
		}
	}
	ps.closeClients()
}

// closeClients stops the informers and closes the gRPC and API server
// connections.
func (ps *proxySet) closeClients() {
	if ps.factory != nil {
		ps.factory.Shutdown()
	}
	ps.dialer.CloseAll()
	_ = ps.conn.Close()
}

// podWorkload returns the workload name and key of Pod p: a Deployment's
// (its controller) for the kubelet stand-in's Pods, app-version for the
// static catalog's stand-in Pods. ok is false for any other Pod.
func podWorkload(p *corev1.Pod, cat *catalog) (name, key string, ok bool) {
	for _, o := range p.OwnerReferences {
		if o.Kind == "Deployment" && o.Controller != nil && *o.Controller {
			return o.Name, o.Name + "/" + p.Labels[labelPodTemplateHash], true
		}
	}
	n := p.Labels["app"] + "-" + p.Labels["version"]
	if _, ok := cat.workloads[n]; ok {
		return n, n, true
	}
	return "", "", false
}

// identityOf is the sidecar identity of Pod p of workload name.
func identityOf(p *corev1.Pod, name string) proxyIdentity {
	id := proxyIdentity{workload: name, namespace: p.Namespace, pod: p.Name, ip: p.Status.PodIP,
		labels: p.Labels, serviceAccount: p.Spec.ServiceAccountName}
	if id.serviceAccount == "" {
		id.serviceAccount = "default"
	}
	for _, o := range p.OwnerReferences {
		if o.Kind == "Deployment" {
			id.owner = "kubernetes://apis/apps/v1/namespaces/" + p.Namespace + "/deployments/" + o.Name
		}
	}
	for _, c := range p.Spec.Containers {
		if c.Name == "istio-proxy" {
			continue
		}
		for _, cp := range c.Ports {
			id.ports = append(id.ports, podPort{Name: cp.Name, ContainerPort: cp.ContainerPort, Protocol: string(cp.Protocol)})
		}
	}
	return id
}

// sortedPods returns pods by name, so that the Pod a proxy speaks for is
// the same on every pass.
func sortedPods(pods []*corev1.Pod) []*corev1.Pod {
	out := append([]*corev1.Pod(nil), pods...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// isClosed reports whether ch is closed.
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
