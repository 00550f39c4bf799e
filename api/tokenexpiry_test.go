package api_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/serin-dev/serin/api"
)

func jwtWith(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

func TestTokenExpiry(t *testing.T) {
	for _, tc := range []struct {
		name, token string
		want        time.Time // zero: no expiry
	}{
		{"bound service-account token", jwtWith(`{"aud":["serin"],"exp":1767225600,"sub":"system:serviceaccount:a:b"}`), time.Unix(1767225600, 0)},
		{"fractional exp", jwtWith(`{"exp":1767225600.5}`), time.Unix(1767225600, 5e8)},
		{"padded claims", "a." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1767225600}`)) + ".c", time.Unix(1767225600, 0)},
		{"no exp", jwtWith(`{"sub":"x"}`), time.Time{}},
		{"exp as a string", jwtWith(`{"exp":"1767225600"}`), time.Time{}},
		{"exp zero", jwtWith(`{"exp":0}`), time.Time{}},
		{"exp negative", jwtWith(`{"exp":-5}`), time.Time{}},
		{"exp absurd", jwtWith(`{"exp":1e300}`), time.Time{}},
		{"claims not JSON", "a.bm90IGpzb24.c", time.Time{}},
		{"claims not base64", "a.!!!.c", time.Time{}},
		{"two parts", "a.b", time.Time{}},
		{"static token", "op-token-0123456789", time.Time{}},
		{"empty", "", time.Time{}},
	} {
		got, ok := api.TokenExpiry(tc.token)
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
			t.Errorf("%s: TokenExpiry = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}
