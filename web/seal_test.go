package web

import (
	"bytes"
	"testing"
)

// TestSealedTokens: a session's token opens only with the cookie that
// sealed it, and the sealed form does not contain it.
func TestSealedTokens(t *testing.T) {
	id, other := "cookie-value-one", "cookie-value-two"
	const token = "eyJhbGciOi.the-token.sig"
	sealed, err := seal(id, token)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(token)) {
		t.Error("the sealed token contains the token")
	}
	if got, err := open(id, sealed); err != nil || got != token {
		t.Errorf("open with the sealing cookie = %q, %v", got, err)
	}
	if got, err := open(other, sealed); err == nil {
		t.Errorf("open with another cookie = %q, want an error", got)
	}
	if _, err := open(id, sealed[:4]); err == nil {
		t.Error("open of a truncated seal: no error")
	}
	again, _ := seal(id, token)
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one token are equal: the nonce is not fresh")
	}
}
