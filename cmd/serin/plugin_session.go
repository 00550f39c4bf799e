package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// syncLimit bounds how long the plugin waits for its first list of
// Rollouts.
const syncLimit = 30 * time.Second

// session is serin's REST API run inside the plugin's process on the
// user's kubeconfig credentials: its read model is fed by an informer of
// the user's, its writes go through a client of the user's, and every
// action is authorized by the API server (a SelfSubjectAccessReview
// first, then RBAC on the write itself). The plugin's commands are then
// the REST CLI's, over an in-memory connection: the API's views, rules and
// messages are the same code, in one place (GUIDE rule 14), and no
// endpoint or token is needed.
type session struct {
	client *apiClient
	stop   func()
}

// sessionOptions say what a session reads and where it reports.
type sessionOptions struct {
	// Config is the user's, from the kubeconfig flags.
	Config *rest.Config
	// Namespace is the one namespace the read model holds; "" holds all.
	Namespace string
	// Log receives the causes of the API's internal errors.
	Log io.Writer
}

// openSession asks the API server who the user is, lists and watches the
// Rollouts of the namespace, and starts the API over them. It fails with
// the API server's own error (a 403 names the verb and resource) when the
// user may not list or watch Rollouts there.
func openSession(ctx context.Context, o sessionOptions) (_ *session, err error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	kube, err := client.New(o.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	user := whoAmI(ctx, kube)
	store, err := feedReadModel(ctx, o, scheme)
	if err != nil {
		return nil, err
	}
	log := errorLog(o.Log)
	writer := api.KubeWriter{Client: kube}
	h, err := api.New(api.Options{
		Store: store, Writer: writer, Workloads: writer,
		Authenticator: kubeconfigUser{user: user}, Authorizer: selfReviews{kube: kube}, Log: log,
	})
	if err != nil {
		return nil, err
	}
	l := newPipeListener()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	base, _ := url.Parse("http://kubectl-serin") // the name is never resolved: DialContext ignores it
	c := &apiClient{base: base, token: "kubeconfig", http: &http.Client{Transport: &http.Transport{DialContext: l.DialContext}}}
	return &session{client: c, stop: func() {
		_ = srv.Close()
		cancel()
	}}, nil
}

// errorLog logs errors only to w: the causes of the API's internal errors,
// not its audit lines.
func errorLog(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelError}))
}

// Close stops the API and the informer.
func (s *session) Close() { s.stop() }

// whoAmI is the user that the API server sees, from a SelfSubjectReview,
// so that the actions record who asked (serin.dev/promote-by and the
// like). A server that cannot say (one older than Kubernetes 1.28, or one
// that refuses the review) leaves the name empty: the action still runs
// with the user's own credentials.
func whoAmI(ctx context.Context, kube client.Client) api.User {
	r := &authnv1.SelfSubjectReview{}
	if err := kube.Create(ctx, r); err != nil {
		return api.User{}
	}
	u := r.Status.UserInfo
	extra := map[string][]string{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	return api.User{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}
}

// feedReadModel starts an informer on the Rollouts of o.Namespace (all
// namespaces when empty) and returns the read model once the first list
// has arrived, or the first error of that list.
func feedReadModel(ctx context.Context, o sessionOptions, scheme *runtime.Scheme) (*readmodel.Store, error) {
	var once sync.Once
	listErr := make(chan error, 1)
	copts := cache.Options{Scheme: scheme,
		// Replaces client-go's handler, which logs and retries forever: a
		// refused list is the command's answer.
		DefaultWatchErrorHandler: func(_ context.Context, _ *toolscache.Reflector, err error) {
			once.Do(func() { listErr <- err })
		}}
	if o.Namespace != "" {
		copts.DefaultNamespaces = map[string]cache.Config{o.Namespace: {}}
	}
	informers, err := cache.New(o.Config, copts)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	store, err := readmodel.New()
	if err != nil {
		return nil, err
	}
	if err := store.Feed(ctx, informers, nil); err != nil {
		return nil, err
	}
	go func() { _ = informers.Start(ctx) }()
	where := "in every namespace"
	if o.Namespace != "" {
		where = fmt.Sprintf("in namespace %q", o.Namespace)
	}
	deadline := time.After(syncLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !store.Synced() {
		select {
		case err := <-listErr:
			return nil, fmt.Errorf("list and watch rollouts %s: %w", where, err)
		case <-deadline:
			return nil, fmt.Errorf("list rollouts %s: no answer within %v", where, syncLimit)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	return store, nil
}

// kubeconfigUser is the API's Authenticator in the plugin: every request
// comes from this process over an in-memory connection, on behalf of the
// kubeconfig's user, so the token proves nothing and is not checked.
type kubeconfigUser struct{ user api.User }

// Authenticate implements api.Authenticator.
func (k kubeconfigUser) Authenticate(context.Context, string) (api.User, error) { return k.user, nil }

// selfReviews is the API's Authorizer in the plugin: the API server
// decides, by a SelfSubjectAccessReview of the kubeconfig's user, each
// action the API checks (get rollouts, patch rollouts, patch the
// delivered Deployment). The writes themselves then carry the same
// credentials, so RBAC applies to them too.
type selfReviews struct{ kube client.Client }

// Authorize implements api.Authorizer. u is the kubeconfig's user, whom
// the review asks about anyway.
func (s selfReviews) Authorize(ctx context.Context, _ api.User, a api.Action) (bool, error) {
	// An Action without Group and Resource is on rollouts.serin.dev.
	attrs := &authzv1.ResourceAttributes{Namespace: a.Namespace, Name: a.Name, Verb: a.Verb, Group: a.Group, Resource: a.Resource}
	if a.Resource == "" {
		attrs.Group, attrs.Version, attrs.Resource = v1alpha1.GroupVersion.Group, v1alpha1.GroupVersion.Version, "rollouts"
	}
	r := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}}
	if err := s.kube.Create(ctx, r); err != nil {
		return false, fmt.Errorf("SelfSubjectAccessReview of %s %s in %q: %w", a.Verb, a.ResourceName(), a.Namespace, err)
	}
	return r.Status.Allowed && !r.Status.Denied, nil
}

// pipeListener is a net.Listener whose connections are in-memory pipes
// dialed by DialContext, so that the in-process API is reachable from this
// process only: no port is opened.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// DialContext connects to the listener, whatever the address.
func (l *pipeListener) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		err := errors.New("the in-process API has stopped")
		c.Close()
		s.Close()
		return nil, err
	case <-ctx.Done():
		c.Close()
		s.Close()
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "kubectl-serin" }
