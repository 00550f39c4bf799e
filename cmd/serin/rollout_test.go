package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestRolloutStartWithFlags(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	res := e.operator().run(t, "start", "-n", ns, "checkout-v2", "--virtual-service", "checkout",
		"--stable-subset", "v1", "--canary-subset", "v2", "--route", "primary",
		"--steps", "20,50,100", "--step-interval", "45s", "--paused")
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	if want := "rollout " + ns + "/checkout-v2: Pending"; !strings.Contains(res.stdout, want) {
		t.Errorf("stdout %q, want it to contain %q", res.stdout, want)
	}
	r := e.get(t, ns, "checkout-v2")
	s := r.Spec
	if s.VirtualService != "checkout" || s.Route != "primary" || s.StableSubset != "v1" || s.CanarySubset != "v2" ||
		!s.Paused || s.StepInterval == nil || s.StepInterval.Duration != 45*time.Second || len(s.Steps) != 3 || s.Steps[0] != 20 {
		t.Errorf("stored spec %+v, not what the flags said", s)
	}

	// Host mode, -o json, and flags in any order.
	res = e.operator().run(t, "start", "--stable-host", "a.shop.svc", "payments-v2", "-o", "json", "-n", ns,
		"--canary-host", "b.shop.svc", "--virtual-service", "payments")
	if res.code != 0 {
		t.Fatalf("host mode: exit %d, stderr %q", res.code, res.stderr)
	}
	var out api.Rollout
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || out.Name != "payments-v2" || out.Spec.CanaryHost != "b.shop.svc" {
		t.Errorf("-o json printed %q (%v), want the created rollout", res.stdout, err)
	}
}

func TestRolloutStartFromFile(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	dir := t.TempDir()
	manifest := `apiVersion: serin.dev/v1alpha1
kind: Rollout
metadata:
  name: from-file
  namespace: ` + ns + `
spec:
  virtualService: checkout
  stableSubset: v1
  canarySubset: v2
  steps: [5, 100]
  analysis:
    minRequests: 50
`
	path := filepath.Join(dir, "rollout.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	res := e.operator().run(t, "start", "-f", path)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	r := e.get(t, ns, "from-file")
	if len(r.Spec.Steps) != 2 || r.Spec.Steps[0] != 5 || r.Spec.Analysis == nil || r.Spec.Analysis.MinRequests != 50 {
		t.Errorf("stored spec %+v, want the manifest's", r.Spec)
	}

	// A manifest without a namespace takes -n; stdin works as "-".
	noNS := strings.NewReplacer("  namespace: "+ns+"\n", "", "from-file", "from-stdin", "virtualService: checkout", "virtualService: other").Replace(manifest)
	c := e.operator()
	c.stdin = noNS
	if res := c.run(t, "start", "-f", "-", "-n", ns); res.code != 0 {
		t.Fatalf("-f - -n: exit %d, stderr %q", res.code, res.stderr)
	}
	e.get(t, ns, "from-stdin")
}

func TestRolloutListAndStatus(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	e.mustStart(t, ns, "alpha", "vs-a")
	e.mustStart(t, ns, "bravo-long-name", "vs-b")
	now := metav1.Now()
	e.setStatus(t, ns, "bravo-long-name", func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.CurrentStep, s.CanaryWeight = v1alpha1.PhaseProgressing, 1, 25
		s.Message = "step 2 of 4: 25% canary"
		s.Analysis = v1alpha1.AnalysisStatus{
			LastVerdict: "Pass", LastReason: "all 2 checks pass", LastTickAt: &now,
			Checks: []v1alpha1.CheckStatus{
				{Check: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: 0.5, Stable: 0.25, Limit: 1, Unit: "%", Reason: "within limit"},
				{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Pass", Canary: 120, Stable: 110, Limit: 250, Unit: "ms", Reason: "within limit"},
				{Check: "latency-p99", Hop: "checkout → payments", Source: "prometheus", Verdict: "Fail", Canary: 480, Stable: 110, Limit: 250, Unit: "ms", Reason: "over"},
			},
		}
		s.History = []v1alpha1.Transition{
			{Time: now, From: "Pending", To: "Progressing/0 (10%)", Reason: "Started"},
			{Time: now, From: "Progressing/0 (10%)", To: "Progressing/1 (25%)", Reason: "StepAdvanced", Message: "analysis passed for 30s"},
		}
	})

	res := e.operator().run(t, "list", "-n", ns)
	if res.code != 0 {
		t.Fatalf("list: exit %d, stderr %q", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("list printed %q, want a header and two rows", res.stdout)
	}
	if !regexp.MustCompile(`^NAMESPACE +NAME +PHASE +STEP +WEIGHT +AGE$`).MatchString(lines[0]) {
		t.Errorf("header %q", lines[0])
	}
	if !regexp.MustCompile(`^` + ns + ` +bravo-long-name +Progressing +2/4 +25% +\d+s$`).MatchString(lines[2]) {
		t.Errorf("row %q, want bravo-long-name Progressing 2/4 25%%", lines[2])
	}
	col := strings.Index(lines[0], "PHASE")
	for _, l := range lines[1:] {
		if strings.Index(l, "Pending") != col && strings.Index(l, "Progressing") != col {
			t.Errorf("the PHASE column is not aligned:\n%s", res.stdout)
		}
	}

	res = e.operator().run(t, "list", "-n", ns, "--phase", "Progressing", "-o", "json")
	var l api.RolloutList
	if err := json.Unmarshal([]byte(res.stdout), &l); err != nil || len(l.Items) != 1 || l.Items[0].Name != "bravo-long-name" {
		t.Errorf("list --phase Progressing -o json: %q (%v), want only bravo-long-name", res.stdout, err)
	}

	res = e.operator().run(t, "status", "-n", ns, "bravo-long-name")
	if res.code != 0 {
		t.Fatalf("status: exit %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range []string{
		"Phase:", "Progressing", "step 2/4 (25%)", "10 → [25] → 50 → 100", "25% canary, 75% stable",
		"step 2 of 4: 25% canary", "Pass: all 2 checks pass",
		"CHECK", "HOP", "CANARY", "STABLE", "LIMIT", "VERDICT",
		"error-rate", "inbound", "0.5%", "0.25%", "1%",
		"checkout → payments", "120 ms", "250 ms",
		"StepAdvanced", "analysis passed for 30s",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, res.stdout)
		}
	}
	// One row per check, hop and source, the failure first: the same hop
	// from metrics and from traces says which is which.
	rows := regexp.MustCompile(`(?m)^  (\S+) +(inbound|checkout → payments) +(metrics|traces) +(\S+ ?\S*) .*(Pass|Fail)`).FindAllStringSubmatch(res.stdout, -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[1]+" "+r[2]+" "+r[3]+" "+r[5])
	}
	want := []string{"latency-p99 checkout → payments metrics Fail", "error-rate inbound metrics Pass", "latency-p99 checkout → payments traces Pass"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("check rows %q, want %q:\n%s", got, want, res.stdout)
	}
	if !regexp.MustCompile(`(?m)^  CHECK +HOP +SOURCE +CANARY +STABLE +LIMIT +VERDICT +EVIDENCE$`).MatchString(res.stdout) {
		t.Errorf("no CHECK HOP SOURCE … header:\n%s", res.stdout)
	}
}

// TestRolloutRetry: retry asks the API to run a RolledBack or Aborted
// rollout again, recorded with the caller's name; any other phase is the
// API's 409, said on stderr, and nothing is written.
func TestRolloutRetry(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	e.mustStart(t, ns, "again", "vs")
	c := e.operator()

	before := e.get(t, ns, "again").ResourceVersion
	res := c.run(t, "retry", "-n", ns, "again")
	if res.code != exitError || !strings.Contains(res.stderr, "only a RolledBack or Aborted rollout can be retried") || !strings.Contains(res.stderr, "409") {
		t.Errorf("retry of a pending rollout: exit %d, stderr %q; want 1 and the 409", res.code, res.stderr)
	}
	if got := e.get(t, ns, "again").ResourceVersion; got != before {
		t.Errorf("a refused retry wrote the rollout (resourceVersion %s -> %s)", before, got)
	}

	e.setStatus(t, ns, "again", func(s *v1alpha1.RolloutStatus) { s.Phase, s.CurrentStep = v1alpha1.PhaseRolledBack, 1 })
	res = c.run(t, "retry", "-n", ns, "again")
	if res.code != 0 || !strings.Contains(res.stdout, "RolledBack") || !strings.Contains(res.stdout, "requested: "+v1alpha1.AnnotationRetry+"=true") {
		t.Fatalf("retry: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if a := e.get(t, ns, "again").Annotations; a[v1alpha1.AnnotationRetry] != "true" || a[v1alpha1.AnnotationRetryBy] != "olga" {
		t.Errorf("annotations %v, want the retry by olga", a)
	}
}

func TestRolloutActions(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	e.mustStart(t, ns, "act", "vs")
	c := e.operator()

	if res := c.run(t, "pause", "-n", ns, "act"); res.code != 0 || !strings.Contains(res.stdout, "paused") {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if !e.get(t, ns, "act").Spec.Paused {
		t.Error("pause did not set spec.paused")
	}
	if res := c.run(t, "resume", "-n", ns, "act"); res.code != 0 {
		t.Fatalf("resume: exit %d, stderr %q", res.code, res.stderr)
	}
	if e.get(t, ns, "act").Spec.Paused {
		t.Error("resume did not clear spec.paused")
	}
	if res := c.run(t, "promote", "-n", ns, "act"); res.code != 0 || !strings.Contains(res.stdout, v1alpha1.AnnotationPromote) {
		t.Fatalf("promote: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if got := e.get(t, ns, "act").Annotations[v1alpha1.AnnotationPromoteBy]; got != "olga" {
		t.Errorf("promote-by %q, want olga", got)
	}
	if res := c.run(t, "abort", "-n", ns, "act", "--reason", "p99 looks wrong"); res.code != 0 {
		t.Fatalf("abort: exit %d, stderr %q", res.code, res.stderr)
	}
	if got := e.get(t, ns, "act").Annotations[v1alpha1.AnnotationAbort]; got != "p99 looks wrong" {
		t.Errorf("abort annotation %q, want the reason", got)
	}

	// On a finished rollout the API answers 409, and the CLI says so.
	e.setStatus(t, ns, "act", func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhaseAborted })
	res := c.run(t, "pause", "-n", ns, "act")
	if res.code != exitError || !strings.Contains(res.stderr, "already finished") || !strings.Contains(res.stderr, "409") {
		t.Errorf("pause of an aborted rollout: exit %d, stderr %q; want 1 and the 409", res.code, res.stderr)
	}
}

func TestRolloutAPIErrors(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)

	t.Run("401 bad token", func(t *testing.T) {
		const secret = "not-a-real-token-42"
		c := cli{server: e.srv.URL, token: secret}
		res := c.run(t, "start", "-n", ns, "x", "--virtual-service", "vs", "--stable-subset", "v1", "--canary-subset", "v2")
		if res.code != exitError || !strings.Contains(res.stderr, "the bearer token is not valid (HTTP 401)") {
			t.Errorf("exit %d, stderr %q; want 1 and the server's error", res.code, res.stderr)
		}
		// The token is never printed, also when given as a flag.
		res2 := cli{server: e.srv.URL}.run(t, "list", "--token", secret)
		if res2.code != exitError || strings.Contains(res.stdout+res.stderr+res2.stdout+res2.stderr, secret) {
			t.Errorf("the token leaked or the exit code is wrong: %d %q %q", res2.code, res.stderr, res2.stderr)
		}
		if n := len(e.stored(t, ns)); n != 0 {
			t.Errorf("%d rollouts written with a bad token", n)
		}
	})

	t.Run("403 viewer", func(t *testing.T) {
		res := cli{server: e.srv.URL, token: viewerToken}.run(t, "start", "-n", ns, "x", "--virtual-service", "vs", "--stable-subset", "v1", "--canary-subset", "v2")
		if res.code != exitError || !strings.Contains(res.stderr, "HTTP 403") {
			t.Errorf("exit %d, stderr %q; want 1 and a 403", res.code, res.stderr)
		}
	})

	t.Run("422 details", func(t *testing.T) {
		res := e.operator().run(t, "start", "-n", ns, "same", "--virtual-service", "vs", "--stable-subset", "v1", "--canary-subset", "v1")
		if res.code != exitError || !strings.Contains(res.stderr, "the rollout does not validate (HTTP 422)") ||
			!strings.Contains(res.stderr, "  - ") || !strings.Contains(res.stderr, "must differ") {
			t.Errorf("exit %d, stderr %q; want 1, the error and its details", res.code, res.stderr)
		}
		if n := len(e.stored(t, ns)); n != 0 {
			t.Errorf("%d rollouts written for an invalid spec", n)
		}
	})

	t.Run("404", func(t *testing.T) {
		for _, args := range [][]string{
			{"status", "-n", ns, "missing"},
			{"promote", "-n", ns, "missing"},
			{"watch", "-n", ns, "missing"},
		} {
			res := e.operator().run(t, args...)
			if res.code != exitError || !strings.Contains(res.stderr, "not found (HTTP 404)") {
				t.Errorf("%v: exit %d, stderr %q; want 1 and not found", args, res.code, res.stderr)
			}
		}
	})

	t.Run("server down", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		res := cli{server: down.URL, token: operatorToken}.run(t, "list", "--timeout", "2s")
		if res.code != exitError || !strings.Contains(res.stderr, "connection refused") || strings.Contains(res.stderr, operatorToken) {
			t.Errorf("exit %d, stderr %q; want 1 and the connection error, without the token", res.code, res.stderr)
		}
	})
}

func TestRolloutUsageErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	manifest := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: serin.dev/v1alpha1\nkind: Rollout\nmetadata: {name: a, namespace: b}\nspec: {virtualService: vs, stableSubset: v1, canarySubset: v2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongKind := filepath.Join(t.TempDir(), "d.yaml")
	if err := os.WriteFile(wrongKind, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := []string{"start", "-n", "shop", "web", "--virtual-service", "vs"}
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage: serin rollout"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"status", "-n", "shop"}, "missing the rollout NAME"},
		{[]string{"status", "web"}, "missing -n NAMESPACE"},
		{[]string{"status", "-n", "shop", "a", "b"}, "want one rollout NAME"},
		{[]string{"pause", "-n", "shop"}, "missing the rollout NAME"},
		{[]string{"retry", "web"}, "missing -n NAMESPACE"},
		{[]string{"abort", "-n", "shop", "web"}, "missing --reason"},
		{[]string{"list", "extra"}, "unexpected arguments: extra"},
		{[]string{"list", "-o", "yaml"}, `-o "yaml"`},
		{[]string{"list", "--server", "127.0.0.1:8080"}, `--server "127.0.0.1:8080"`},
		{[]string{"list", "--no-such-flag"}, "no-such-flag"},
		{[]string{"start", "-n", "shop", "web"}, "missing --virtual-service"},
		{append(start, "--stable-subset", "v1"), "needs both --stable-subset and --canary-subset"},
		{start, "missing --stable-subset and --canary-subset"},
		{append(start, "--stable-subset", "v1", "--canary-subset", "v2", "--stable-host", "a", "--canary-host", "b"), "not both"},
		{append(start, "--stable-subset", "v1", "--canary-subset", "v2", "--steps", "10,x,100"), `"x" is not a whole number`},
		{append(start, "--stable-subset", "v1", "--canary-subset", "v2", "--steps", "50,25,100"), "strictly increasing"},
		{append(start, "--stable-subset", "v1", "--canary-subset", "v2", "--steps", "10,50"), "the last step must be 100"},
		{append(start, "--stable-subset", "v1", "--canary-subset", "v2", "--steps", "0,100"), "not a percentage"},
		{append(start, "--stable-subset", "v1", "--canary-subset", "v2", "--steps", ""), "not a whole number"},
		{append(start, "--stable-subset", "v1", "--canary-subset", "v2", "--step-interval", "soon"), "-step-interval: want a duration"},
		{append(start, "--stable-subset", "v1", "--canary-subset", "v2", "--step-interval", "10ms"), "at least 1s"},
		{[]string{"start", "-f", manifest, "web"}, "give either -f or NAME and spec flags, not both"},
		{[]string{"start", "-f", manifest, "--virtual-service", "vs"}, "--virtual-service"},
		{[]string{"start", "-f", manifest, "-n", "other"}, `differs from -n "other"`},
		{[]string{"start", "-f", wrongKind}, "want apiVersion serin.dev/v1alpha1 and kind Rollout"},
		{[]string{"start", "-f", filepath.Join(t.TempDir(), "nope.yaml")}, "no such file"},
	}
	for _, tc := range tests {
		res := cli{server: srv.URL, token: "secret-tok"}.run(t, tc.args...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, res.code, res.stderr, tc.want)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("usage errors sent %d requests; want none", n)
	}

	// Help is not an error.
	if res := (cli{server: srv.URL}).run(t, "-h"); res.code != 0 || !strings.Contains(res.stdout, "serin rollout <command>") {
		t.Errorf("-h: exit %d, stdout %q", res.code, res.stdout)
	}
	if res := (cli{server: srv.URL, token: "secret-tok"}).run(t, "start", "-h"); res.code != 0 || !strings.Contains(res.stderr, "-virtual-service") || strings.Contains(res.stderr, "secret-tok") {
		t.Errorf("start -h: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestStepLadderAndAge(t *testing.T) {
	if got := stepLadder([]int32{10, 25, 50, 100}, 1); got != "10 → [25] → 50 → 100" {
		t.Errorf("ladder at step 1: %q", got)
	}
	if got := stepLadder([]int32{10, 100}, -1); got != "10 → 100" {
		t.Errorf("ladder before the first step: %q", got)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for d, want := range map[time.Duration]string{5 * time.Second: "5s", 3 * time.Minute: "3m", 5 * time.Hour: "5h", 72 * time.Hour: "3d"} {
		if got := age(now, now.Add(-d)); got != want {
			t.Errorf("age of %v: %q, want %q", d, got, want)
		}
	}
}
