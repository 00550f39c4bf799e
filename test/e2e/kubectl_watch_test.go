package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

// watchLines runs `kubectl get rollouts -w` with args in the env's
// namespace until stop is called, and returns the lines it printed.
func (e *env) watchLines(args ...string) (stop func() []string) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	kubectl := filepath.Join(stack.BinDir(), "kubectl")
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", st.Kubeconfig, "get", "rollouts", "-n", e.ns, "-w"}, args...)...)
	out, err := cmd.StdoutPipe()
	must(e.t, err)
	must(e.t, cmd.Start())
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	return func() []string {
		cancel()
		_ = cmd.Wait()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

// TestKubectlWatchPrintsEachChangeOnce: `kubectl get rollouts -w` on the
// real API server prints one line per change over a rollout: no line
// repeats the one before it in what it shows, so no
// status is written that a person would not see change; and while the
// rollout is paused, analysed every second, it prints nothing at all.
func TestKubectlWatchPrintsEachChangeOnce(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	// kubectl's default columns (the age aside: it is the watch's clock),
	// and the generation, so that the test's own spec writes (pause,
	// resume) show as the changes they are.
	stop := e.watchLines("-o", "custom-columns=NAME:.metadata.name,PHASE:.status.phase,STEP:.status.step,WEIGHT:.status.canaryWeight,"+
		"REASON:.status.summary,GENERATION:.metadata.generation")
	e.rollout("watched", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(3 * time.Second) })
	e.eventually(20*time.Second, "10% on the route", func() (bool, string) {
		ro := e.get("watched")
		return ro.Status.WeightConfirmedAt != nil && ro.Status.Analysis.LastVerdict != "", ro.Status.Summary
	})
	ro := e.get("watched")
	ro.Spec.Paused = true
	must(t, e.c.Update(e.ctx, ro))
	e.waitPhase("watched", v1alpha1.PhasePaused, 10*time.Second)
	time.Sleep(time.Second)
	held := e.watchLines("--watch-only")
	time.Sleep(12 * time.Second) // twelve ticks of analysis
	if lines := held(); len(lines) > 0 {
		t.Errorf("the paused rollout printed %d lines in 12 s:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	ro = e.get("watched")
	ro.Spec.Paused = false
	must(t, e.c.Update(e.ctx, ro))
	e.waitPhase("watched", v1alpha1.PhaseSucceeded, 60*time.Second)
	time.Sleep(2 * time.Second) // the last writes (the weight applied) reach the watch

	lines := stop()
	var shown [][]string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] == "NAME" {
			continue
		}
		shown = append(shown, f)
	}
	t.Logf("kubectl get rollouts -w:\n%s", strings.Join(lines, "\n"))
	if len(shown) < 5 {
		t.Fatalf("%d lines for a rollout of four steps", len(shown))
	}
	for i := 1; i < len(shown); i++ {
		if slices.Equal(shown[i], shown[i-1]) {
			t.Errorf("line %d repeats the line before it: %q", i+1, strings.Join(shown[i], " "))
		}
	}
	for _, want := range []string{"1/4", "2/4", "3/4", "4/4", "Paused"} {
		if !slices.ContainsFunc(shown, func(f []string) bool { return slices.Contains(f, want) }) {
			t.Errorf("no line shows %s", want)
		}
	}
	if last := shown[len(shown)-1]; !slices.Contains(last, "Succeeded") {
		t.Errorf("the last line is %q, want Succeeded", strings.Join(last, " "))
	}
}

// TestAPIShowsTheTicksThatAreNotWritten: while nothing a person reads
// changes, the controller writes no status, and its API (the console's
// source) still shows every tick, from memory: lastTickAt moves on at
// the stored resourceVersion, and the series gets their points.
func TestAPIShowsTheTicksThatAreNotWritten(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	must(t, os.WriteFile(tokens, []byte(consoleViewerToken+",vic,viewer\n"), 0o600))
	e.extraArgs = []string{"--auth", "static", "--api-token-file", tokens}
	p := e.startController()
	e.rollout("steady", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(time.Hour) })
	e.eventually(20*time.Second, "10% on the route, analysed", func() (bool, string) {
		ro := e.get("steady")
		return ro.Status.WeightConfirmedAt != nil && ro.Status.Analysis.LastVerdict == "Pass", ro.Status.Summary
	})
	time.Sleep(time.Second)
	stored := e.get("steady")
	base := "http://" + p.addr + "/api/v1/rollouts/" + e.ns + "/steady"
	var ticks []time.Time
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		code, body := apiCall(t, http.MethodGet, base, consoleViewerToken, nil)
		if code != http.StatusOK {
			t.Fatalf("GET the rollout: %d %s", code, body)
		}
		var v struct {
			ResourceVersion string                 `json:"resourceVersion"`
			Status          v1alpha1.RolloutStatus `json:"status"`
		}
		must(t, json.Unmarshal([]byte(body), &v))
		if v.ResourceVersion != stored.ResourceVersion {
			t.Fatalf("the API shows resourceVersion %s, stored %s: a status was written", v.ResourceVersion, stored.ResourceVersion)
		}
		if at := v.Status.Analysis.LastTickAt; at != nil && (len(ticks) == 0 || at.After(ticks[len(ticks)-1])) {
			ticks = append(ticks, at.Time)
		}
	}
	if got := e.get("steady"); got.ResourceVersion != stored.ResourceVersion {
		t.Errorf("the steady rollout was written: resourceVersion %s -> %s", stored.ResourceVersion, got.ResourceVersion)
	}
	if len(ticks) < 4 {
		t.Errorf("the API showed %d ticks in 6 s of 1 s ticks: %v", len(ticks), ticks)
	}
	if n := len(ticks); n == 0 || !ticks[n-1].After(stored.Status.Analysis.LastTickAt.Time) {
		t.Errorf("the API's ticks %v are no newer than the stored one %v", ticks, stored.Status.Analysis.LastTickAt)
	}
	code, body := apiCall(t, http.MethodGet, base+"/series", consoleViewerToken, nil)
	var series struct {
		Points []struct {
			Time time.Time `json:"time"`
		} `json:"points"`
	}
	must(t, json.Unmarshal([]byte(body), &series))
	if code != http.StatusOK || len(series.Points) < len(ticks) {
		t.Errorf("the series has %d points (%d), want at least the %d ticks shown", len(series.Points), code, len(ticks))
	}
}
