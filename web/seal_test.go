package web

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api"
)

func testSessions(t *testing.T, key string, now func() time.Time) *sessions {
	t.Helper()
	keys, err := deriveKeys([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return newSessions(keys, time.Hour, 10, now)
}

const (
	testKey  = "0123456789abcdef0123456789abcdef"
	otherKey = "fedcba9876543210fedcba9876543210"
)

// TestSealedSessions: a session cookie opens only under the key that
// sealed it, unchanged, and does not contain its token.
func TestSealedSessions(t *testing.T) {
	s := testSessions(t, testKey, time.Now)
	const token = "eyJhbGciOi.the-token.sig"
	value, sess, err := s.create(api.User{Name: "olga", Groups: []string{"ops"}}, token)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(value)
	if strings.Contains(value, token) || bytes.Contains(raw, []byte(token)) || bytes.Contains(raw, []byte("olga")) {
		t.Error("the sealed session shows its token or user")
	}
	got, err := s.open(value)
	if err != nil || got.token != token || got.user.Name != "olga" || got.csrf != sess.csrf || got.id != sess.id {
		t.Errorf("open = %+v, %v; want the session created", got, err)
	}
	// Another key (another deployment) cannot open it.
	if got, err := testSessions(t, otherKey, time.Now).open(value); err == nil {
		t.Errorf("open under another key = %+v, want an error", got)
	}
	// Any changed byte, a truncation, another format byte: refused.
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		if _, err := s.open(base64.RawURLEncoding.EncodeToString(bad)); err == nil {
			t.Fatalf("byte %d changed: opened", i)
		}
	}
	for _, bad := range []string{value[:10], "", "!!not base64!!", base64.RawURLEncoding.EncodeToString(raw[:13])} {
		if _, err := s.open(bad); err == nil {
			t.Errorf("open(%q): no error", bad)
		}
	}
	again, _, _ := s.create(api.User{Name: "olga"}, token)
	if again == value {
		t.Error("two sessions seal to one value")
	}
}

// TestDerivedKeysDiffer: the session and login form keys come from one
// secret by distinct labels, and a short secret is refused.
func TestDerivedKeysDiffer(t *testing.T) {
	k, err := deriveKeys([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	o, _ := deriveKeys([]byte(otherKey))
	if bytes.Equal(k.login, o.login) || bytes.Contains([]byte(testKey), k.login) {
		t.Error("the login key does not depend on the secret")
	}
	// A login form token is no session key: the session cipher refuses a
	// value sealed under the login key.
	lk, _ := deriveKeys(k.login)
	v, _, _ := newSessions(lk, time.Hour, 1, time.Now).create(api.User{Name: "x"}, "t")
	if _, err := newSessions(k, time.Hour, 1, time.Now).open(v); err == nil {
		t.Error("a value sealed under a key derived from the login key opens as a session")
	}
	if _, err := deriveKeys([]byte("short")); !errors.Is(err, ErrSessionKeyTooShort) {
		t.Errorf("deriveKeys(short) = %v, want ErrSessionKeyTooShort", err)
	}
}

func TestReadSessionKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k, err := ReadSessionKey(write("good", testKey))
	if err != nil || string(k) != testKey {
		t.Errorf("key = %q, %v; want the file's bytes", k, err)
	}
	// Random bytes may end in a line break: it is part of the key.
	binary := strings.Repeat("\x00", 31) + "\n"
	if k, err := ReadSessionKey(write("binary", binary)); err != nil || string(k) != binary {
		t.Errorf("32 bytes ending in a newline = %q, %v; want all 32", k, err)
	}
	if _, err := ReadSessionKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	p := write("short", "0123456789abcdef0123456789abcde") // 31 bytes
	if _, err := ReadSessionKey(p); !errors.Is(err, ErrSessionKeyTooShort) || !strings.Contains(err.Error(), p) {
		t.Errorf("short key: %v, want ErrSessionKeyTooShort naming the file", err)
	}
	if _, err := ReadSessionKey(write("huge", strings.Repeat("k", 5000))); err == nil {
		t.Error("a 5000-byte file was taken as a key")
	}
}

// TestSessionNotesAreBounded: the notes of one replica stay within the
// limit, and a sign-out is the last thing forgotten.
func TestSessionNotesAreBounded(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	s := testSessions(t, testKey, func() time.Time { return now })
	s.limit = 3
	var all []*session
	for range 3 {
		v, _, err := s.create(api.User{Name: "olga"}, "tok")
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s.get(v))
	}
	s.end(all[0])
	now = now.Add(time.Minute)
	s.claimCheck(all[1], now, time.Second)
	s.claimCheck(all[2], now, time.Second)
	for range 5 { // new sessions evict the checked ones, not the sign-out
		v, _, _ := s.create(api.User{Name: "olga"}, "tok")
		s.claimCheck(s.get(v), now, time.Second)
	}
	if len(s.notes) > 3 {
		t.Errorf("%d notes, want at most 3", len(s.notes))
	}
	if n, ok := s.notes[all[0].id]; !ok || !n.ended {
		t.Error("the sign-out was forgotten before the checks")
	}
}
