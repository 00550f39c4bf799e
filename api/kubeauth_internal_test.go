package api

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// TestRefusedTokensStayBounded: the cache of refused tokens never holds
// more than maxFailedTokens, and a full cache still takes new refusals.
func TestRefusedTokensStayBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := &KubeAuth{o: KubeAuthOptions{FailedTTL: time.Minute, Now: func() time.Time { return now }}, failed: map[[sha256.Size]byte]time.Time{}}
	for i := range maxFailedTokens + 100 {
		k.refused(sha256.Sum256(fmt.Appendf(nil, "token-%d", i)))
		if len(k.failed) > maxFailedTokens {
			t.Fatalf("%d refused tokens held after %d refusals, want at most %d", len(k.failed), i+1, maxFailedTokens)
		}
	}
	last := sha256.Sum256(fmt.Appendf(nil, "token-%d", maxFailedTokens+99))
	if !k.refusedRecently(last) {
		t.Error("the newest refusal was forgotten")
	}
	now = now.Add(time.Minute)
	if k.refusedRecently(last) {
		t.Error("a refusal is remembered past its TTL")
	}
}
