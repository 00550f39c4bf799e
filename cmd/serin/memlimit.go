package main

import (
	"fmt"
	"strconv"
)

// memoryLimitEnv names the container's memory limit in bytes. The
// manifests (deploy/deployment.yaml, the Helm chart) set it from the
// downward API (resourceFieldRef limits.memory).
const memoryLimitEnv = "SERIN_MEMORY_LIMIT"

// softMemoryLimit is the Go runtime's soft memory limit for a container
// limited to the bytes in SERIN_MEMORY_LIMIT: 90% of it, so that the
// garbage collector works harder as the heap nears the limit instead of
// letting it grow to twice what is live (GOGC's default) until the kernel
// kills the process. 0 means none to set: GOMEMLIMIT, when set, is the
// operator's own choice, and without a limit there is nothing to keep
// under. A value that is not a positive byte count is an error.
func softMemoryLimit(getenv func(string) string) (int64, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	v := getenv(memoryLimitEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want the container's memory limit in bytes, e.g. 268435456", memoryLimitEnv, v)
	}
	return n / 10 * 9, nil
}
