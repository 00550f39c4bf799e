package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResetRefusesWithoutADemo: reset without a running demo, or with
// stray arguments, says so and does nothing.
func TestResetRefusesWithoutADemo(t *testing.T) {
	var out, errs bytes.Buffer
	missing := filepath.Join(t.TempDir(), "ready.json")
	if code := runReset([]string{"-ready-file", missing}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "no running demo") {
		t.Errorf("reset without a demo: exit %d, %q", code, errs.String())
	}
	errs.Reset()
	if code := runReset([]string{"now"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), `unexpected arguments ["now"]`) {
		t.Errorf("reset now: exit %d, %q", code, errs.String())
	}
	bad := filepath.Join(t.TempDir(), "ready.json")
	must(t, os.WriteFile(bad, []byte("{"), 0o600))
	errs.Reset()
	if code := runReset([]string{"-ready-file", bad}, &out, &errs); code != 1 || !strings.Contains(errs.String(), bad) {
		t.Errorf("reset with a broken ready file: exit %d, %q", code, errs.String())
	}
	if out.Len() != 0 {
		t.Errorf("a refused reset reported doing something: %q", out.String())
	}
}
