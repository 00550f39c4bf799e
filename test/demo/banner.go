package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/serin-dev/serin/test/stack"
)

// readyInfo is the -ready-file: where everything is, and the PID of every
// process the demo started, so that a test can check none outlives it.
type readyInfo struct {
	DemoPID         int    `json:"demoPid"`
	ConsoleURL      string `json:"consoleUrl"`
	ControllerURL   string `json:"controllerUrl"` // serves /healthz, /readyz, /metrics
	ControllerPID   int    `json:"controllerPid"`
	ControllerLog   string `json:"controllerLog"`
	PrometheusURL   string `json:"prometheusUrl"`
	JaegerURL       string `json:"jaegerUrl"`      // HTTP query API
	IstiodDebugURL  string `json:"istiodDebugUrl"` // /debug/syncz, /debug/configz, /debug/config_dump
	MeshControlURL  string `json:"meshControlUrl"`
	MeshMetricsAddr string `json:"meshMetricsAddr"`
	Kubeconfig      string `json:"kubeconfig"`
	OperatorToken   string `json:"operatorToken"` // the demo's own, random per run
	ViewerToken     string `json:"viewerToken"`
	Kubectl         string `json:"kubectl"`
	Istioctl        string `json:"istioctl"` // for istioctl analyze, Istio's own validator
	StackDir        string `json:"stackDir"`
	Story           string `json:"story"`     // storyWorkload or storySubsets
	Serin           string `json:"serin"`     // the serin binary, for the CLI commands
	Demo            string `json:"demo"`      // this binary, for serin-demo reset
	ReadyFile       string `json:"readyFile"` // this file
	PIDs            []int  `json:"pids"`      // every child process: the stack's and the controller
}

// info gathers the readyInfo of a started demo.
func (d *demo) info() readyInfo {
	ctrlURL := "http://" + d.ctrl.addr
	return readyInfo{
		DemoPID:         os.Getpid(),
		ConsoleURL:      ctrlURL + "/",
		ControllerURL:   ctrlURL,
		ControllerPID:   d.ctrl.proc.PID(),
		ControllerLog:   d.ctrl.proc.LogPath(),
		PrometheusURL:   d.st.PrometheusURL,
		JaegerURL:       d.st.JaegerQueryURL,
		IstiodDebugURL:  d.st.IstiodDebugURL,
		MeshControlURL:  d.sim.ControlURL(),
		MeshMetricsAddr: d.sim.MetricsAddr(),
		Kubeconfig:      d.st.Kubeconfig,
		OperatorToken:   d.operatorToken,
		ViewerToken:     d.viewerToken,
		Kubectl:         filepath.Join(stack.BinDir(), "kubectl"),
		Istioctl:        stack.IstioctlPath(),
		StackDir:        d.st.Dir,
		Story:           d.opts.Story,
		Serin:           d.opts.Serin,
		Demo:            demoBinary(),
		ReadyFile:       d.opts.ReadyFile,
		PIDs:            append(d.st.PIDs(), d.ctrl.proc.PID()),
	}
}

// writeReadyFile writes the readyInfo to Options.ReadyFile, if set, through a
// rename so that a reader never sees half a file.
func (d *demo) writeReadyFile() error {
	if d.opts.ReadyFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(d.info(), "", "  ")
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(d.opts.ReadyFile), 0o755); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	tmp := d.opts.ReadyFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp, d.opts.ReadyFile); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}

// printBanner prints where everything is and the story's exact commands.
func (d *demo) printBanner() {
	fmt.Fprint(d.out, banner(d.info(), stack.RepoRoot()))
}

// Section headings of the banner that its test finds the commands under.
const (
	headingSetup = " In another shell, paste once"
	headingGood  = " 1. A good release"
	headingBad   = " 2. A bad release"
	headingThird = " 3. A good release again"
	headingREST  = " The same through serin's REST API"
)

// The workload story's releases: the commands change the team's Deployment
// only, as a team would. The bad one is made bad by the simulator's
// behaviour annotation (test/meshsim), which nothing in a cluster reads.
const (
	releaseGood    = `kubectl -n shop set image deployment/checkout checkout=shop/checkout:2`
	releaseBad     = `kubectl -n shop patch deployment/checkout -p '{"spec":{"template":{"metadata":{"annotations":{"meshsim.serin.dev/behaviour":"{\"errorRate\":0.5}"}},"spec":{"containers":[{"name":"checkout","image":"shop/checkout:3"}]}}}}'`
	releaseThird   = `kubectl -n shop patch deployment/checkout -p '{"spec":{"template":{"metadata":{"annotations":{"meshsim.serin.dev/behaviour":null}},"spec":{"containers":[{"name":"checkout","image":"shop/checkout:4"}]}}}}'`
	releaseREST    = `serin rollout set-image -n shop checkout checkout=shop/checkout:5`
	releaseHistory = `serin rollout history -n shop checkout`
)

// banner renders the banner text. Every command in it works once the
// setup lines are pasted, in their order: cd first, so that the
// deploy/demo paths resolve; then the variables, whose values are
// absolute; PATH puts first the kubectl that the stack built (it matches
// the API server), istioctl and the serin binary the controller runs.
func banner(i readyInfo, repo string) string {
	var b strings.Builder
	line := strings.Repeat("=", 78)
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("")
	w(line)
	w(" serin demo is running. Everything listens on 127.0.0.1; Ctrl-C stops it all.")
	w(line)
	w(" Console          %s   (log in with the operator token)", i.ConsoleURL)
	w(" Operator token   %s", i.OperatorToken)
	w(" Viewer token     %s   (read-only)", i.ViewerToken)
	w(" REST API         %s/api/v1/rollouts   (Authorization: Bearer <token>)", i.ControllerURL)
	w(" Controller       %s/metrics   (also /healthz, /readyz)", i.ControllerURL)
	w(" Controller log   %s", i.ControllerLog)
	w(" Prometheus       %s", i.PrometheusURL)
	w(" Jaeger (API)     %s/api/traces?service=checkout&limit=5", i.JaegerURL)
	w(" istiod (debug)   %s/debug/syncz   (also /debug/configz)", i.IstiodDebugURL)
	w(" Fault control    %s/faults   (mesh simulator, a stand-in for Envoy)", i.MeshControlURL)
	w(" KUBECONFIG       %s", i.Kubeconfig)
	w("")
	w("%s:", headingSetup)
	for _, l := range setupLines(i, repo) {
		w("   %s", l)
	}
	w("")
	if i.Story == storySubsets {
		subsetStory(w, i)
	} else {
		workloadStory(w)
	}
	w("")
	w(" Istio's own validator on the mesh, before, during and after a release")
	w(" (expect one Info: namespace default is not injected):")
	w("   istioctl analyze -A")
	w(line)
	return b.String()
}

// setupLines are the lines to paste once into another shell.
func setupLines(i readyInfo, repo string) []string {
	path := shellQuote(filepath.Dir(i.Kubectl))
	if dir := filepath.Dir(i.Istioctl); dir != filepath.Dir(i.Kubectl) {
		path += ":" + shellQuote(dir)
	}
	path += ":" + shellQuote(filepath.Dir(i.Serin)) + `:"$PATH"`
	return []string{
		"cd " + shellQuote(repo),
		"export KUBECONFIG=" + shellQuote(i.Kubeconfig),
		"export PATH=" + path,
		"export SERIN_SERVER=" + shellQuote(i.ControllerURL) + " SERIN_TOKEN=" + shellQuote(i.OperatorToken),
	}
}

// workloadStory tells the three releases of the Deployment checkout.
func workloadStory(w func(string, ...any)) {
	w(" serin delivers the team's Deployment shop/checkout (deploy/demo/deployment-checkout.yaml,")
	w(" deploy/demo/rollout-workload.yaml): its copy checkout-stable serves 100/0, and every")
	w(" change of the Deployment's pod template is a release, 10 -> 25 -> 50 -> 100%%.")
	w(" Watch the rollout, and list its releases at any time:")
	w("   kubectl -n shop get rollouts -w")
	w("   %s", releaseHistory)
	w("")
	w("%s (image :2; ends Succeeded, the route back at 100/0 on the new stable):", headingGood)
	w("   %s", releaseGood)
	w("")
	w("%s (image :3 answers 50%% errors; serin rolls it back, stable keeps :2,", headingBad)
	w(" and history gives the reason and the worst check):")
	w("   %s", releaseBad)
	w("")
	w("%s (image :4, the bad behaviour removed; no reset needed):", headingThird)
	w("   %s", releaseThird)
	w("")
	w("%s (POST .../release, with the operator token):", headingREST)
	w("   %s", releaseREST)
}

// subsetStory tells a good and a bad canary between the subsets v1 and v2.
func subsetStory(w func(string, ...any), i readyInfo) {
	faultURL := i.MeshControlURL + "/faults/checkout/v2"
	w(" Watch the rollouts:")
	w("   kubectl get rollouts -n shop -w")
	w("")
	w(" 1. A good canary (checkout v2 healthy; 10 -> 25 -> 50 -> 100%%, it ends Succeeded):")
	w("   kubectl apply -f deploy/demo/rollout-checkout.yaml")
	w("")
	w(" 2. Once it has ended, reset: the finished rollout deleted, the route back to 100/0 on v1,")
	w(" the faults cleared (re-applying a finished rollout would only say \"unchanged\"; make demo-reset does the same):")
	w("   %s reset%s", shellQuote(i.Demo), resetFlag(i))
	w("")
	w(" 3. A bad canary (checkout v2 answers 20%% errors; serin returns traffic to v1, and the")
	w(" console and `serin rollout status -n shop checkout-v2` say why):")
	w("   curl -X PUT %s -d '{\"errorRate\":0.2}'", faultURL)
	w("   kubectl apply -f deploy/demo/rollout-checkout.yaml")
	w("")
	w(" Reset again the same way (step 2) before another run.")
}

// demoBinary is the path of this binary, for the banner's reset command.
func demoBinary() string {
	p, err := os.Executable()
	if err != nil {
		return filepath.Join(stack.RepoRoot(), "bin", "serin-demo")
	}
	return p
}

// resetFlag is the -ready-file flag the reset command needs to find this
// demo, or "" when it is at its default place.
func resetFlag(i readyInfo) string {
	if i.ReadyFile == "" || i.ReadyFile == defaultReadyFile() {
		return ""
	}
	return " -ready-file " + shellQuote(i.ReadyFile)
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe
// characters.
func shellQuote(s string) string {
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@%", r)) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeTokens creates the demo's random operator and viewer tokens in a
// file the controller reads with --api-token-file.
func (d *demo) writeTokens(dir string) (string, error) {
	for _, t := range []*string{&d.operatorToken, &d.viewerToken} {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("demo tokens: %w", err)
		}
		*t = hex.EncodeToString(b)
	}
	path := filepath.Join(dir, "serin-tokens.csv")
	body := fmt.Sprintf("# token,user,role\n%s,demo-operator,operator\n%s,demo-viewer,viewer\n", d.operatorToken, d.viewerToken)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return "", fmt.Errorf("demo tokens: %w", err)
	}
	return path, nil
}
