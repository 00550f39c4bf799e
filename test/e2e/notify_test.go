package e2e

// The Notifications issue, end to end: the real controller binary with
// --notify-config, real rollouts on the local stack, and receivers that are
// real HTTP servers on 127.0.0.1. Every webhook URL carries a secret path
// token, read from a file, and every test ends by checking that neither
// it nor an HMAC key shows up in the controller's log or the API's output.

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/notify"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

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
	if !strings.Contains(text, "Canary weight was 10% (step 1/4)") {
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
