package api_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serin-dev/serin/api"
)

func TestStaticTokens(t *testing.T) {
	st, err := api.ParseStaticTokens(strings.NewReader("# demo\n\nt1,olga,operator\n t2 , victor , viewer\n"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.Authenticate(t.Context(), "t2")
	if err != nil || u.Name != "victor" {
		t.Fatalf("Authenticate(t2) = %v, %v", u, err)
	}
	if _, err := st.Authenticate(t.Context(), "nope"); !errors.Is(err, api.ErrUnauthenticated) {
		t.Errorf("unknown token: err = %v", err)
	}
	for _, tc := range []struct {
		user string
		a    api.Action
		want bool
	}{
		{"victor", api.Action{Verb: "get"}, true},
		{"victor", api.Action{Verb: "list"}, true},
		{"victor", api.Action{Verb: "patch", Subresource: "abort"}, false},
		{"victor", api.Action{Verb: "create"}, false},
		{"olga", api.Action{Verb: "create"}, true},
		{"olga", api.Action{Verb: "patch", Subresource: "abort"}, true},
		{"mallory", api.Action{Verb: "get"}, false},
	} {
		if got, _ := st.Authorize(t.Context(), api.User{Name: tc.user}, tc.a); got != tc.want {
			t.Errorf("Authorize(%s, %+v) = %v, want %v", tc.user, tc.a, got, tc.want)
		}
	}
}

func TestStaticTokensRefused(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"two fields", "t1,olga,operator\nt2,victor\n", "line 2"},
		{"four fields", "t1,olga,operator,extra\n", "line 1"},
		{"unknown role", "# c\nt1,olga,admin\n", "line 2: unknown role"},
		{"empty token", ",olga,operator\n", "empty token"},
		{"empty user", "t1,,viewer\n", "empty user"},
		{"duplicate token", "secret1,olga,operator\nsecret1,victor,viewer\n", "line 2: duplicate token"},
		{"two roles", "t1,olga,operator\nt2,olga,viewer\n", "line 2"},
		{"empty file", "# nothing\n", "no tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := api.LoadStaticTokens(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret1") {
				t.Errorf("error reveals a token: %v", err)
			}
		})
	}
	if _, err := api.LoadStaticTokens(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
}
