package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serin-dev/serin/web"
)

func TestHAFlags(t *testing.T) {
	base := []string{"--no-analysis", "--auth", "kubernetes", "--leader-elect"}
	tests := []struct {
		args []string
		err  string // "" means valid
	}{
		{nil, ""},
		{[]string{"--leader-elect-lease-duration", "15s", "--leader-elect-renew-deadline", "10s", "--leader-elect-retry-period", "2s"}, ""},
		{[]string{"--leader-elect-lease-duration", "5s"}, "--leader-elect-lease-duration 5s: must be longer than --leader-elect-renew-deadline 5s"},
		{[]string{"--leader-elect-renew-deadline", "1200ms"}, "--leader-elect-renew-deadline 1.2s: must be more than 1.2 times"},
		{[]string{"--leader-elect-retry-period", "0s"}, "--leader-elect-retry-period 0s: must be positive"},
		{[]string{"--session-key-file", "/run/secrets/key"}, ""},
	}
	for _, tc := range tests {
		_, err := parseControllerFlags(append(append([]string(nil), base...), tc.args...))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.err)
		}
	}
	if _, err := parseControllerFlags([]string{"--no-analysis", "--session-key-file", "/k"}); err == nil || !strings.Contains(err.Error(), "only used by the console") {
		t.Errorf("--session-key-file with --auth=none: %v, want it refused", err)
	}
	o, err := parseControllerFlags([]string{"--no-analysis"})
	if err != nil || o.HA.LeaseDuration != defaultLeaseDuration || o.HA.RenewDeadline != defaultRenewDeadline || o.HA.RetryPeriod != defaultRetryPeriod {
		t.Errorf("defaults %+v, %v", o.HA, err)
	}
}

// TestSessionKeyFile: a missing or short key file stops the start-up with
// a message naming the flag; a good one is read.
func TestSessionKeyFile(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(short, []byte("too short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (haOptions{SessionKeyFile: filepath.Join(dir, "missing")}).sessionKey(); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "--session-key-file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := (haOptions{SessionKeyFile: short}).sessionKey(); !errors.Is(err, web.ErrSessionKeyTooShort) || !strings.Contains(err.Error(), "--session-key-file") {
		t.Errorf("short file: %v", err)
	}
	if k, err := (haOptions{SessionKeyFile: good}).sessionKey(); err != nil || len(k) != 32 {
		t.Errorf("good file: %d bytes, %v", len(k), err)
	}
	if k, err := (haOptions{}).sessionKey(); k != nil || err != nil {
		t.Errorf("no file: %v, %v; want nil, nil (a random key)", k, err)
	}
}
