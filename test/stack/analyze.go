package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// AnalyzeTimeout bounds one run of istioctl analyze. On 2 idle cores a run
// takes about a second; the bound leaves room for a loaded machine and
// keeps a hung istioctl from hanging a test.
const AnalyzeTimeout = 90 * time.Second

// Levels of an analyzer message, as istioctl prints them.
const (
	LevelError   = "Error"
	LevelWarning = "Warning"
	LevelInfo    = "Info"
)

// Message is one finding of Istio's config analyzers (istioctl analyze),
// the referee of the end-to-end tests: Istio's own judgement of whether the
// mesh on the API server is valid.
type Message struct {
	Code    string `json:"code"`    // the analyzer code, e.g. IST0101
	Level   string `json:"level"`   // LevelError, LevelWarning or LevelInfo
	Origin  string `json:"origin"`  // the resource as istioctl names it: "VirtualService shop/checkout", "Namespace shop"
	Message string `json:"message"` // the analyzer's text, for people

	// Kind, Namespace and Name are Origin's parts. Namespace is "" for a
	// cluster-scoped resource; for a Namespace, Name is the namespace.
	Kind      string `json:"-"`
	Namespace string `json:"-"`
	Name      string `json:"-"`
}

// String formats m as istioctl's text output does.
func (m Message) String() string {
	return fmt.Sprintf("%s [%s] (%s) %s", m.Level, m.Code, m.Origin, m.Message)
}

// About reports whether m is about namespace ns: a resource in ns, or the
// Namespace ns itself.
func (m Message) About(ns string) bool {
	return m.Namespace == ns || (m.Kind == "Namespace" && m.Name == ns)
}

// Key identifies m across runs of the analyzer: code, origin and text.
func (m Message) Key() string { return m.Code + " " + m.Origin + " " + m.Message }

// IstioctlPath is the istioctl that install.sh builds (component "istio").
func IstioctlPath() string { return filepath.Join(BinDir(), "istioctl") }

// ErrNoIstioctl means the istioctl binary is not in the tool cache.
var ErrNoIstioctl = errors.New("istioctl is not installed")

// exitFoundIssues is istioctl analyze's exit code when it found a message at
// or above its failure threshold (an Error by default); its output is valid.
const exitFoundIssues = 79

// Analyze runs Istio's config analyzers on every namespace of the stack's
// API server (`istioctl analyze --kubeconfig <admin> -A -o json`) and
// returns their messages, Info included. It needs no istiod. A missing
// istioctl is an error (ErrNoIstioctl), never a skip: start the stack with
// Options.Istio, or run test/tools/install.sh istio. A run is bounded by
// AnalyzeTimeout as well as by ctx.
func (s *Stack) Analyze(ctx context.Context) ([]Message, error) {
	return AnalyzeKubeconfig(ctx, s.Kubeconfig)
}

// AnalyzeKubeconfig is Analyze for the API server of a kubeconfig file, such
// as the one a running demo prints, from another process.
func AnalyzeKubeconfig(ctx context.Context, kubeconfig string) ([]Message, error) {
	bin := IstioctlPath()
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("analyze: %w at %s (run test/tools/install.sh istio)", ErrNoIstioctl, bin)
	}
	ctx, cancel := context.WithTimeout(ctx, AnalyzeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "analyze", "--kubeconfig", kubeconfig, "--all-namespaces", "--output", "json")
	// istioctl keeps its defaults under $HOME/.istioctl; the stack's own
	// directory as HOME keeps a developer's settings (a default revision)
	// out of the referee.
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kubeconfig))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == exitFoundIssues {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("istioctl analyze --kubeconfig %s: %w (context: %v): %s", kubeconfig, err, ctx.Err(), strings.TrimSpace(stderr.String()))
	}
	msgs, err := parseAnalysis(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("istioctl analyze --kubeconfig %s: %w", kubeconfig, err)
	}
	return msgs, nil
}

// parseAnalysis decodes istioctl analyze's JSON output: an array of
// messages, each with code, level, origin and message.
func parseAnalysis(out []byte) ([]Message, error) {
	var msgs []Message
	if err := json.Unmarshal(out, &msgs); err != nil {
		return nil, fmt.Errorf("decode the JSON output %.200q: %w", out, err)
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Code == "" || m.Level == "" {
			return nil, fmt.Errorf("message %d has no code or level: %+v", i, *m)
		}
		m.Kind, m.Namespace, m.Name = splitOrigin(m.Origin)
	}
	return msgs, nil
}

// splitOrigin splits istioctl's "<Kind> [<namespace>/]<name>" (the
// convention of its kube origins) into its parts.
func splitOrigin(origin string) (kind, ns, name string) {
	kind, full, _ := strings.Cut(origin, " ")
	if ns, name, ok := strings.Cut(full, "/"); ok {
		return kind, ns, name
	}
	return kind, "", full
}
