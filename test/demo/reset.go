package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/serin-dev/serin/test/stack"
)

// defaultReadyFile is where a running demo describes itself when no
// -ready-file is given, for `serin-demo reset` to find it.
func defaultReadyFile() string { return filepath.Join(stack.CacheDir(), "demo", "ready.json") }

// subsetsRollout is the Rollout the subsets story applies.
const subsetsRollout = "checkout-v2"

// runReset is `serin-demo reset`: it brings the running demo back to its
// start, in one command. For the subsets story it deletes the rollout
// (a finished one would only be "unchanged" when applied again), puts the
// route back to 100/0 on v1 and clears the faults; for the workload
// story, whose releases need no reset, it clears the faults. It returns
// the exit code.
func runReset(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serin-demo reset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readyFile := fs.String("ready-file", defaultReadyFile(), "the running demo's ready file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serin-demo reset: unexpected arguments %q\n", fs.Args())
		return 2
	}
	b, err := os.ReadFile(*readyFile)
	if err != nil {
		fmt.Fprintf(stderr, "serin-demo reset: no running demo (%v); start one with make demo\n", err)
		return 1
	}
	var info readyInfo
	if err := json.Unmarshal(b, &info); err != nil {
		fmt.Fprintf(stderr, "serin-demo reset: %s: %v\n", *readyFile, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := reset(ctx, info, stdout); err != nil {
		fmt.Fprintf(stderr, "serin-demo reset: %v\n", err)
		return 1
	}
	return 0
}

// reset carries out runReset's steps on the demo that info describes.
func reset(ctx context.Context, info readyInfo, out io.Writer) error {
	kubectl := func(args ...string) error {
		cmd := exec.CommandContext(ctx, info.Kubectl, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+info.Kubeconfig)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, b)
		}
		return nil
	}
	if info.Story == storySubsets {
		if err := kubectl("delete", "rollout", "-n", demoNamespace, subsetsRollout, "--ignore-not-found", "--wait"); err != nil {
			return err
		}
		fmt.Fprintf(out, "deleted rollout %s/%s (if there was one)\n", demoNamespace, subsetsRollout)
		mesh := filepath.Join(stack.RepoRoot(), "deploy", "demo", "mesh.yaml")
		if err := kubectl("apply", "--server-side", "--force-conflicts", "-f", mesh); err != nil {
			return err
		}
		fmt.Fprintln(out, "the route is back to 100/0 on v1 (deploy/demo/mesh.yaml)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, info.MeshControlURL+"/faults", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("clear the faults: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("clear the faults: %s", resp.Status)
	}
	fmt.Fprintln(out, "the faults are cleared")
	if info.Story != storySubsets {
		fmt.Fprintln(out, "(the workload story needs no other reset: the next release starts from the current stable)")
	}
	return nil
}
