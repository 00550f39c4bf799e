package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// startOptions are the flags of `serin rollout start`.
type startOptions struct {
	Namespace, File                                    string
	VirtualService, Route, Host                        string
	StableSubset, CanarySubset, StableHost, CanaryHost string
	Steps                                              []int32
	StepInterval                                       time.Duration
	Paused                                             bool
}

func parseStart(args []string, cio cliIO) (rolloutCommand, error) {
	cf := newCommandFlags("start", "start -n NS NAME --virtual-service VS (--stable-subset S --canary-subset C | --stable-host H --canary-host H) [flags]\n       serin rollout start -f rollout.yaml", cio)
	var o startOptions
	fs := cf.fs
	fs.StringVar(&o.Namespace, "n", "", "namespace of the rollout")
	fs.StringVar(&o.File, "f", "", `a Rollout manifest (YAML or JSON; "-" reads stdin) instead of the flags below`)
	fs.StringVar(&o.VirtualService, "virtual-service", "", "the Istio VirtualService whose route is shifted")
	fs.StringVar(&o.Route, "route", "", "name of the http route (default: the one route with both destinations)")
	fs.StringVar(&o.Host, "host", "", "destination host in subset mode (default: the route's host)")
	fs.StringVar(&o.StableSubset, "stable-subset", "", "stable DestinationRule subset (subset mode)")
	fs.StringVar(&o.CanarySubset, "canary-subset", "", "canary DestinationRule subset (subset mode)")
	fs.StringVar(&o.StableHost, "stable-host", "", "stable service host (host mode)")
	fs.StringVar(&o.CanaryHost, "canary-host", "", "canary service host (host mode)")
	fs.Func("steps", "canary weights in percent, e.g. 10,25,50,100 (default: the server's, 10,25,50,100)", func(v string) (err error) {
		o.Steps, err = parseSteps(v)
		return err
	})
	fs.Func("step-interval", "dwell time of each step, e.g. 30s (default: the server's, 30s)", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return errors.New("want a duration of at least 1s, such as 30s")
		}
		o.StepInterval = d
		return nil
	})
	fs.BoolVar(&o.Paused, "paused", false, "create the rollout paused")
	pos, err := cf.parse(args, cio)
	if err != nil {
		return nil, err
	}
	var req api.CreateRequest
	if o.File != "" {
		req, err = startFromFile(o, setFlags(fs, specFlags), pos, cio)
	} else {
		req, err = startFromFlags(o, pos)
	}
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) int {
		r, err := cf.client.Create(ctx, req)
		if err != nil {
			return fail(cio, fmt.Sprintf("start rollout %s/%s", req.Namespace, req.Name), err)
		}
		return printRollout(cio, cf.g.Output, r)
	}, nil
}

// specFlags are the flags that describe a spec, which -f replaces.
var specFlags = []string{"virtual-service", "route", "host", "stable-subset", "canary-subset", "stable-host", "canary-host", "steps", "step-interval", "paused"}

// setFlags returns which of names were set on the command line.
func setFlags(fs *flag.FlagSet, names []string) []string {
	var set []string
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(names, f.Name) {
			set = append(set, "--"+f.Name)
		}
	})
	return set
}

// startFromFlags builds the create request of the flag mode.
func startFromFlags(o startOptions, pos []string) (api.CreateRequest, error) {
	name, err := oneName(pos, o.Namespace)
	if err != nil {
		return api.CreateRequest{}, err
	}
	spec := v1alpha1.RolloutSpec{
		VirtualService: o.VirtualService, Route: o.Route, Host: o.Host,
		StableSubset: o.StableSubset, CanarySubset: o.CanarySubset,
		StableHost: o.StableHost, CanaryHost: o.CanaryHost, Paused: o.Paused,
	}
	subset := o.StableSubset != "" || o.CanarySubset != ""
	host := o.StableHost != "" || o.CanaryHost != ""
	switch {
	case o.VirtualService == "":
		return api.CreateRequest{}, errors.New("missing --virtual-service")
	case subset && host:
		return api.CreateRequest{}, errors.New("give either --stable-subset and --canary-subset, or --stable-host and --canary-host, not both")
	case subset && (o.StableSubset == "" || o.CanarySubset == ""):
		return api.CreateRequest{}, errors.New("subset mode needs both --stable-subset and --canary-subset")
	case host && (o.StableHost == "" || o.CanaryHost == ""):
		return api.CreateRequest{}, errors.New("host mode needs both --stable-host and --canary-host")
	case !subset && !host:
		return api.CreateRequest{}, errors.New("missing --stable-subset and --canary-subset (or --stable-host and --canary-host)")
	case host && o.Host != "":
		return api.CreateRequest{}, errors.New("--host is for subset mode; host mode takes --stable-host and --canary-host")
	}
	spec.Steps = o.Steps
	if o.StepInterval > 0 {
		spec.StepInterval = &metav1.Duration{Duration: o.StepInterval}
	}
	return api.CreateRequest{Namespace: o.Namespace, Name: name, Spec: spec}, nil
}

// parseSteps parses a steps list such as "10,25,50,100": percentages in
// [1, 100], strictly increasing, ending at 100 (the CRD's rules).
func parseSteps(s string) ([]int32, error) {
	var steps []int32
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%q is not a whole number", strings.TrimSpace(f))
		case n < 1 || n > 100:
			return nil, fmt.Errorf("%d is not a percentage in [1, 100]", n)
		case len(steps) > 0 && int32(n) <= steps[len(steps)-1]:
			return nil, errors.New("the steps must be strictly increasing")
		}
		steps = append(steps, int32(n))
	}
	if steps[len(steps)-1] != 100 {
		return nil, errors.New("the last step must be 100")
	}
	return steps, nil
}

// startFromFile builds the create request from a Rollout manifest. Only
// -n (when the manifest has no namespace) and global flags may accompany
// -f; specSet are the spec flags that were set anyway.
func startFromFile(o startOptions, specSet []string, pos []string, cio cliIO) (api.CreateRequest, error) {
	if len(specSet) > 0 || len(pos) > 0 {
		extra := strings.Join(append(pos, specSet...), " ")
		return api.CreateRequest{}, fmt.Errorf("-f takes the name and spec from the manifest: give either -f or NAME and spec flags, not both (got -f with %s)", extra)
	}
	var data []byte
	var err error
	if o.File == "-" {
		data, err = io.ReadAll(cio.Stdin)
	} else {
		data, err = os.ReadFile(o.File)
	}
	if err != nil {
		return api.CreateRequest{}, fmt.Errorf("-f: %w", err)
	}
	var r v1alpha1.Rollout
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return api.CreateRequest{}, fmt.Errorf("-f %s: not a Rollout manifest: %w", o.File, err)
	}
	if r.Kind != "Rollout" || r.APIVersion != v1alpha1.GroupVersion.String() {
		return api.CreateRequest{}, fmt.Errorf("-f %s: want apiVersion %s and kind Rollout, got %q and %q", o.File, v1alpha1.GroupVersion, r.APIVersion, r.Kind)
	}
	switch {
	case r.Name == "":
		return api.CreateRequest{}, fmt.Errorf("-f %s: the manifest has no metadata.name", o.File)
	case r.Namespace == "" && o.Namespace == "":
		return api.CreateRequest{}, fmt.Errorf("-f %s: the manifest has no metadata.namespace; give -n NAMESPACE", o.File)
	case r.Namespace != "" && o.Namespace != "" && r.Namespace != o.Namespace:
		return api.CreateRequest{}, fmt.Errorf("-f %s: the manifest's namespace %q differs from -n %q", o.File, r.Namespace, o.Namespace)
	}
	if r.Namespace == "" {
		r.Namespace = o.Namespace
	}
	return api.CreateRequest{Namespace: r.Namespace, Name: r.Name, Spec: r.Spec}, nil
}

func parseList(args []string, cio cliIO) (rolloutCommand, error) {
	cf := newCommandFlags("list", "list [-n NS] [--phase PHASE]", cio)
	var ns, phase string
	cf.fs.StringVar(&ns, "n", "", "only this namespace (default: all)")
	cf.fs.StringVar(&phase, "phase", "", "only this phase: Pending, Progressing, Paused, Succeeded, RolledBack, Aborted or Failed")
	pos, err := cf.parse(args, cio)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(pos, " "))
	}
	return func(ctx context.Context) int {
		l, err := cf.client.List(ctx, ns, phase)
		if err != nil {
			return fail(cio, "list rollouts", err)
		}
		if cf.g.Output == "json" {
			return printJSON(cio, l)
		}
		printList(cio.Stdout, l.Items, cio.Now())
		return exitOK
	}, nil
}

// parseNamed parses the flags of a command on one rollout: -n NS NAME.
func parseNamed(sub, synopsis string, args []string, cio cliIO, extra func(*commandFlags)) (*commandFlags, string, string, error) {
	cf := newCommandFlags(sub, synopsis, cio)
	var ns string
	cf.fs.StringVar(&ns, "n", "", "namespace of the rollout")
	if extra != nil {
		extra(cf)
	}
	pos, err := cf.parse(args, cio)
	if err != nil {
		return nil, "", "", err
	}
	name, err := oneName(pos, ns)
	return cf, ns, name, err
}

func parseStatus(args []string, cio cliIO) (rolloutCommand, error) {
	cf, ns, name, err := parseNamed("status", "status -n NS NAME", args, cio, nil)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) int { return showStatus(ctx, cio, cf.client, cf.g.Output, ns, name) }, nil
}

// showStatus prints the status of rollout ns/name as c reads it.
func showStatus(ctx context.Context, cio cliIO, c *apiClient, output, ns, name string) int {
	r, err := c.Get(ctx, ns, name)
	if err != nil {
		return fail(cio, fmt.Sprintf("rollout %s/%s", ns, name), err)
	}
	if output == "json" {
		return printJSON(cio, r)
	}
	printStatus(cio.Stdout, r, cio.Now(), cio.self())
	return exitOK
}

// parseAction parses pause, resume, promote and retry.
func parseAction(op string, args []string, cio cliIO) (rolloutCommand, error) {
	cf, ns, name, err := parseNamed(op, op+" -n NS NAME", args, cio, nil)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) int { return act(ctx, cio, cf.client, cf.g.Output, op, ns, name, nil) }, nil
}

// act asks for op (pause, resume, promote, retry, or abort with its body)
// on rollout ns/name through c and prints the rollout as changed.
func act(ctx context.Context, cio cliIO, c *apiClient, output, op, ns, name string, body any) int {
	r, err := c.Act(ctx, ns, name, op, body)
	if err != nil {
		return fail(cio, fmt.Sprintf("%s rollout %s/%s", op, ns, name), err)
	}
	return printRollout(cio, output, r)
}

func parseAbort(args []string, cio cliIO) (rolloutCommand, error) {
	var reason string
	cf, ns, name, err := parseNamed("abort", `abort -n NS NAME --reason "TEXT"`, args, cio, func(cf *commandFlags) {
		cf.fs.StringVar(&reason, "reason", "", "why the rollout is aborted (required; recorded with your name)")
	})
	if err != nil {
		return nil, err
	}
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	return func(ctx context.Context) int {
		return act(ctx, cio, cf.client, cf.g.Output, "abort", ns, name, api.AbortRequest{Reason: reason})
	}, nil
}

// checkReason refuses an abort without a reason before anything is sent;
// the API checks the rest (its length).
func checkReason(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return errors.New(`missing --reason "TEXT": say why the rollout is aborted`)
	}
	return nil
}
