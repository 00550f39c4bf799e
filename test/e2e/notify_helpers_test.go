package e2e

// Helpers of the notification tests: webhook receivers on 127.0.0.1 with a
// secret path, the notify config, and decoding of Slack messages.

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	istioapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/notify"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
	"github.com/serin-dev/serin/test/stack"
)

// notifyConsoleURL is the console base URL the messages link to. Nothing
// fetches it: the tests only read it back from the messages.
const notifyConsoleURL = "https://serin-console.example.test"

// notifyAPIToken is a viewer's token for the controller's REST API, used to
// check that its output holds no secret.
const notifyAPIToken = "notify-viewer-token-0123456789"

// allEvents is every event kind a channel can ask for but Warning.
var allEvents = []rollout.EventKind{rollout.EventStarted, rollout.EventStepAdvanced, rollout.EventPaused,
	rollout.EventResumed, rollout.EventSucceeded, rollout.EventRolledBack, rollout.EventAborted, rollout.EventFailed}

// hookHit is one request a receiver got, and what it answered.
type hookHit struct {
	at     time.Time
	path   string
	header http.Header
	body   []byte
	status int
}

// hookReceiver is a webhook endpoint: a real HTTP server on 127.0.0.1
// whose URL carries a secret path token. respond picks the answer to the
// n-th request (from 1); nil answers 200.
type hookReceiver struct {
	srv     *httptest.Server
	secret  string // the path token, e.g. SECRET-1a2b…
	respond func(n int, w http.ResponseWriter, r *http.Request) int
	mu      sync.Mutex
	hits    []hookHit
}

func newHookReceiver(t testing.TB, respond func(n int, w http.ResponseWriter, r *http.Request) int) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{secret: fmt.Sprintf("SECRET-%016x", rand.Uint64()), respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := hookHit{at: time.Now(), path: r.URL.Path, header: r.Header.Clone()}
		h.body, _ = io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.hits) + 1
		rc.hits = append(rc.hits, h)
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.respond != nil {
			status = rc.respond(n, w, r)
		}
		rc.mu.Lock()
		rc.hits[n-1].status = status
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// path is the secret part of the URL.
func (rc *hookReceiver) path() string { return "/hooks/T000/" + rc.secret }

func (rc *hookReceiver) url() string { return rc.srv.URL + rc.path() }

func (rc *hookReceiver) got() []hookHit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.hits)
}

// answer writes status, with a body that quotes the request's path as some
// receivers do, so that the controller's error handling has a secret to
// keep out of its log.
func answer(w http.ResponseWriter, r *http.Request, status int) int {
	w.WriteHeader(status)
	fmt.Fprintf(w, "no luck for %s this time\n", r.URL.Path)
	return status
}

// notifyChannel is one channel of a test's configuration.
type notifyChannel struct {
	name   string
	typ    notify.Type
	events []rollout.EventKind
	rc     *hookReceiver
	key    string // the HMAC key of a webhook channel
}

// withNotify writes the notification configuration (each URL and key in a
// file of its own, as a mounted Secret would be) and a static API token
// file, and has the controller use both.
func withNotify(e *env, chans ...notifyChannel) {
	e.t.Helper()
	dir := e.t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		must(e.t, os.WriteFile(p, []byte(content+"\n"), 0o600))
		return p
	}
	fc := notify.FileConfig{ConsoleURL: notifyConsoleURL, JaegerURL: st.JaegerQueryURL}
	for _, c := range chans {
		ch := notify.FileChannel{Name: c.name, Type: c.typ, Events: c.events,
			URL: &notify.SecretRef{File: write(c.name+"-url", c.rc.url())}}
		if c.key != "" {
			ch.Secret = &notify.SecretRef{File: write(c.name+"-key", c.key)}
		}
		fc.Channels = append(fc.Channels, ch)
	}
	cfg, err := json.Marshal(fc) // JSON is YAML
	must(e.t, err)
	e.extraArgs = append(e.extraArgs, "--notify-config", write("notify.yaml", string(cfg)),
		"--auth", "static", "--api-token-file", write("tokens", notifyAPIToken+",nora,viewer"))
}

// slackMsg is what a Slack incoming webhook reads.
type slackMsg struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type   string       `json:"type"`
		Text   *slackText   `json:"text"`
		Fields []*slackText `json:"fields"`
	} `json:"blocks"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// slackNote is one Slack delivery, decoded.
type slackNote struct {
	hookHit
	msg     slackMsg
	title   string
	kind    rollout.EventKind
	rollout string // namespace/name
}

// slackTitles maps the header's prefix to the event kind.
var slackTitles = []struct {
	prefix string
	kind   rollout.EventKind
}{
	{"Rollout started: ", rollout.EventStarted}, {"Rollout advanced: ", rollout.EventStepAdvanced},
	{"Rollout paused: ", rollout.EventPaused}, {"Rollout resumed: ", rollout.EventResumed},
	{"Rollout succeeded: ", rollout.EventSucceeded}, {"Rolled back: ", rollout.EventRolledBack},
	{"Rollout aborted: ", rollout.EventAborted}, {"Rollout failed: ", rollout.EventFailed},
}

// slackNotes decodes every hit as a Slack message with a header block and
// a text fallback, or fails the test.
func slackNotes(t testing.TB, hits []hookHit) []slackNote {
	t.Helper()
	var out []slackNote
	for i, h := range hits {
		n := slackNote{hookHit: h}
		if err := json.Unmarshal(h.body, &n.msg); err != nil {
			t.Fatalf("delivery %d is not JSON: %v\n%s", i+1, err, h.body)
		}
		m := n.msg
		if m.Text == "" || len(m.Blocks) == 0 || m.Blocks[0].Type != "header" || m.Blocks[0].Text == nil {
			t.Fatalf("delivery %d is not a Slack Block Kit message with a header and a text fallback:\n%s", i+1, h.body)
		}
		n.title = m.Blocks[0].Text.Text
		for _, s := range slackTitles {
			if rest, ok := strings.CutPrefix(n.title, s.prefix); ok {
				n.kind = s.kind
				n.rollout, _, _ = strings.Cut(rest, " ")
				break
			}
		}
		if n.kind == "" {
			t.Fatalf("delivery %d has a title %q of no known event", i+1, n.title)
		}
		out = append(out, n)
	}
	return out
}

// fields returns the Slack section fields as label → value.
func (n slackNote) fields() map[string]string {
	out := map[string]string{}
	for _, b := range n.msg.Blocks {
		for _, f := range b.Fields {
			label, value, _ := strings.Cut(f.Text, "\n")
			out[strings.Trim(label, "*")] = value
		}
	}
	return out
}

// blocksText is every text of the blocks, joined.
func (n slackNote) blocksText() string {
	var s []string
	for _, b := range n.msg.Blocks {
		if b.Text != nil {
			s = append(s, b.Text.Text)
		}
		for _, f := range b.Fields {
			s = append(s, f.Text)
		}
	}
	return strings.Join(s, "\n")
}

// kindsOf returns the kinds the receiver got for one rollout, in order.
func kindsOf(notes []slackNote, ro string) []rollout.EventKind {
	var ks []rollout.EventKind
	for _, n := range notes {
		if n.rollout == ro {
			ks = append(ks, n.kind)
		}
	}
	return ks
}

// waitNotes waits until cond holds on the Slack messages received.
func (e *env) waitNotes(rc *hookReceiver, timeout time.Duration, what string, cond func([]slackNote) bool) []slackNote {
	e.t.Helper()
	var notes []slackNote
	e.eventually(timeout, what, func() (bool, string) {
		notes = slackNotes(e.t, rc.got())
		var titles []string
		for _, n := range notes {
			titles = append(titles, n.title)
		}
		return cond(notes), strings.Join(titles, " | ")
	})
	return notes
}

// addRoute creates a DestinationRule with subsets and a VirtualService,
// both named name, for the host name.<ns>: a route of its own, so that
// several rollouts run side by side in one namespace. The Service name and
// its Pods v1 and v2 are created too, as a cluster would have them.
func (e *env) addRoute(name string, subsets ...string) {
	e.t.Helper()
	must(e.t, st.CreateWorkloads(e.ctx, e.ns, stack.App(name, "v1", "v2")))
	h := fmt.Sprintf("%s.%s.svc.cluster.local", name, e.ns)
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}}
	dr.Spec.Host = h
	for _, s := range subsets {
		dr.Spec.Subsets = append(dr.Spec.Subsets, &istioapi.Subset{Name: s, Labels: map[string]string{"version": s}})
	}
	_, err := e.istio.NetworkingV1().DestinationRules(e.ns).Create(e.ctx, dr, metav1.CreateOptions{})
	must(e.t, err)
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}}
	vs.Spec.Hosts = []string{h}
	vs.Spec.Http = []*istioapi.HTTPRoute{{Name: "primary", Route: []*istioapi.HTTPRouteDestination{
		{Destination: &istioapi.Destination{Host: h, Subset: "v1"}, Weight: 100},
		{Destination: &istioapi.Destination{Host: h, Subset: "v2"}, Weight: 0},
	}}}
	_, err = e.istio.NetworkingV1().VirtualServices(e.ns).Create(e.ctx, vs, metav1.CreateOptions{})
	must(e.t, err)
}

// breakAfterPass waits until the named rollout holds 10% with a passing
// tick, then injects 20% errors on checkout v2: a canary that starts
// failing, as in BenchmarkRollbackLatency, so that the rollback has a last
// good tick to time its detection from.
func (e *meshEnv) breakAfterPass(name string) {
	e.t.Helper()
	e.eventually(90*time.Second, name+" at 10% with a passing tick", func() (bool, string) {
		ro := e.get(name)
		a := ro.Status.Analysis
		return ro.Status.AppliedWeight == 10 && a.LastVerdict == "Pass",
			fmt.Sprintf("%s %d%% (applied %d), %s: %s", ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.AppliedWeight, a.LastVerdict, a.LastReason)
	})
	e.fault("v2", meshsim.Fault{ErrorRate: 0.2})
}

// patchRollout applies f to the named Rollout with a merge patch.
func (e *env) patchRollout(name string, f func(*v1alpha1.Rollout)) {
	e.t.Helper()
	ro := e.get(name)
	patch := client.MergeFrom(ro.DeepCopy())
	f(ro)
	must(e.t, e.c.Patch(e.ctx, ro, patch))
}
