package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/serin-dev/serin/api"
)

// pluginName is the name under which the binary is `kubectl serin`:
// kubectl runs the executable kubectl-serin on the PATH for it.
const pluginName = "kubectl-serin"

// isPlugin reports whether argv0, the name the binary was run under, is
// the plugin's (kubectl-serin, or kubectl-serin.exe on Windows).
func isPlugin(argv0 string) bool {
	return strings.TrimSuffix(filepath.Base(argv0), ".exe") == pluginName
}

const pluginUsage = `usage: kubectl serin <command> [flags]

Steers serin's Rollouts with your kubeconfig: your credentials, your
context's namespace (or -n), and your RBAC. No serin endpoint or token.

commands:
  get [NAME] [-A] [--phase P]   list rollouts: NAMESPACE NAME PHASE STEP WEIGHT AGE
  status NAME                   phase, step ladder, weight, analysis checks, history
  watch NAME                    live progress until the rollout finishes
  history NAME                  the delivered Deployment's releases, newest first
  pause|resume|promote NAME
  abort NAME --reason TEXT
  retry NAME                    run a RolledBack or Aborted rollout again from its
                                first step
  set-image NAME CONTAINER=IMAGE [CONTAINER=IMAGE ...]
                                release new images of the Deployment the rollout
                                delivers (spec.workload), as kubectl set image does

RBAC: get, status, watch and history need get, list and watch on
rollouts.serin.dev (the serin-view ClusterRole, part of Kubernetes' view
role); pause, resume, promote, abort and retry need patch on it (serin-edit,
part of edit); set-image needs patch on the Deployment (edit).

flags: kubectl's connection flags (-n, --context, --kubeconfig, --as, ...),
-o table|json, and those of each command (kubectl serin COMMAND -h).

exit codes: 0 done (watch: Succeeded), 1 refused by the API server or
unreachable, 2 usage error, 3 watch: the rollout RolledBack, was Aborted,
Failed or was deleted.
`

// RBAC hints printed after a refusal.
const (
	needsView = "(this needs get, list and watch on rollouts.serin.dev: the serin-view ClusterRole grants them, and is part of Kubernetes' view role)"
	needsEdit = "(this needs patch on rollouts.serin.dev: the serin-edit ClusterRole grants it, and is part of Kubernetes' edit role)"
	needsSet  = "(set-image needs patch on the rollout's Deployment, which Kubernetes' edit role grants)"
)

// runPlugin is `kubectl serin ...` on the process's standard streams.
// SIGINT and SIGTERM cancel what is running.
func runPlugin(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The informer logs through controller-runtime's logger: errors only,
	// and without its warning that no logger was set.
	ctrllog.SetLogger(logr.FromSlogHandler(errorLog(os.Stderr).Handler()))
	return pluginMain(ctx, args, cliIO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, TTY: term.IsTerminal(int(os.Stdout.Fd())), Width: terminalWidth(os.Stdout), Now: time.Now,
	})
}

// pluginCommand is one parsed `kubectl serin` command.
type pluginCommand struct {
	// namespace is what the read model holds: the rollout's namespace, or
	// "" for get -A.
	namespace string
	// forbidden says what the command needs when the API server refuses.
	forbidden string
	run       func(ctx context.Context, c *apiClient) int
}

// pluginMain dispatches `kubectl serin SUBCOMMAND ...` and returns the
// exit code. Nothing is sent before the command line has parsed.
func pluginMain(ctx context.Context, args []string, cio cliIO) int {
	cio.Self = "kubectl serin"
	if len(args) == 0 {
		fmt.Fprint(cio.Stderr, pluginUsage)
		return exitUsage
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprint(cio.Stdout, pluginUsage)
		return exitOK
	}
	pf := newPluginFlags(sub, cio)
	if pf == nil {
		fmt.Fprintf(cio.Stderr, "kubectl serin: unknown command %q\n\n%s", sub, pluginUsage)
		return exitUsage
	}
	cmd, err := pf.parse(args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(cio.Stderr, "kubectl serin %s: %v\n(kubectl serin %s -h for help)\n", sub, err, sub)
		return exitUsage
	}
	cfg, err := pf.kube.ToRESTConfig()
	if err != nil {
		fmt.Fprintf(cio.Stderr, "kubectl serin %s: kubeconfig: %v\n", sub, err)
		return exitError
	}
	s, err := openSession(ctx, sessionOptions{Config: cfg, Namespace: cmd.namespace, Log: cio.Stderr})
	if err != nil {
		if ctx.Err() != nil {
			return exitInterrupted
		}
		fmt.Fprintf(cio.Stderr, "kubectl serin %s: %v\n", sub, err)
		if apierrors.IsForbidden(err) {
			fmt.Fprintf(cio.Stderr, "  %s\n", needsView)
		}
		return exitError
	}
	defer s.Close()
	pf.cio.Forbidden = cmd.forbidden // the commands print through pf.cio
	return cmd.run(ctx, s.client)
}

// pluginFlags are one subcommand's flags: kubectl's connection flags, -o,
// and the subcommand's own.
type pluginFlags struct {
	sub    string
	cio    cliIO
	fs     *pflag.FlagSet
	kube   *genericclioptions.ConfigFlags
	output string
	all    bool   // get -A
	phase  string // get --phase
	reason string // abort --reason
}

// pluginSynopses are the subcommands with their arguments.
var pluginSynopses = map[string]string{
	"get": "get [NAME] [-A] [--phase PHASE]", "status": "status NAME", "watch": "watch NAME", "history": "history NAME",
	"pause": "pause NAME", "resume": "resume NAME", "promote": "promote NAME", "retry": "retry NAME",
	"abort": `abort NAME --reason "TEXT"`, "set-image": "set-image NAME CONTAINER=IMAGE [CONTAINER=IMAGE ...]",
}

// newPluginFlags returns sub's flags, or nil for an unknown subcommand.
func newPluginFlags(sub string, cio cliIO) *pluginFlags {
	if _, ok := pluginSynopses[sub]; !ok {
		return nil
	}
	pf := &pluginFlags{sub: sub, cio: cio, fs: pflag.NewFlagSet("kubectl serin "+sub, pflag.ContinueOnError),
		kube: genericclioptions.NewConfigFlags(false)}
	// pflag prints the whole usage on any error; a usage error prints
	// one line instead, and -h the usage (see parse).
	pf.fs.SetOutput(io.Discard)
	pf.fs.Usage = func() {}
	pf.kube.AddFlags(pf.fs)
	pf.fs.StringVarP(&pf.output, "output", "o", "table", "output format: table or json")
	switch sub {
	case "get":
		pf.fs.BoolVarP(&pf.all, "all-namespaces", "A", false, "list the rollouts of every namespace")
		pf.fs.StringVar(&pf.phase, "phase", "", "only this phase: Pending, Progressing, Paused, Succeeded, RolledBack, Aborted or Failed")
	case "abort":
		pf.fs.StringVar(&pf.reason, "reason", "", "why the rollout is aborted (required; recorded with your name)")
	}
	return pf
}

func (pf *pluginFlags) usage() {
	fmt.Fprintf(pf.cio.Stderr, "usage: kubectl serin %s [flags]\n\nflags:\n", pluginSynopses[pf.sub])
	pf.fs.SetOutput(pf.cio.Stderr)
	defer pf.fs.SetOutput(io.Discard)
	pf.fs.PrintDefaults()
}

// parse parses args and returns the command; it reads the kubeconfig for
// the context's namespace, but sends nothing.
func (pf *pluginFlags) parse(args []string) (pluginCommand, error) {
	if err := pf.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			pf.usage()
		}
		return pluginCommand{}, err
	}
	if pf.output != "table" && pf.output != "json" {
		return pluginCommand{}, fmt.Errorf("-o %q: want table or json", pf.output)
	}
	pos := pf.fs.Args()
	ns := ""
	if !pf.all {
		var err error
		if ns, _, err = pf.kube.ToRawKubeConfigLoader().Namespace(); err != nil {
			return pluginCommand{}, fmt.Errorf("kubeconfig: %w", err)
		}
	} else if pf.fs.Changed("namespace") {
		return pluginCommand{}, errors.New("give either -n NAMESPACE or -A, not both")
	}
	if pf.sub == "get" {
		return pf.get(ns, pos)
	}
	if pf.sub == "set-image" {
		name, images, err := imagesArgs(pos)
		if err != nil {
			return pluginCommand{}, err
		}
		return pluginCommand{namespace: ns, forbidden: needsSet, run: func(ctx context.Context, c *apiClient) int {
			return setImages(ctx, pf.cio, c, pf.output, ns, name, images)
		}}, nil
	}
	name, err := oneName(pos, ns)
	if err != nil {
		return pluginCommand{}, err
	}
	cmd := pluginCommand{namespace: ns, forbidden: needsEdit}
	switch pf.sub {
	case "status":
		cmd.forbidden = needsView
		cmd.run = func(ctx context.Context, c *apiClient) int { return showStatus(ctx, pf.cio, c, pf.output, ns, name) }
	case "history":
		cmd.forbidden = needsView
		cmd.run = func(ctx context.Context, c *apiClient) int { return showHistory(ctx, pf.cio, c, pf.output, ns, name) }
	case "watch":
		cmd.forbidden = needsView
		cmd.run = func(ctx context.Context, c *apiClient) int {
			w := &watcher{c: c, cio: pf.cio, ns: ns, name: name, json: pf.output == "json"}
			return w.run(ctx)
		}
	case "abort":
		if err := checkReason(pf.reason); err != nil {
			return pluginCommand{}, err
		}
		cmd.run = func(ctx context.Context, c *apiClient) int {
			return act(ctx, pf.cio, c, pf.output, "abort", ns, name, api.AbortRequest{Reason: pf.reason})
		}
	default: // pause, resume, promote, retry
		cmd.run = func(ctx context.Context, c *apiClient) int {
			return act(ctx, pf.cio, c, pf.output, pf.sub, ns, name, nil)
		}
	}
	return cmd, nil
}

// get lists the rollouts of ns (every namespace when ""), or the one
// named, as `serin rollout list` prints them.
func (pf *pluginFlags) get(ns string, pos []string) (pluginCommand, error) {
	if len(pos) > 1 {
		return pluginCommand{}, fmt.Errorf("want at most one rollout NAME, got %d arguments: %s", len(pos), strings.Join(pos, " "))
	}
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	}
	return pluginCommand{namespace: ns, forbidden: needsView, run: func(ctx context.Context, c *apiClient) int {
		l, err := c.List(ctx, ns, pf.phase)
		if err != nil {
			return fail(pf.cio, "list rollouts", err)
		}
		if name != "" {
			l.Items = slices.DeleteFunc(l.Items, func(r api.RolloutSummary) bool { return r.Name != name })
			if len(l.Items) == 0 {
				where := "in any namespace"
				if ns != "" {
					where = fmt.Sprintf("in namespace %q", ns)
				}
				fmt.Fprintf(pf.cio.Stderr, "kubectl serin: rollout %q not found %s\n", name, where)
				return exitError
			}
		}
		if pf.output == "json" {
			return printJSON(pf.cio, l)
		}
		printList(pf.cio.Stdout, l.Items, pf.cio.Now())
		return exitOK
	}}, nil
}
