package api

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// maxClaimsBytes bounds the claims TokenExpiry decodes.
const maxClaimsBytes = 16 << 10

// TokenExpiry returns the "exp" claim of a token shaped like a JWT (a
// bound service-account token, an OIDC ID token), without verifying its
// signature. Use it only to end a session or a cache entry sooner, never
// later: the token must have been accepted by the API server first, which
// did verify it. ok is false for any other token (a static token, a
// malformed JWT, a JWT without exp).
func TokenExpiry(token string) (exp time.Time, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > maxClaimsBytes {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	// NumericDate: seconds since the epoch; refuse what time.Unix cannot
	// hold sensibly (past the year 5000).
	if json.Unmarshal(b, &claims) != nil || claims.Exp == nil || *claims.Exp <= 0 || *claims.Exp > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(*claims.Exp)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
