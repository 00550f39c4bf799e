package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/test/stack"
)

// The demo runs as a subprocess, exactly as `make demo` runs it: built
// binaries of serin and of the demo, a real stack, a SIGINT at the end.

const (
	readyDeadline = 3 * time.Minute // first start on a machine with the tools installed
	exitDeadline  = time.Minute     // the controller gets 10 s, the stack's processes 5 s each
)

func TestDemo(t *testing.T) {
	bins := buildBinaries(t)
	tmp := t.TempDir()

	begin := time.Now()
	d := startDemo(t, bins, tmp, "-serin", bins.serin, "-ready-file", filepath.Join(tmp, "ready.json"), "-story", storySubsets)
	info := d.waitReady(t)
	t.Logf("first start: ready in %v", time.Since(begin).Round(100*time.Millisecond))
	if out := d.output(); !strings.Contains(out, "export KUBECONFIG="+info.Kubeconfig) {
		t.Errorf("the banner has no ready-to-paste export KUBECONFIG line; output:\n%s", tail(out, 40))
	}

	t.Run("prometheus scrapes meshsim and serin", func(t *testing.T) {
		for _, job := range []string{"meshsim", "serin"} {
			waitFor(t, 30*time.Second, fmt.Sprintf(`up{job=%q} == 1`, job), func() (bool, string) {
				return promUp(info.PrometheusURL, job)
			})
		}
	})
	t.Run("controller ready", func(t *testing.T) {
		if err := get(info.ControllerURL+"/readyz", nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("mesh control answers", func(t *testing.T) {
		var faults map[string]any
		if err := get(info.MeshControlURL+"/faults", &faults); err != nil {
			t.Fatal(err)
		}
		if len(faults) != 0 {
			t.Fatalf("faults at start = %v, want none", faults)
		}
	})
	t.Run("the REST API takes the banner's operator token", func(t *testing.T) {
		if !strings.Contains(d.output(), info.OperatorToken) || info.OperatorToken == "" {
			t.Errorf("the banner does not print the operator token")
		}
		status := func(token string) int {
			req, _ := http.NewRequest(http.MethodGet, info.ControllerURL+"/api/v1/rollouts", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if got := status(info.OperatorToken); got != http.StatusOK {
			t.Errorf("GET /api/v1/rollouts with the operator token: %d, want 200", got)
		}
		if got := status(""); got != http.StatusUnauthorized {
			t.Errorf("GET /api/v1/rollouts without a token: %d, want 401", got)
		}
	})
	t.Run("the console serves its login page", func(t *testing.T) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(info.ConsoleURL + "login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "serin") || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %slogin: %s, CSP %q; want the login page", info.ConsoleURL, resp.Status, resp.Header.Get("Content-Security-Policy"))
		}
	})
	t.Run("Istio's analyzers find the mesh valid", func(t *testing.T) { meshValid(t, info, "before the rollout") })
	t.Run("good canary succeeds", func(t *testing.T) { goodCanary(t, info, tmp) })
	t.Run("Istio's analyzers find the mesh valid after it", func(t *testing.T) { meshValid(t, info, "after the rollout") })
	t.Run("the banner's reset is one command that restores the start", func(t *testing.T) { bannerReset(t, info) })

	d.interruptAndWait(t)
	assertGone(t, info, tmp)

	begin = time.Now()
	d2 := startDemo(t, bins, tmp, "-serin", bins.serin, "-ready-file", filepath.Join(tmp, "ready2.json"), "-no-banner")
	info2 := d2.waitReady(t)
	t.Logf("second start (everything cached): ready in %v", time.Since(begin).Round(100*time.Millisecond))
	d2.interruptAndWait(t)
	assertGone(t, info2, tmp)
}

// TestDemoFailureStopsEverything makes the last step, the controller, fail
// and checks that the demo says so, exits non-zero and stops the stack and
// the simulator it had already started.
func TestDemoFailureStopsEverything(t *testing.T) {
	bins := buildBinaries(t)
	tmp := t.TempDir()
	d := startDemo(t, bins, tmp, "-serin", "/bin/false", "-ready-file", filepath.Join(tmp, "ready.json"))
	code := d.wait(t, readyDeadline)
	out := d.output()
	if code != 1 {
		t.Fatalf("exit code = %d, want 1; output:\n%s", code, tail(out, 40))
	}
	for _, want := range []string{"FAILED", "serin controller", "exited before it was ready", "stopping what was started"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(out, 40))
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "ready.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed demo wrote its ready file (stat: %v)", err)
	}
	if left := processesMentioning(tmp); len(left) > 0 {
		t.Errorf("processes left running after the failure: %v", left)
	}
}

// goodCanary applies deploy/demo/rollout-checkout.yaml with stepInterval 1s
// through the stack's kubectl, as the banner says, and waits for Succeeded.
func goodCanary(t *testing.T, info readyInfo, tmp string) {
	manifest := fastRollout(t, tmp)
	kubectl(t, info, "apply", "-f", manifest)
	midway := false
	waitFor(t, 2*time.Minute, "rollout checkout-v2 Succeeded", func() (bool, string) {
		status := kubectl(t, info, "get", "rollout", "-n", "shop", "checkout-v2", "-o", "jsonpath={.status.phase} {.status.appliedWeight}")
		phase, weight, _ := strings.Cut(status, " ")
		if !midway && phase == "Progressing" && weight != "" && weight != "0" {
			midway = true // the route is split: the referee's mid-rollout look
			meshValid(t, info, "mid-rollout, the canary at "+weight+"%")
		}
		switch phase {
		case "RolledBack", "Aborted", "Failed":
			t.Fatalf("a healthy canary ended %s:\n%s", phase, kubectl(t, info, "get", "rollout", "-n", "shop", "checkout-v2", "-o", "yaml"))
		}
		return phase == "Succeeded", "phase " + phase
	})
	t.Logf("kubectl get rollouts -n shop -o wide:\n%s", kubectl(t, info, "get", "rollouts", "-n", "shop", "-o", "wide"))
}

// meshValid runs istioctl analyze -A on the demo, as its banner says, and
// fails on any Error or Warning: the demo's stand-ins (Pending Pods,
// hand-written EndpointSlices) leave none, and the one Info, namespace
// default not injected, is about a namespace the demo does not use.
func meshValid(t *testing.T, info readyInfo, when string) {
	t.Helper()
	msgs, err := stack.AnalyzeKubeconfig(t.Context(), info.Kubeconfig)
	must(t, err)
	for _, m := range msgs {
		if m.Level == stack.LevelInfo {
			t.Logf("%s: %s", when, m)
			continue
		}
		t.Errorf("%s: istioctl analyze -A reports %s", when, m)
	}
}

// fastRollout writes the demo Rollout with stepInterval 1s and returns its path.
func fastRollout(t *testing.T, tmp string) string {
	b, err := os.ReadFile(filepath.Join(stack.RepoRoot(), "deploy", "demo", "rollout-checkout.yaml"))
	must(t, err)
	var obj map[string]any
	must(t, yaml.Unmarshal(b, &obj))
	spec, ok := obj["spec"].(map[string]any)
	if !ok {
		t.Fatalf("deploy/demo/rollout-checkout.yaml has no spec: %v", obj)
	}
	spec["stepInterval"] = "1s"
	out, err := yaml.Marshal(obj)
	must(t, err)
	path := filepath.Join(tmp, "rollout-checkout-fast.yaml")
	must(t, os.WriteFile(path, out, 0o644))
	return path
}

// kubectl runs the stack's kubectl with the demo's kubeconfig and returns its
// output; a failure fails the test.
func kubectl(t *testing.T, info readyInfo, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, info.Kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+info.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// promUp reports whether Prometheus has up{job=job} == 1.
func promUp(promURL, job string) (bool, string) {
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	q := url.Values{"query": {fmt.Sprintf(`up{job=%q}`, job)}}
	if err := get(promURL+"/api/v1/query?"+q.Encode(), &r); err != nil {
		return false, err.Error()
	}
	if len(r.Data.Result) == 0 {
		return false, "no series yet"
	}
	v := r.Data.Result[0].Value[1]
	return v == "1", fmt.Sprintf("up = %v", v)
}

// get GETs u, wants a 200 and decodes a JSON body into v unless v is nil.
func get(u string, v any) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// assertGone checks that the demo's every child process has exited and been
// reaped, and that no process refers to the test's temp dir (where the stack
// keeps its data).
func assertGone(t *testing.T, info readyInfo, tmp string) {
	t.Helper()
	if len(info.PIDs) < 5 { // etcd, kube-apiserver, Prometheus, Jaeger, controller
		t.Errorf("ready file lists %d PIDs, want at least 5: %v", len(info.PIDs), info.PIDs)
	}
	for _, pid := range append([]int{info.DemoPID}, info.PIDs...) {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after the demo exited (kill 0: %v)", pid, err)
		}
	}
	if left := processesMentioning(tmp); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
	if _, err := os.Stat(info.StackDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stack dir %s not removed (stat: %v)", info.StackDir, err)
	}
}

// processesMentioning lists "pid: cmdline" of the processes whose command
// line contains s. The stack's processes all name their data dir, which is
// under the TMPDIR the test gives the demo.
func processesMentioning(s string) []string {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, s) {
			out = append(out, filepath.Base(filepath.Dir(p))+": "+cmdline)
		}
	}
	return out
}

// waitFor polls cond every 250ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v (last: %s)", what, timeout, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// bannerReset runs the subsets story's reset, pasted from the banner after
// the good canary and a fault: the finished rollout is gone, the route is
// 100/0 on v1 and no fault is left, so that the bad canary that follows
// in the banner starts as a new rollout.
func bannerReset(t *testing.T, info readyInfo) {
	req, _ := http.NewRequest(http.MethodPut, info.MeshControlURL+"/faults/checkout/v2", strings.NewReader(`{"errorRate":0.2}`))
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	cmds := section(t, bannerSections(banner(info, stack.RepoRoot())), "2. Once it has ended, reset")
	if len(cmds) != 1 {
		t.Fatalf("the reset is %d commands, want one: %q", len(cmds), cmds)
	}
	bashAfter(t, setupLines(info, stack.RepoRoot()), cmds[0])
	if out := kubectl(t, info, "get", "rollouts", "-n", "shop", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("rollouts left after the reset: %s", out)
	}
	weights := kubectl(t, info, "get", "virtualservice", "-n", "shop", "checkout", "-o",
		`jsonpath={range .spec.http[0].route[*]}{.destination.subset}={.weight} {end}`)
	if strings.TrimSpace(weights) != "v1=100 v2=0" {
		t.Errorf("the route after the reset: %q, want v1=100 v2=0", weights)
	}
	var faults map[string]any
	must(t, get(info.MeshControlURL+"/faults", &faults))
	if len(faults) != 0 {
		t.Errorf("faults after the reset: %v", faults)
	}
}
