package main

import (
	"fmt"
	"strings"
)

// parseAudiences parses --token-audiences: comma-separated, each one
// non-empty once trimmed. "" is no audience: the API server's own.
func parseAudiences(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for i, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("--token-audiences %q: audience %d is empty", s, i+1)
		}
		out = append(out, a)
	}
	return out, nil
}
