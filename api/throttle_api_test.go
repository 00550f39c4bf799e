package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/serin-dev/serin/api"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address ip, so that one test can be several clients.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}}
}

// TestAPIThrottlesFailedTokens sends random bearer tokens from one
// address to the API over KubeAuth on the real API server: after the
// burst, they are refused with 429 and Retry-After without a
// TokenReview. Another address is not affected.
func TestAPIThrottlesFailedTokens(t *testing.T) {
	e := getEnv(t)
	cc := &countingClient{Client: e.kube}
	auth, err := api.NewKubeAuth(api.KubeAuthOptions{Client: cc})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Store: e.store, Writer: api.KubeWriter{Client: e.kube}, Authenticator: auth, Authorizer: auth})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	get := func(c *http.Client, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v1/rollouts", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	attacker := clientFrom("127.0.0.1")
	statuses := map[int]int{}
	for i := range 30 {
		resp := get(attacker, fmt.Sprintf("random-token-%d", i))
		statuses[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	if statuses[http.StatusUnauthorized] != 10 || statuses[http.StatusTooManyRequests] != 20 {
		t.Errorf("statuses of 30 random tokens = %v, want 10 × 401 then 20 × 429", statuses)
	}
	if n := cc.creates.Load(); n != 10 {
		t.Errorf("%d TokenReviews for 30 random tokens, want 10", n)
	}
	// A valid token from the throttled address waits too (it is not
	// checked); from another address it is served at once.
	if resp := get(attacker, st.Token("alice")); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("alice from the throttled address: %s, want 429", resp.Status)
	}
	if resp := get(clientFrom("127.0.0.2"), st.Token("alice")); resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("alice from another address: %s, want her token checked", resp.Status)
	}
}
