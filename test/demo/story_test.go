package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// releaseDeadline bounds the wait for one release of the story to end: a
// canary scale-up, four steps of 3 s with their analysis, and the
// promotion, on a loaded machine.
const releaseDeadline = 3 * time.Minute

// TestDemoReleaseStory starts the demo as `make demo` does (the workload
// story is the default; only the steps are shortened) and plays the
// banner's story with the exact commands the banner printed, run by bash
// after the banner's setup lines: a good release, a bad one rolled back
// with its reason, a good one again with no reset in between, and one
// through serin rollout set-image. After each, the route is at 100/0 on
// the stable copy, which runs the last good image.
func TestDemoReleaseStory(t *testing.T) {
	bins := buildBinaries(t)
	tmp := t.TempDir()
	d := startDemo(t, bins, tmp, "-serin", bins.serin, "-ready-file", filepath.Join(tmp, "ready.json"), "-step-interval", "3s")
	info := d.waitReady(t)
	sections := bannerSections(d.output())
	setup := section(t, sections, headingSetup)
	sh := func(cmd string) string { return bashAfter(t, setup, cmd) }

	t.Run("adopted before the banner", func(t *testing.T) {
		if got := servingStable(t, info); got != "shop/checkout:1" {
			t.Errorf("checkout-stable runs %s, want shop/checkout:1", got)
		}
		if ro := demoRollout(t, info); len(ro.Status.Releases) != 0 {
			t.Errorf("releases before any change: %+v", ro.Status.Releases)
		}
		meshValid(t, info, "after the adoption")
	})
	for _, rel := range []struct {
		heading, outcome, stableImage string
	}{
		{headingGood, "Succeeded", "shop/checkout:2"},
		{headingBad, "RolledBack", "shop/checkout:2"},
		{headingThird, "Succeeded", "shop/checkout:4"},
		{headingREST, "Succeeded", "shop/checkout:5"},
	} {
		t.Run(strings.TrimSpace(rel.heading), func(t *testing.T) {
			cmds := section(t, sections, rel.heading)
			n := len(demoRollout(t, info).Status.Releases) + 1
			t.Logf("$ %s\n%s", cmds[0], sh(cmds[0]))
			ro := waitRelease(t, info, n)
			r := ro.Status.Releases[n-1]
			if r.Outcome != rel.outcome {
				t.Fatalf("release %d (%v) ended %s, want %s: %s", n, r.Images, r.Outcome, rel.outcome, r.Reason)
			}
			if rel.outcome == "RolledBack" && (r.Reason == "" || r.WorstCheck == "") {
				t.Errorf("a rolled back release says no reason or worst check: %+v", r)
			}
			if got := servingStable(t, info); got != rel.stableImage {
				t.Errorf("after release %d checkout-stable runs %s, want %s", n, got, rel.stableImage)
			}
			out := sh(releaseHistory)
			if !historyLists(out, r.Revision, rel.outcome) {
				t.Errorf("%s does not list revision %s as %s:\n%s", releaseHistory, r.Revision, rel.outcome, out)
			}
		})
	}
	t.Run("four releases, none reset by hand", func(t *testing.T) {
		var outcomes []string
		for _, r := range demoRollout(t, info).Status.Releases {
			outcomes = append(outcomes, r.Outcome)
		}
		if want := []string{"Succeeded", "RolledBack", "Succeeded", "Succeeded"}; !slices.Equal(outcomes, want) {
			t.Errorf("outcomes %v, want %v", outcomes, want)
		}
		meshValid(t, info, "after the story")
	})
	d.interruptAndWait(t)
	assertGone(t, info, tmp)
}

// TestBannerStory checks the banner's workload story without a stack: the
// setup lines come first and in the order that makes every later command
// work, and the patches are the JSON kubectl takes.
func TestBannerStory(t *testing.T) {
	info := readyInfo{Story: storyWorkload, Kubeconfig: "/tmp/s/kubeconfig", Kubectl: "/c/bin/kubectl", Istioctl: "/c/bin/istioctl",
		Serin: "/repo dir/bin/serin", ControllerURL: "http://127.0.0.1:1", OperatorToken: "tok"}
	s := bannerSections(banner(info, "/repo dir"))
	setup := section(t, s, headingSetup)
	want := []string{"cd '/repo dir'", "export KUBECONFIG=/tmp/s/kubeconfig", `export PATH=/c/bin:'/repo dir/bin':"$PATH"`,
		"export SERIN_SERVER=http://127.0.0.1:1 SERIN_TOKEN=tok"}
	if !slices.Equal(setup, want) {
		t.Errorf("setup lines:\n%q\nwant\n%q", setup, want)
	}
	for _, h := range []string{headingGood, headingBad, headingThird, headingREST} {
		if cmds := section(t, s, h); len(cmds) != 1 {
			t.Errorf("%s: %q, want one command", h, cmds)
		}
	}
	for _, cmd := range []string{releaseBad, releaseThird} {
		_, quoted, _ := strings.Cut(cmd, " -p ")
		var patch map[string]any
		if err := json.Unmarshal([]byte(strings.Trim(quoted, "'")), &patch); err != nil {
			t.Errorf("%s: the patch is not JSON: %v", cmd, err)
		}
	}
	if !strings.Contains(releaseBad, `\"errorRate\":0.5`) {
		t.Errorf("the bad release sets no error rate: %s", releaseBad)
	}
	subsets := bannerSections(banner(readyInfo{Story: storySubsets, Kubectl: "/c/bin/kubectl", Serin: "/b/serin"}, "/r"))
	if _, ok := subsets[strings.TrimSpace(headingGood)]; ok {
		t.Errorf("the subsets story tells the workload releases")
	}
}

// bannerSections splits the banner in out into its sections: a heading
// (a line indented by one space, without its colon) and the commands
// under it (the lines indented by three), up to a blank line.
func bannerSections(out string) map[string][]string {
	sections := map[string][]string{}
	heading := ""
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.TrimSpace(l) == "":
			heading = ""
		case strings.HasPrefix(l, "   "):
			if heading != "" {
				sections[heading] = append(sections[heading], strings.TrimSpace(l))
			}
		case strings.HasPrefix(l, " ") && heading == "":
			heading = strings.TrimSpace(l)
		}
	}
	return sections
}

// section returns the commands under the heading that starts with prefix.
func section(t *testing.T, sections map[string][]string, prefix string) []string {
	t.Helper()
	prefix = strings.TrimSpace(prefix)
	for h, cmds := range sections {
		if strings.HasPrefix(h, prefix) && len(cmds) > 0 {
			return cmds
		}
	}
	t.Fatalf("the banner has no commands under %q; its sections: %q", prefix, sections)
	return nil
}

// bashAfter runs cmd with bash after the setup lines, as pasted into a new
// shell: without the test's own KUBECONFIG or SERIN_* variables, so that
// the banner's exports are what makes it work.
func bashAfter(t *testing.T, setup []string, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script := "set -e\n" + strings.Join(setup, "\n") + "\n" + cmd + "\n"
	c := exec.CommandContext(ctx, "bash", "-c", script)
	c.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "SERIN_") {
			c.Env = append(c.Env, kv)
		}
	}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("bash after the banner's setup: %s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// demoRollout reads the Rollout shop/checkout.
func demoRollout(t *testing.T, info readyInfo) *v1alpha1.Rollout {
	t.Helper()
	ro := &v1alpha1.Rollout{}
	must(t, json.Unmarshal([]byte(kubectl(t, info, "get", "rollout", "-n", demoNamespace, workloadName, "-o", "json")), ro))
	return ro
}

// waitRelease waits until the n-th release (1-based) has ended and its end
// has been carried out on the workload.
func waitRelease(t *testing.T, info readyInfo, n int) *v1alpha1.Rollout {
	t.Helper()
	var ro *v1alpha1.Rollout
	waitFor(t, releaseDeadline, fmt.Sprintf("release %d to end", n), func() (bool, string) {
		ro = demoRollout(t, info)
		s := ro.Status
		done := s.Workload != nil && s.Workload.Done && len(s.Releases) >= n && s.Releases[n-1].Outcome != ""
		return done, fmt.Sprintf("%s %d%%, %d releases: %s", s.Phase, s.CanaryWeight, len(s.Releases), s.Message)
	})
	return ro
}

// servingStable checks that the mesh is at rest, ready for the next
// release: the route at 100/0 on the subset stable, the canary copy and
// the team's Deployment at zero replicas. It returns the stable copy's
// image.
func servingStable(t *testing.T, info readyInfo) string {
	t.Helper()
	var vs struct {
		Spec struct {
			HTTP []struct {
				Route []struct {
					Destination struct{ Subset string } `json:"destination"`
					Weight      int                     `json:"weight"`
				} `json:"route"`
			} `json:"http"`
		} `json:"spec"`
	}
	must(t, json.Unmarshal([]byte(kubectl(t, info, "get", "virtualservice", "-n", demoNamespace, "checkout", "-o", "json")), &vs))
	var route []string
	for _, h := range vs.Spec.HTTP {
		for _, r := range h.Route {
			route = append(route, fmt.Sprintf("%s=%d", r.Destination.Subset, r.Weight))
		}
	}
	if !slices.Equal(route, []string{"stable=100", "canary=0"}) {
		t.Errorf("route %v, want stable=100 canary=0", route)
	}
	replicas := func(name string) string {
		return kubectl(t, info, "get", "deployment", "-n", demoNamespace, name, "--ignore-not-found", "-o", "jsonpath={.spec.replicas}")
	}
	if got := replicas("checkout"); got != "0" {
		t.Errorf("the team's Deployment checkout has %q replicas, want 0", got)
	}
	if got := replicas("checkout-canary"); got != "0" && got != "" { // none before the first release
		t.Errorf("checkout-canary has %q replicas, want 0", got)
	}
	return kubectl(t, info, "get", "deployment", "-n", demoNamespace, "checkout-stable", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
}

// historyLists reports whether serin rollout history's output has a line
// for revision with outcome.
func historyLists(out, revision, outcome string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, revision) && slices.Contains(strings.Fields(l), outcome) {
			return true
		}
	}
	return false
}
