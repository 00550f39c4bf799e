package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
)

// Exit codes of `serin rollout`.
const (
	exitOK          = 0
	exitError       = 1 // the API refused or could not be reached
	exitUsage       = 2 // bad command line
	exitNotSucceded = 3 // watch: the rollout rolled back, was aborted, failed or was deleted
	exitInterrupted = 130
)

const rolloutUsage = `usage: serin rollout <command> [flags]

commands:
  start -n NS NAME --virtual-service VS (--stable-subset S --canary-subset C | --stable-host H --canary-host H)
        [--host H] [--route R] [--steps 10,25,50,100] [--step-interval 30s] [--paused]
  start -f rollout.yaml [-n NS]    start the Rollout of a manifest ("-" reads stdin)
  list [-n NS] [--phase P]         list rollouts: NAMESPACE NAME PHASE STEP WEIGHT AGE
  status -n NS NAME                phase, step ladder, weight, analysis checks, history
  watch -n NS NAME                 live progress until the rollout finishes
  pause|resume|promote -n NS NAME
  abort -n NS NAME --reason TEXT
  retry -n NS NAME                 run a RolledBack or Aborted rollout again from its
                                   first step, with a fresh preflight and analysis
  set-image -n NS NAME CONTAINER=IMAGE [CONTAINER=IMAGE ...]
                                   release new images of the Deployment the rollout
                                   delivers (spec.workload), as kubectl set image
                                   does; needs patch on that Deployment
  history -n NS NAME               the Deployment's releases, newest first: REVISION
                                   IMAGES STARTED DURATION OUTCOME WORST CHECK REASON

flags of every command:
  --server URL      the API server (default $SERIN_SERVER, else http://127.0.0.1:8080)
  --token TOKEN     bearer token (default $SERIN_TOKEN); prefer the variable, which
                    stays out of the process list
  --timeout D       time limit of each request (default 30s); watch gives up after
                    this long without reaching the server
  -o table|json     output format (default table; watch -o json prints one rollout per line)

watch follows GET /api/v1/rollouts/NS/NAME/events (Server-Sent Events); when the
server has no such endpoint (404), it polls the rollout every second instead.

exit codes: 0 done (watch: Succeeded), 1 API or network error, 2 usage error,
3 watch: the rollout RolledBack, was Aborted, Failed or was deleted.
`

// cliIO is what a command uses besides its arguments, so that tests can
// run commands with their own.
type cliIO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// TTY is true when Stdout is a terminal: watch then redraws in place.
	TTY bool
	// Width is the terminal's width in columns, or 0 when Stdout is not a
	// terminal (or nil); watch then falls back to $COLUMNS, then 80.
	Width func() int
	// Now is the clock for ages.
	Now func() time.Time
	// PollInterval is how often watch polls without the events endpoint;
	// 0 means every second.
	PollInterval time.Duration
	// Self is the command that hints name, "serin rollout" when empty or
	// "kubectl serin".
	Self string
	// Forbidden, when set, is printed after an answer of 403: what the
	// command needs, and which role grants it.
	Forbidden string
}

// self is the command that hints name.
func (cio cliIO) self() string {
	if cio.Self == "" {
		return "serin rollout"
	}
	return cio.Self
}

// runRollout is `serin rollout ...` on the process's standard streams.
// SIGINT and SIGTERM cancel what is running.
func runRollout(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return rolloutMain(ctx, args, cliIO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, TTY: term.IsTerminal(int(os.Stdout.Fd())), Width: terminalWidth(os.Stdout), Now: time.Now,
	})
}

// terminalWidth reads f's width, in columns, each time it is called, so
// that a resized terminal is drawn to its new width; 0 when f is not a
// terminal. bash does not export $COLUMNS, so the terminal itself is
// asked.
func terminalWidth(f *os.File) func() int {
	return func() int {
		w, _, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return 0
		}
		return w
	}
}

// width is the width to draw to: the terminal's, else $COLUMNS, else 80.
func (cio cliIO) width() int {
	if cio.Width != nil {
		if w := cio.Width(); w > 0 {
			return w
		}
	}
	if n, err := strconv.Atoi(cio.Getenv("COLUMNS")); err == nil && n > 10 {
		return n
	}
	return 80
}

// rolloutCommand runs one subcommand whose flags were parsed and checked.
type rolloutCommand func(ctx context.Context) int

// rolloutMain dispatches `serin rollout SUBCOMMAND ...` and returns the
// exit code.
func rolloutMain(ctx context.Context, args []string, cio cliIO) int {
	if len(args) == 0 {
		fmt.Fprint(cio.Stderr, rolloutUsage)
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	var (
		cmd rolloutCommand
		err error
	)
	switch sub {
	case "start":
		cmd, err = parseStart(rest, cio)
	case "list":
		cmd, err = parseList(rest, cio)
	case "status":
		cmd, err = parseStatus(rest, cio)
	case "watch":
		cmd, err = parseWatch(rest, cio)
	case "pause", "resume", "promote", "retry":
		cmd, err = parseAction(sub, rest, cio)
	case "abort":
		cmd, err = parseAbort(rest, cio)
	case "set-image":
		cmd, err = parseSetImage(rest, cio)
	case "history":
		cmd, err = parseHistory(rest, cio)
	case "-h", "--help", "help":
		fmt.Fprint(cio.Stdout, rolloutUsage)
		return exitOK
	default:
		fmt.Fprintf(cio.Stderr, "serin rollout: unknown command %q\n\n%s", sub, rolloutUsage)
		return exitUsage
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(cio.Stderr, "serin rollout %s: %v\n(serin rollout %s -h for help)\n", sub, err, sub)
		return exitUsage
	}
	return cmd(ctx)
}

// globalOptions are the flags every subcommand takes.
type globalOptions struct {
	Server  string
	Token   string
	Timeout time.Duration
	Output  string
}

// commandFlags is a subcommand's flag set with the global flags. After
// parse, client talks to the chosen server.
type commandFlags struct {
	fs     *flag.FlagSet
	g      globalOptions
	client *apiClient
	usage  func() // prints the synopsis and flags to stderr
}

func newCommandFlags(name, synopsis string, cio cliIO) *commandFlags {
	cf := &commandFlags{fs: flag.NewFlagSet("serin rollout "+name, flag.ContinueOnError)}
	fs := cf.fs
	// The flag package prints the whole usage on any error; a usage error
	// prints one line instead, and -h the usage (see parse).
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	cf.usage = func() {
		fs.SetOutput(cio.Stderr)
		defer fs.SetOutput(io.Discard)
		fmt.Fprintf(cio.Stderr, "usage: serin rollout %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	server := cio.Getenv("SERIN_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	fs.StringVar(&cf.g.Server, "server", server, "API server URL ($SERIN_SERVER)")
	// The default is not shown in -h, so that the token is never printed.
	fs.StringVar(&cf.g.Token, "token", "", "bearer token (default $SERIN_TOKEN)")
	fs.DurationVar(&cf.g.Timeout, "timeout", 30*time.Second, "time limit of each request")
	fs.StringVar(&cf.g.Output, "o", "table", "output format: table or json")
	return cf
}

// parse parses args, allowing flags after positional arguments
// (`start -n shop NAME --virtual-service vs`), and checks the global
// flags. It returns the positional arguments.
func (cf *commandFlags) parse(args []string, cio cliIO) ([]string, error) {
	var pos []string
	for {
		if err := cf.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				cf.usage()
			}
			return nil, err
		}
		rest := cf.fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is positional
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if cf.g.Token == "" {
		cf.g.Token = cio.Getenv("SERIN_TOKEN")
	}
	if cf.g.Output != "table" && cf.g.Output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", cf.g.Output)
	}
	if cf.g.Timeout < 0 {
		return nil, fmt.Errorf("--timeout %v: must not be negative", cf.g.Timeout)
	}
	c, err := newAPIClient(cf.g.Server, cf.g.Token, cf.g.Timeout)
	if err != nil {
		return nil, err
	}
	cf.client = c
	return pos, nil
}

// oneName checks that pos is exactly one rollout name and ns is set.
func oneName(pos []string, ns string) (string, error) {
	switch {
	case len(pos) == 0:
		return "", errors.New("missing the rollout NAME")
	case len(pos) > 1:
		return "", fmt.Errorf("want one rollout NAME, got %d arguments: %s", len(pos), strings.Join(pos, " "))
	case ns == "":
		return "", errors.New("missing -n NAMESPACE")
	}
	return pos[0], nil
}

// fail prints err, with the API's details, to stderr and returns exitError.
func fail(cio cliIO, what string, err error) int {
	fmt.Fprintf(cio.Stderr, "serin: %s: %v\n", what, err)
	var ae *apiError
	if errors.As(err, &ae) {
		for _, d := range ae.Body.Details {
			fmt.Fprintf(cio.Stderr, "  - %s\n", d)
		}
		if ae.Status == http.StatusForbidden && cio.Forbidden != "" {
			fmt.Fprintf(cio.Stderr, "  %s\n", cio.Forbidden)
		}
	}
	return exitError
}
