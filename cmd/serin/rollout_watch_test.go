package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// watchRun is a watch running in the background.
type watchRun struct {
	stdout, stderr *lockedBuffer
	done           chan int
}

func startWatch(t *testing.T, c cli, ns, name string, extra ...string) *watchRun {
	t.Helper()
	w := &watchRun{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan int, 1)}
	args := append([]string{"watch", "-n", ns, name}, extra...)
	go func() { w.done <- rolloutMain(t.Context(), args, c.io(w.stdout, w.stderr)) }()
	return w
}

// waitFor waits until the watch has printed want.
func (w *watchRun) waitFor(t *testing.T, want string) {
	t.Helper()
	eventually(t, fmt.Sprintf("watch to print %q (stdout %q)", want, w.stdout.String()), func() bool {
		return strings.Contains(w.stdout.String(), want)
	})
}

// exit waits for the watch to end and returns its exit code.
func (w *watchRun) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-w.done:
		return code
	case <-time.After(15 * time.Second):
		t.Fatalf("watch did not end; stdout %q, stderr %q", w.stdout.String(), w.stderr.String())
		return -1
	}
}

// progress sets the rollout to step i of the default ladder.
func progress(i int32, weight int32) func(*v1alpha1.RolloutStatus) {
	return func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.CurrentStep, s.CanaryWeight = v1alpha1.PhaseProgressing, i, weight
		s.Analysis.LastVerdict, s.Analysis.LastReason = "Pass", "error-rate 0.1% within 1%"
	}
}

// testWatch drives one rollout through progress to end, with c watching.
func testWatch(t *testing.T, e *cliEnv, c cli, end v1alpha1.Phase, message string) *watchRun {
	t.Helper()
	ns := e.namespace(t)
	e.mustStart(t, ns, "w", "vs")
	w := startWatch(t, c, ns, "w")
	w.waitFor(t, "step 0/4  Pending")
	e.setStatus(t, ns, "w", progress(1, 25))
	w.waitFor(t, "[#####---------------]  25%  step 2/4 (25%)  Progressing")
	w.waitFor(t, "analysis: Pass: error-rate 0.1% within 1%")
	e.setStatus(t, ns, "w", func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.Message = end, message
		if end == v1alpha1.PhaseSucceeded {
			s.CurrentStep, s.CanaryWeight = 3, 100
		} else {
			s.CanaryWeight = 0
			s.Analysis.LastVerdict, s.Analysis.LastReason = "Fail", "error-rate 7% over 1%"
		}
	})
	return w
}

func TestRolloutWatchPollingFallback(t *testing.T) {
	e := getCLIEnv(t)
	old := httptest.NewServer(withoutEvents(e)) // an API server without the events endpoint
	defer old.Close()
	c := cli{server: old.URL, token: operatorToken}
	t.Run("Succeeded", func(t *testing.T) {
		w := testWatch(t, e, c, v1alpha1.PhaseSucceeded, "promoted to 100%")
		if code := w.exit(t); code != exitOK {
			t.Errorf("exit %d, want 0; stderr %q", code, w.stderr.String())
		}
		if !strings.Contains(w.stdout.String(), "[####################] 100%  step 4/4 (100%)  Succeeded") ||
			!strings.Contains(w.stdout.String(), "Succeeded\n") {
			t.Errorf("stdout %q lacks the final state", w.stdout.String())
		}
		if !strings.Contains(w.stderr.String(), "no events endpoint; polling every") {
			t.Errorf("stderr %q does not say that it polls", w.stderr.String())
		}
	})
	t.Run("RolledBack", func(t *testing.T) {
		w := testWatch(t, e, c, v1alpha1.PhaseRolledBack, "error-rate of the canary 7% over 1% for 2 ticks")
		if code := w.exit(t); code != exitNotSucceded {
			t.Errorf("exit %d, want 3", code)
		}
		if want := "RolledBack: error-rate of the canary 7% over 1% for 2 ticks"; !strings.Contains(w.stderr.String(), want) {
			t.Errorf("stderr %q lacks %q", w.stderr.String(), want)
		}
		if strings.Count(w.stdout.String(), "step 2/4 (25%)  Progressing") != 1 {
			t.Errorf("not a TTY: each state should be printed once, line by line:\n%s", w.stdout.String())
		}
	})
}

// withoutEvents serves the real API as a server without the events
// endpoint would: 404 for GET .../events, so that watch falls back to
// polling.
func withoutEvents(e *cliEnv) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"no such endpoint"}`)
			return
		}
		e.handler.ServeHTTP(w, r)
	})
}

func TestRolloutWatchSSE(t *testing.T) {
	e := getCLIEnv(t)
	c := e.operator() // the real API, with its real events endpoint

	t.Run("Succeeded", func(t *testing.T) {
		w := testWatch(t, e, c, v1alpha1.PhaseSucceeded, "promoted")
		if code := w.exit(t); code != exitOK {
			t.Errorf("exit %d, want 0; stderr %q", code, w.stderr.String())
		}
		if strings.Contains(w.stderr.String(), "polling") {
			t.Errorf("watch polled although the events endpoint exists: %q", w.stderr.String())
		}
	})
	t.Run("Aborted on a TTY", func(t *testing.T) {
		tty := c
		tty.tty = true
		w := testWatch(t, e, tty, v1alpha1.PhaseAborted, "aborted by olga: p99 looks wrong")
		if code := w.exit(t); code != exitNotSucceded {
			t.Errorf("exit %d, want 3", code)
		}
		if !strings.Contains(w.stdout.String(), "\x1b[") {
			t.Errorf("on a TTY watch should redraw in place: %q", w.stdout.String())
		}
		if !strings.Contains(w.stderr.String(), "Aborted: aborted by olga: p99 looks wrong") {
			t.Errorf("stderr %q lacks the reason", w.stderr.String())
		}
	})
	t.Run("deleted", func(t *testing.T) {
		ns := e.namespace(t)
		e.mustStart(t, ns, "gone", "vs")
		w := startWatch(t, c, ns, "gone", "-o", "json")
		w.waitFor(t, `"name":"gone"`)
		r := e.get(t, ns, "gone")
		if err := e.kube.Delete(t.Context(), &r); err != nil {
			t.Fatal(err)
		}
		if code := w.exit(t); code != exitNotSucceded || !strings.Contains(w.stderr.String(), "was deleted") {
			t.Errorf("exit %d, stderr %q; want 3 and 'was deleted'", code, w.stderr.String())
		}
	})
}

func TestReadEvents(t *testing.T) {
	stream := ": ping\n\nevent: rollout\ndata: {\"a\":\ndata: 1}\n\nid: 7\nevent: other\ndata: x\n\nevent: deleted\ndata: {}\n\nevent: rollout\ndata: never\n\n"
	var got []string
	err := readEvents(strings.NewReader(stream), func(event string, data []byte) (bool, error) {
		got = append(got, event+"="+string(data))
		return event == "deleted", nil
	})
	want := []string{"=", "rollout={\"a\":\n1}", "other=x", "deleted={}"}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events %q (%v), want %q", got, err, want)
	}
}
