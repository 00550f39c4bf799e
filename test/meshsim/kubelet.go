package meshsim

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"reflect"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/connrotation"
)

// DefaultStartDelay is how long a new pod takes to become ready when
// neither Options.StartDelay nor its template's annotation says otherwise.
const DefaultStartDelay = 2 * time.Second

// kubeletTick is how often the stand-in looks for pods to make ready and
// deadlines to pass; watch events wake it at once.
const kubeletTick = 100 * time.Millisecond

// kubelet is a stand-in for the kubelets and the Deployment controller of
// a cluster, neither of which runs on the local stack. It follows the
// apps/v1 Deployments of one namespace whose pod template names a demo app:
// it runs their pods (in memory, served by the simulator), writes the Pod
// objects and the EndpointSlices of the Services that select them, and
// the Deployments' status as the Deployment controller would. Each change
// publishes the Deployment workloads to the router (see topology).
type kubelet struct {
	kc         kubernetes.Interface
	ns         string
	startDelay time.Duration
	log        *slog.Logger
	publish    func([]*workload)
	names      *stream // pod name suffixes
	ipBase     uint32

	factory informers.SharedInformerFactory
	deps    appslisters.DeploymentLister
	pods    corelisters.PodLister
	svcs    corelisters.ServiceLister
	eps     discoverylisters.EndpointSliceLister
	dialer  *connrotation.Dialer
	stop    chan struct{}
	wake    chan struct{}
	done    sync.WaitGroup

	// Owned by the loop goroutine (and start, before it runs).
	models    map[string]*depModel // by Deployment name
	ipNext    uint32
	published []*workload
	// statuses are the Deployment statuses of this pass, written only
	// after its workloads are published: a status never says a pod is
	// ready before the simulated sidecars route to it, as a kubelet marks
	// a pod Ready before the Deployment controller counts it.
	statuses []func()
	deleted  map[string]time.Time // Pods deleted lately, by name
	accounts map[string]bool      // ServiceAccounts known to exist
	// everWritten names every Pod the stand-in wrote or took over, so that
	// it takes them out of EndpointSlices once they are gone.
	everWritten map[string]bool
}

// depModel is the stand-in's state of one Deployment.
type depModel struct {
	uid  types.UID
	pods []*modelPod
	// written is the status last written and the resourceVersion it was
	// written over, so that a cache that has not caught up yet is not
	// written again.
	written   *appsv1.DeploymentStatus
	writtenRV string
	templates map[string]podTemplate // by hash: the current one and those with pods left
	reported  map[string]bool        // problems already logged and evented
}

// kubeletConfig configures startKubelet.
type kubeletConfig struct {
	ns         string
	startDelay time.Duration
	seed       uint64
	log        *slog.Logger
	publish    func([]*workload)
}

// startKubelet lists and then watches the Deployments, Pods and Services of
// c.ns, takes over the Pods of Deployments it finds (so that a restart of
// the simulator keeps ready pods ready), publishes the first topology and
// starts its loop. It returns once the informers have synced.
func startKubelet(ctx context.Context, cfg *rest.Config, c kubeletConfig) (*kubelet, error) {
	cfg = rest.CopyConfig(cfg)
	dialer := connrotation.NewDialer((&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	cfg.Dial = dialer.DialContext
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes clientset: %w", err)
	}
	if _, err := kc.AppsV1().Deployments(c.ns).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		dialer.CloseAll()
		return nil, fmt.Errorf("list Deployments in namespace %s: %w", c.ns, err)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(c.ns))
	k := &kubelet{kc: kc, ns: c.ns, startDelay: c.startDelay, log: c.log, publish: c.publish,
		names: newStream(c.seed, "kubelet/pod-names"), ipBase: h.Sum32(), dialer: dialer,
		stop: make(chan struct{}), wake: make(chan struct{}, 1),
		models: map[string]*depModel{}, deleted: map[string]time.Time{}, accounts: map[string]bool{},
		everWritten: map[string]bool{}}
	k.factory = informers.NewSharedInformerFactoryWithOptions(kc, 0, informers.WithNamespace(c.ns))
	depInf := k.factory.Apps().V1().Deployments()
	podInf := k.factory.Core().V1().Pods()
	svcInf := k.factory.Core().V1().Services()
	sliceInf := k.factory.Discovery().V1().EndpointSlices()
	k.deps, k.pods, k.svcs, k.eps = depInf.Lister(), podInf.Lister(), svcInf.Lister(), sliceInf.Lister()
	wake := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { k.poke() },
		UpdateFunc: func(any, any) { k.poke() },
		DeleteFunc: func(any) { k.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{depInf.Informer(), svcInf.Informer()} {
		if _, err := inf.AddEventHandler(wake); err != nil {
			dialer.CloseAll()
			return nil, fmt.Errorf("add event handler: %w", err)
		}
	}
	k.factory.Start(k.stop)
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), depInf.Informer().HasSynced, podInf.Informer().HasSynced,
		svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced) {
		k.close()
		return nil, fmt.Errorf("sync Deployments, Pods, Services and EndpointSlices in namespace %s: %w", c.ns, context.Cause(syncCtx))
	}
	k.reconcile(ctx, time.Now())
	k.done.Go(k.run)
	return k, nil
}

// poke wakes the loop without blocking.
func (k *kubelet) poke() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// run reconciles on every watch event and every tick until close.
func (k *kubelet) run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-k.stop; cancel() }()
	t := time.NewTicker(kubeletTick)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-k.wake:
		case <-t.C:
		}
		k.reconcile(ctx, time.Now())
	}
}

// close stops the loop and the informers and closes the connections.
func (k *kubelet) close() {
	close(k.stop)
	k.done.Wait()
	k.factory.Shutdown()
	k.dialer.CloseAll()
}

// reconcile brings every Deployment's pods, Pod objects, status and
// EndpointSlices up to now, then publishes the workloads. A failed write
// is logged and retried on the next pass.
func (k *kubelet) reconcile(ctx context.Context, now time.Time) {
	deps, err := k.deps.List(labels.Everything())
	if err != nil {
		k.log.Error("list Deployments from cache", "err", err)
		return
	}
	seen := map[string]bool{}
	var ws []*workload
	for _, d := range deps {
		if !demoApps[d.Spec.Template.Labels["app"]] {
			continue
		}
		seen[d.Name] = true
		ws = append(ws, k.reconcileDeployment(ctx, d, now)...)
	}
	for name, m := range k.models {
		if !seen[name] { // deleted, or no longer a demo app: its pods go, as the garbage collector would
			k.deletePods(ctx, m.pods)
			delete(k.models, name)
		}
	}
	k.collectOrphans(ctx, seen, now)
	k.syncEndpointSlices(ctx)
	sort.Slice(ws, func(i, j int) bool { return ws[i].key() < ws[j].key() })
	if !reflect.DeepEqual(ws, k.published) {
		k.published = ws
		k.publish(ws)
	}
	for _, write := range k.statuses {
		write()
	}
	k.statuses = k.statuses[:0]
}

// reconcileDeployment steps d's pods, writes them and d's status, and
// returns d's workloads: one per template with pods, and the current
// template's even with none, so that a destination selecting it is known
// to have no ready pod.
func (k *kubelet) reconcileDeployment(ctx context.Context, d *appsv1.Deployment, now time.Time) []*workload {
	tmpl := readTemplate(d, k.startDelay)
	m := k.models[d.Name]
	if m == nil || m.uid != d.UID {
		if m != nil { // deleted and made again under the same name
			k.deletePods(ctx, m.pods)
		}
		m = &depModel{uid: d.UID, templates: map[string]podTemplate{}, reported: map[string]bool{}}
		m.pods = k.adopt(d, tmpl, now)
		k.models[d.Name] = m
	}
	m.templates[tmpl.hash] = tmpl
	k.report(ctx, d, m, tmpl)
	keep, gone := stepPods(m.pods, tmpl.hash, replicas(d), now, func() *modelPod { return k.newPod(d, tmpl, now) })
	m.pods = keep
	k.deletePods(ctx, gone)
	for _, p := range m.pods {
		k.writePod(ctx, d, m.templates[p.hash], p, now)
	}
	st := deploymentStatus(d, tmpl.hash, states(m.pods), now)
	k.statuses = append(k.statuses, func() { k.writeStatus(ctx, d, m, st) })

	ready := readyByHash(m.pods, now)
	if _, ok := ready[tmpl.hash]; !ok {
		ready[tmpl.hash] = 0
	}
	var ws []*workload
	for hash, t := range m.templates {
		n, ok := ready[hash]
		if !ok { // no pods left of an old template
			delete(m.templates, hash)
			continue
		}
		ws = append(ws, &workload{app: t.app, version: t.labels["version"], namespace: k.ns, dep: &deployed{
			name: d.Name, hash: hash, labels: t.labels, serviceAccount: t.serviceAccount, behaviour: t.behaviour, ready: n,
		}})
	}
	return ws
}

// report logs each problem of d's template once, and records it as a
// Warning Event on d, as a controller reports a bad object.
func (k *kubelet) report(ctx context.Context, d *appsv1.Deployment, m *depModel, t podTemplate) {
	for _, p := range t.problems {
		if m.reported[p] {
			continue
		}
		m.reported[p] = true
		k.log.Warn("Deployment has a bad meshsim annotation (a stand-in for a Warning Event)",
			"kind", "Deployment", "namespace", d.Namespace, "name", d.Name, "reason", reasonBadAnnotation, "message", p)
		if err := k.writeEvent(ctx, d, p); err != nil {
			k.log.Error("write Event", "deployment", d.Name, "err", err)
		}
	}
}
