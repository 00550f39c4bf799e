package main

import (
	"slices"
	"strings"
	"testing"
)

func TestTokenAudiencesFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
		err  string
	}{
		{[]string{"--no-analysis", "--auth", "kubernetes"}, nil, ""},
		{[]string{"--no-analysis", "--auth", "kubernetes", "--token-audiences", "serin"}, []string{"serin"}, ""},
		{[]string{"--no-analysis", "--auth", "kubernetes", "--token-audiences", "serin, https://serin.example"}, []string{"serin", "https://serin.example"}, ""},
		{[]string{"--no-analysis", "--auth", "kubernetes", "--token-audiences", "serin,,other"}, nil, "audience 2 is empty"},
		{[]string{"--no-analysis", "--auth", "kubernetes", "--token-audiences", "serin,"}, nil, "audience 2 is empty"},
		{[]string{"--no-analysis", "--auth", "static", "--api-token-file", "/x", "--token-audiences", "serin"}, nil, "only used with --auth=kubernetes"},
		{[]string{"--no-analysis", "--token-audiences", "serin"}, nil, "only used with --auth=kubernetes"},
	} {
		o, err := parseControllerFlags(tc.args)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.err)
		case tc.err == "" && !slices.Equal(o.TokenAudiences, tc.want):
			t.Errorf("%v: audiences %q, want %q", tc.args, o.TokenAudiences, tc.want)
		}
	}
}
