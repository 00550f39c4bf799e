package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serin-dev/serin/test/stack"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	must(t, err)
	if want := filepath.Join(stack.RepoRoot(), "bin", "serin"); o.Serin != want || o.RPS != 50 || o.ReadyFile != defaultReadyFile() || o.NoBanner ||
		o.Story != storyWorkload || o.StepInterval != 0 {
		t.Errorf("defaults = %+v, want serin %s, rps 50, story workload", o, want)
	}
	o, err = parseFlags([]string{"-serin", "bin/serin", "-story", "subsets"}, io.Discard)
	must(t, err)
	if !filepath.IsAbs(o.Serin) || o.Story != storySubsets {
		t.Errorf("-serin bin/serin -story subsets = %q, %q; want an absolute path (the banner puts its directory on PATH) and subsets", o.Serin, o.Story)
	}
	o, err = parseFlags([]string{"-meshsim-seed", "42", "-background-errors", "checkout/v1=0.005,checkout/v2=0.01"}, io.Discard)
	must(t, err)
	if o.MeshSeed != 42 || len(o.BackgroundErrors) != 2 || o.BackgroundErrors["checkout/v1"] != 0.005 || o.BackgroundErrors["checkout/v2"] != 0.01 {
		t.Errorf("meshsim flags = seed %d, background %v; want 42 and checkout/v1 0.005, checkout/v2 0.01", o.MeshSeed, o.BackgroundErrors)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-rps", "-1"}, "-rps -1"},
		{[]string{"-rps", "1001"}, "-rps 1001"},
		{[]string{"-rps", "NaN"}, "-rps NaN"},
		{[]string{"-bogus"}, "flag provided but not defined"},
		{[]string{"-background-errors", "checkout/v1=2"}, "2 is not a fraction in [0,1]"},
		{[]string{"-meshsim-seed", "-3"}, "-meshsim-seed"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"-story", "canary"}, `-story "canary": want workload or subsets`},
		{[]string{"-story", "subsets", "-step-interval", "2s"}, "-step-interval 2s: only for -story workload"},
		{[]string{"-step-interval", "500ms"}, "at least 1s"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/serin-stack-1/kubeconfig": "/tmp/serin-stack-1/kubeconfig",
		"/tmp/with space":               "'/tmp/with space'",
		"it's":                          `'it'\''s'`,
		"":                              "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
