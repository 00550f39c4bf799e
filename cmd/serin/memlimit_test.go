package main

import (
	"strings"
	"testing"
)

func TestSoftMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    int64
		wantErr string
	}{
		{map[string]string{}, 0, ""},
		{map[string]string{memoryLimitEnv: "268435456"}, 241591905, ""}, // 256 MiB: 90%, to the byte below
		{map[string]string{memoryLimitEnv: "268435456", "GOMEMLIMIT": "200MiB"}, 0, ""},
		{map[string]string{memoryLimitEnv: "256Mi"}, 0, "want the container's memory limit in bytes"},
		{map[string]string{memoryLimitEnv: "0"}, 0, "SERIN_MEMORY_LIMIT=\"0\""},
		{map[string]string{memoryLimitEnv: "-5"}, 0, "in bytes"},
	} {
		got, err := softMemoryLimit(func(k string) string { return tc.env[k] })
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("softMemoryLimit(%v) = %d, %v; want %d, error containing %q", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}
