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
	JaegerURL       string `json:"jaegerUrl"` // HTTP query API
	MeshControlURL  string `json:"meshControlUrl"`
	MeshMetricsAddr string `json:"meshMetricsAddr"`
	Kubeconfig      string `json:"kubeconfig"`
	OperatorToken   string `json:"operatorToken"` // the demo's own, random per run
	ViewerToken     string `json:"viewerToken"`
	Kubectl         string `json:"kubectl"`
	Istioctl        string `json:"istioctl"` // for istioctl analyze, Istio's own validator
	StackDir        string `json:"stackDir"`
	PIDs            []int  `json:"pids"` // every child process: the stack's and the controller
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
		MeshControlURL:  d.sim.ControlURL(),
		MeshMetricsAddr: d.sim.MetricsAddr(),
		Kubeconfig:      d.st.Kubeconfig,
		OperatorToken:   d.operatorToken,
		ViewerToken:     d.viewerToken,
		Kubectl:         filepath.Join(stack.BinDir(), "kubectl"),
		Istioctl:        stack.IstioctlPath(),
		StackDir:        d.st.Dir,
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
	tmp := d.opts.ReadyFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp, d.opts.ReadyFile); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}

// printBanner prints where everything is and the exact commands for a good
// and a bad canary.
func (d *demo) printBanner() {
	fmt.Fprint(d.out, banner(d.info(), stack.RepoRoot()))
}

// banner renders the banner text. The commands use the kubectl that the
// stack built, which matches the API server's version.
func banner(i readyInfo, repo string) string {
	var b strings.Builder
	line := strings.Repeat("=", 78)
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	faultURL := i.MeshControlURL + "/faults/checkout/v2"
	k := shellQuote(i.Kubectl) // the stack's kubectl, which matches the API server
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
	w(" Fault control    %s/faults   (mesh simulator, a stand-in for Envoy)", i.MeshControlURL)
	w(" KUBECONFIG       %s", i.Kubeconfig)
	w("")
	w(" In another shell, paste once:")
	w("   cd %s", shellQuote(repo))
	w("   export KUBECONFIG=%s", shellQuote(i.Kubeconfig))
	w("")
	w(" Watch the rollouts:")
	w("   %s get rollouts -n shop -w", k)
	w("")
	w(" A good canary (checkout v2 healthy; 10 -> 25 -> 50 -> 100%%, it ends Succeeded):")
	w("   %s apply -f deploy/demo/rollout-checkout.yaml", k)
	w("")
	w(" A bad canary (checkout v2 answers 20%% errors; serin returns traffic to v1):")
	w("   curl -X PUT %s -d '{\"errorRate\":0.2}'", faultURL)
	w("   %s apply -f deploy/demo/rollout-checkout.yaml", k)
	w("")
	w(" Istio's own validator on the mesh, before, during and after a rollout")
	w(" (expect one Info: namespace default is not injected):")
	w("   %s analyze -A", shellQuote(i.Istioctl))
	w("")
	w(" Between runs, reset the route to 100/0 and clear the faults:")
	w("   %s delete rollout -n shop checkout-v2", k)
	w("   %s apply --server-side --force-conflicts -f deploy/demo/mesh.yaml", k)
	w("   curl -X DELETE %s/faults", i.MeshControlURL)
	w(line)
	return b.String()
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
