package e2e

// The Notifications issue, end to end: the real controller binary with
// --notify-config, real rollouts on the local stack, and receivers that are
// real HTTP servers on 127.0.0.1. Every webhook URL carries a secret path
// token, read from a file, and every test ends by checking that neither
// it nor an HMAC key shows up in the controller's log or the API's output.

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	istioapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/notify"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
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
// several rollouts run side by side in one namespace.
func (e *env) addRoute(name string, subsets ...string) {
	e.t.Helper()
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

// TestNotifySlackEveryEvent: four rollouts side by side in one namespace,
// on four routes: one succeeds, one is paused and resumed through
// spec.paused, one is aborted by alice, one fails its preflight. The Slack
// receiver gets a Block Kit message with a text fallback for each event,
// at its secret URL, in order per rollout and none twice.
func TestNotifySlackEveryEvent(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)                      // checkout: the healthy one
	e.addRoute("cart", "v1", "v2")   // paused and resumed
	e.addRoute("search", "v1", "v2") // aborted
	e.addRoute("ledger", "v1")       // no v2 subset: the preflight fails
	rc := newHookReceiver(t, nil)
	withNotify(e, notifyChannel{name: "team-slack", typ: notify.TypeSlack, events: allEvents, rc: rc})
	p := e.startController()

	steps := func(vs string, step time.Duration) func(*v1alpha1.Rollout) {
		return func(r *v1alpha1.Rollout) {
			r.Spec.VirtualService, r.Spec.Steps, r.Spec.StepInterval = vs, []int32{10, 50, 100}, dur(step)
		}
	}
	e.rollout("healthy", steps("checkout", time.Second))
	e.rollout("pausy", steps("cart", time.Hour))
	e.rollout("aborty", steps("search", time.Hour))
	e.rollout("broken", steps("ledger", time.Second))
	ro := func(name string) string { return e.ns + "/" + name }

	e.waitNotes(rc, 30*time.Second, "pausy and aborty to start", func(ns []slackNote) bool {
		return len(kindsOf(ns, ro("pausy"))) >= 1 && len(kindsOf(ns, ro("aborty"))) >= 1
	})
	e.patchRollout("pausy", func(r *v1alpha1.Rollout) { r.Spec.Paused = true })
	e.waitPhase("pausy", v1alpha1.PhasePaused, 10*time.Second)
	e.patchRollout("pausy", func(r *v1alpha1.Rollout) { r.Spec.Paused = false })
	e.patchRollout("aborty", func(r *v1alpha1.Rollout) {
		r.Annotations = map[string]string{v1alpha1.AnnotationAbort: "bad smell", v1alpha1.AnnotationAbortBy: "alice"}
	})
	e.waitPhase("healthy", v1alpha1.PhaseSucceeded, 30*time.Second)
	e.waitPhase("aborty", v1alpha1.PhaseAborted, 10*time.Second)
	e.waitPhase("broken", v1alpha1.PhaseFailed, 10*time.Second)

	want := map[string][]rollout.EventKind{
		"healthy": {rollout.EventStarted, rollout.EventStepAdvanced, rollout.EventSucceeded},
		"pausy":   {rollout.EventStarted, rollout.EventPaused, rollout.EventResumed},
		"aborty":  {rollout.EventStarted, rollout.EventAborted},
		"broken":  {rollout.EventFailed},
	}
	e.waitNotes(rc, 30*time.Second, "every event at the receiver", func(ns []slackNote) bool {
		for name, kinds := range want {
			if len(kindsOf(ns, ro(name))) < len(kinds) {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // anything sent twice would arrive by now
	notes := slackNotes(t, rc.got())
	for name, kinds := range want {
		if got := kindsOf(notes, ro(name)); !slices.Equal(got, kinds) {
			t.Errorf("%s: the receiver got %v, want %v in this order, each once", name, got, kinds)
		}
	}
	for _, n := range notes {
		checkEventNote(t, rc, n)
	}
	assertNoSecrets(t, e, p, []string{"healthy", "pausy", "aborty", "broken"}, map[string]string{"the Slack URL's token": rc.secret})
}

// TestNotifyRollbackMessage: 20% errors on checkout v2 at 10%. The Slack
// message of the rollback names the failed checks with canary, stable and
// limit, the hop, the weight, how long detection and rollback took, and
// links to the console and, for a check from traces, to the trace; its
// values are those of the Rollout's status.
func TestNotifyRollbackMessage(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	rc := newHookReceiver(t, nil)
	withNotify(e.env, notifyChannel{name: "team-slack", typ: notify.TypeSlack, rc: rc})
	p := e.startController()
	e.rollout("errors", analysed(30*time.Second, nil))
	e.breakAfterPass("errors")
	notes := e.waitNotes(rc, 90*time.Second, "the RolledBack message", func(ns []slackNote) bool {
		return slices.Contains(kindsOf(ns, e.ns+"/errors"), rollout.EventRolledBack)
	})
	n := notes[slices.IndexFunc(notes, func(n slackNote) bool { return n.kind == rollout.EventRolledBack })]
	t.Logf("the rollback message's text fallback:\n%s", n.msg.Text)
	ro := e.get("errors")
	if ro.Status.Phase != v1alpha1.PhaseRolledBack {
		t.Fatalf("the rollback was notified, but the Rollout is %s", ro.Status.Phase)
	}
	if s, c := weights(e.vs(), "primary"); s != 100 || c != 0 {
		t.Errorf("the rollback was notified with the route at %d/%d, want 100/0 first", s, c)
	}
	text := n.msg.Text

	// The failed checks, with the values the status recorded.
	var failed []v1alpha1.CheckStatus
	for _, c := range ro.Status.Analysis.Checks {
		if c.Verdict == "Fail" && !c.DryRun {
			failed = append(failed, c)
		}
	}
	if len(failed) == 0 {
		t.Fatalf("the status records no failed check: %s", jsonOf(t, ro.Status.Analysis))
	}
	if !slices.ContainsFunc(failed, func(c v1alpha1.CheckStatus) bool { return c.Check == "error-rate" }) {
		t.Errorf("error-rate is not among the failed checks %s", jsonOf(t, failed))
	}
	checkFailedChecks(t, n, failed)
	if !strings.Contains(text, "Canary weight was 10% (step 0)") {
		t.Errorf("the message does not give the weight at the time of the failure")
	}

	checkTimings(t, n, ro)

	// The links: the console page, in the fallback and as a link block.
	link := notifyConsoleURL + "/rollouts/" + e.ns + "/errors"
	if !strings.Contains(text, "Open in console: "+link) || !strings.Contains(n.blocksText(), "<"+link+"|Open in console>") {
		t.Errorf("the message does not link to %s", link)
	}
	assertNoSecrets(t, e.env, p, []string{"errors"}, map[string]string{"the Slack URL's token": rc.secret})
}

// TestNotifyRetries: on the rollback, a signed webhook answers 500 once and
// a Slack endpoint 429 with Retry-After: 2 once. Each gets the message once
// more, and only once; the webhook's signature verifies on both tries, and
// the Slack retry waits the 2 s asked for.
func TestNotifyRetries(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	rolledBack := func(status int, header http.Header) func(int, http.ResponseWriter, *http.Request) int {
		return func(n int, w http.ResponseWriter, r *http.Request) int {
			if n > 1 {
				return http.StatusOK
			}
			for k, v := range header {
				w.Header()[k] = v
			}
			return answer(w, r, status)
		}
	}
	audit := newHookReceiver(t, rolledBack(http.StatusInternalServerError, nil))
	pager := newHookReceiver(t, rolledBack(http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}}))
	key := fmt.Sprintf("hmac-key-%016x", rand.Uint64())
	withNotify(e.env,
		notifyChannel{name: "audit", typ: notify.TypeWebhook, events: []rollout.EventKind{rollout.EventRolledBack}, rc: audit, key: key},
		notifyChannel{name: "pager", typ: notify.TypeSlack, events: []rollout.EventKind{rollout.EventRolledBack}, rc: pager})
	p := e.startController()
	e.rollout("flaky", analysed(30*time.Second, nil))
	e.breakAfterPass("flaky")
	e.waitPhase("flaky", v1alpha1.PhaseRolledBack, 90*time.Second)
	for _, rc := range []*hookReceiver{audit, pager} {
		e.eventually(30*time.Second, "a retried delivery", func() (bool, string) {
			h := rc.got()
			return len(h) >= 2, fmt.Sprintf("%d deliveries", len(h))
		})
	}
	time.Sleep(3 * time.Second) // longer than any backoff the queue would take before a third try

	hs := checkSignedRetry(t, e.env, audit, key, "flaky")

	// Slack: 429 with Retry-After: 2, then 200, at least 2 s later.
	ps := pager.got()
	if len(ps) != 2 || ps[0].status != http.StatusTooManyRequests || ps[1].status != http.StatusOK {
		t.Fatalf("Slack got %d deliveries answered %v, want exactly 2: 429 then 200", len(ps), statusesOf(ps))
	}
	notes := slackNotes(t, ps)
	if notes[0].kind != rollout.EventRolledBack || notes[1].msg.Text != notes[0].msg.Text {
		t.Errorf("the Slack retry is not the same rollback message:\n%s\n---\n%s", notes[0].msg.Text, notes[1].msg.Text)
	}
	gap := ps[1].at.Sub(ps[0].at)
	t.Logf("retried %v after the 500 and %v after the 429 with Retry-After: 2", hs[1].at.Sub(hs[0].at).Round(time.Millisecond), gap.Round(time.Millisecond))
	if gap < 2*time.Second {
		t.Errorf("Slack was retried %v after its 429 with Retry-After: 2", gap)
	}

	// The failures were logged, with the receivers' bodies that quote the
	// secret paths, and the secrets are not in the log.
	if b, _ := os.ReadFile(p.log); !strings.Contains(string(b), "notification failed; will retry") {
		t.Errorf("the controller did not log the failed delivery it retried")
	}
	assertNoSecrets(t, e.env, p, []string{"flaky"}, map[string]string{
		"the webhook URL's token": audit.secret, "the Slack URL's token": pager.secret, "the HMAC key": key,
	})
}

// checkEventNote checks what every Slack message of an event says, and
// what each kind adds.
func checkEventNote(t *testing.T, rc *hookReceiver, n slackNote) {
	t.Helper()
	if n.path != rc.path() {
		t.Errorf("%q arrived at %q, not at the URL read from the file", n.title, n.path)
	}
	if ct := n.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%q has Content-Type %q", n.title, ct)
	}
	if !strings.HasPrefix(n.msg.Text, n.title) {
		t.Errorf("the text fallback %q does not start with the title %q", n.msg.Text, n.title)
	}
	if f := n.fields(); f["Rollout"] != n.rollout || !strings.HasSuffix(f["Weight"], "%") {
		t.Errorf("%q: fields %v do not name the rollout and its weight", n.title, f)
	}
	if link := notifyConsoleURL + "/rollouts/" + n.rollout; !strings.Contains(n.msg.Text, link) {
		t.Errorf("%q does not link to %s", n.title, link)
	}
	switch n.kind {
	case rollout.EventStepAdvanced:
		if !strings.Contains(n.title, "to 50%") {
			t.Errorf("the step message %q does not say the new weight", n.title)
		}
	case rollout.EventPaused:
		if !strings.Contains(n.msg.Text, "Reason: paused by request") {
			t.Errorf("the pause message does not give the reason:\n%s", n.msg.Text)
		}
	case rollout.EventAborted:
		if !strings.Contains(n.msg.Text, "Aborted by alice") || !strings.Contains(n.msg.Text, "bad smell") {
			t.Errorf("the abort message does not say who aborted and why:\n%s", n.msg.Text)
		}
	case rollout.EventFailed:
		if !strings.Contains(n.msg.Text, "Preflight: ") || !strings.Contains(n.msg.Text, `"v2"`) {
			t.Errorf("the failure message does not name the missing subset:\n%s", n.msg.Text)
		}
	}
}

// checkFailedChecks checks that the rollback message n says each failed
// check with the status's values, links to each check's trace in Jaeger,
// and shows the first one as fields.
func checkFailedChecks(t *testing.T, n slackNote, failed []v1alpha1.CheckStatus) {
	t.Helper()
	text, f := n.msg.Text, n.fields()
	traced := 0
	for _, c := range failed {
		line := fmt.Sprintf("Failed: %s on %s: canary %s vs stable %s (limit %s)",
			c.Check, hopLabel(c.Hop), unitValue(c.Canary, c.Unit), stableLabel(c), unitValue(c.Limit, c.Unit))
		if !strings.Contains(text, line) {
			t.Errorf("the message does not say %q", line)
		}
		if c.Unit != "%" && c.Check == "error-rate" {
			t.Errorf("the error-rate check from %s has unit %q, want %%", c.Source, c.Unit)
		}
		if c.TraceID != "" {
			traced++
			link := st.JaegerQueryURL + "/trace/" + c.TraceID
			if !strings.Contains(text, link) || !strings.Contains(n.blocksText(), "<"+link+"|") {
				t.Errorf("the failed %s check on %s from %s names trace %s, but the message does not link to it", c.Check, hopLabel(c.Hop), c.Source, c.TraceID)
			}
			if code := httpStatus(t, st.JaegerQueryURL+"/api/traces/"+c.TraceID); code != http.StatusOK {
				t.Errorf("the linked trace %s is not in Jaeger: %d", c.TraceID, code)
			}
		}
	}
	t.Logf("%d failed checks, %d from traces with a trace link", len(failed), traced)
	first := failed[0]
	for label, want := range map[string]string{
		"Check": first.Check, "Hop": hopLabel(first.Hop), "Weight": "10%",
		"Canary": unitValue(first.Canary, first.Unit), "Stable": stableLabel(first), "Limit": unitValue(first.Limit, first.Unit),
	} {
		if f[label] != want {
			t.Errorf("field %s is %q, want %q", label, f[label], want)
		}
	}
}

// checkTimings checks the rollback message's "detected within" against the
// status's ticks (the first failed one minus the last passing one before
// it), and that "rolled back in" is a plausible duration.
func checkTimings(t *testing.T, n slackNote, ro *v1alpha1.Rollout) {
	t.Helper()
	text, f := n.msg.Text, n.fields()
	detected, rolled := durationAfter(t, text, "detected within "), durationAfter(t, text, "rolled back in ")
	if f["Detected within"] == "" || f["Rolled back in"] == "" {
		t.Errorf("the fields %v lack the timings", f)
	}
	if d, ok := detectionOf(ro); ok && (detected < d-time.Second || detected > d+time.Second) {
		t.Errorf("detected within %v, but the status's ticks say %v", detected, d)
	}
	if rolled <= 0 || rolled > 30*time.Second {
		t.Errorf("rolled back in %v: want a positive duration under the test's deadline", rolled)
	}
}

// checkSignedRetry checks that the webhook receiver got the rollback of
// name twice, answering 500 then 200: the same event, signed with key both
// times, after a backoff. It returns the two deliveries.
func checkSignedRetry(t *testing.T, e *env, audit *hookReceiver, key, name string) []hookHit {
	t.Helper()
	hs := audit.got()
	if len(hs) != 2 || hs[0].status != http.StatusInternalServerError || hs[1].status != http.StatusOK {
		t.Fatalf("the webhook got %d deliveries answered %v, want exactly 2: 500 then 200", len(hs), statusesOf(hs))
	}
	for i, h := range hs {
		if h.path != audit.path() {
			t.Errorf("delivery %d arrived at %q, not at the URL read from the file", i+1, h.path)
		}
		if !notify.Verify([]byte(key), h.body, h.header.Get("X-Serin-Signature")) {
			t.Errorf("delivery %d: the signature %q does not verify with the key", i+1, h.header.Get("X-Serin-Signature"))
		}
		var pl notify.WebhookPayload
		must(t, json.Unmarshal(h.body, &pl))
		if pl.Version != "v1" || pl.Kind != string(rollout.EventRolledBack) || pl.Rollout != (notify.WebhookRollout{Namespace: e.ns, Name: name}) ||
			pl.ID != h.header.Get("X-Serin-Delivery") || strconv.FormatInt(pl.SentAt, 10) != h.header.Get("X-Serin-Timestamp") ||
			h.header.Get("X-Serin-Event") != pl.Kind {
			t.Errorf("delivery %d does not match its headers %v:\n%s", i+1, h.header, h.body)
		}
		if pl.Weight != 10 || len(pl.Checks) == 0 || pl.DetectionSeconds == nil || pl.RollbackSeconds == nil ||
			pl.ConsoleURL != notifyConsoleURL+"/rollouts/"+e.ns+"/"+name {
			t.Errorf("delivery %d lacks the rollback's weight, checks, timings or console link:\n%s", i+1, h.body)
		}
	}
	if id0, id1 := hs[0].header.Get("X-Serin-Delivery"), hs[1].header.Get("X-Serin-Delivery"); id0 != id1 {
		t.Errorf("the retry has delivery id %s, the first try %s: want the same event", id1, id0)
	}
	if gap := hs[1].at.Sub(hs[0].at); gap < 900*time.Millisecond {
		t.Errorf("the webhook was retried %v after its 500: want a backoff of about a second at least", gap)
	}
	return hs
}

// assertNoSecrets checks that no secret appears in the controller's log,
// in the API's output for the rollouts, in the Rollouts themselves or in
// the namespace's Kubernetes Events.
func assertNoSecrets(t *testing.T, e *env, p *controllerProc, rollouts []string, secrets map[string]string) {
	t.Helper()
	logb, err := os.ReadFile(p.log)
	must(t, err)
	if !strings.Contains(string(logb), "notification channels loaded") {
		t.Errorf("the controller's log %s does not show the channels loaded: is it the right log?", p.log)
	}
	outputs := map[string]string{"the controller's log": string(logb)}
	base := "http://" + p.addr + "/api/v1/rollouts"
	urls := []string{base + "?namespace=" + e.ns}
	for _, name := range rollouts {
		urls = append(urls, base+"/"+e.ns+"/"+name)
		outputs["Rollout "+name] = jsonOf(t, e.get(name))
	}
	for _, u := range urls {
		code, body := apiCall(t, http.MethodGet, u, notifyAPIToken, nil)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", u, code, body)
		}
		outputs["GET "+u] = body
	}
	var evs corev1.EventList
	must(t, e.c.List(e.ctx, &evs, client.InNamespace(e.ns)))
	outputs["the namespace's Events"] = jsonOf(t, evs.Items)
	outputs["the controller's /metrics"] = httpGet(t, "http://"+p.addr+"/metrics")
	for what, secret := range secrets {
		for where, out := range outputs {
			if strings.Contains(out, secret) {
				t.Errorf("%s appears in %s", what, where)
			}
		}
	}
}

func statusesOf(hs []hookHit) []int {
	var out []int
	for _, h := range hs {
		out = append(out, h.status)
	}
	return out
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// The message's wording of a check, as rollout/notify documents it.

func hopLabel(hop string) string {
	if hop == "" {
		return "inbound traffic"
	}
	return hop
}

func unitValue(v float64, unit string) string {
	s := strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 3, 64), "0"), ".")
	switch unit {
	case "":
		return s
	case "%":
		return s + "%"
	}
	return s + " " + unit
}

func stableLabel(c v1alpha1.CheckStatus) string {
	if c.Stable == 0 && c.StableRequests == 0 {
		return "n/a (no stable traffic)"
	}
	return unitValue(c.Stable, c.Unit)
}

// durationAfter reads the Go duration that follows label in text.
func durationAfter(t *testing.T, text, label string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(label) + `([0-9hms.µ]+?)[.,]?(\s|$)`).FindStringSubmatch(text)
	if m == nil {
		t.Errorf("the message does not say %q with a duration:\n%s", label, text)
		return 0
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Errorf("%q%s: %v", label, m[1], err)
	}
	return d
}

// detectionOf is the status's first failed tick minus the last passing one
// before it.
func detectionOf(ro *v1alpha1.Rollout) (time.Duration, bool) {
	a := ro.Status.Analysis
	if a.FirstFailureAt == nil {
		return 0, false
	}
	var last time.Time
	for _, h := range a.History {
		if h.Verdict == "Pass" && h.Time.Time.Before(a.FirstFailureAt.Time) {
			last = h.Time.Time
		}
	}
	if last.IsZero() {
		return 0, false
	}
	return a.FirstFailureAt.Sub(last), true
}
