package web

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed sign-ins are throttled per client address: a burst of
// loginBurst, then one more every loginRefill. A token is a long random
// secret, so this is not what keeps it from being guessed; it keeps a
// script from turning the login form into a stream of TokenReviews
// against the API server. Successful sign-ins cost nothing.
const (
	loginBurst   = 10
	loginRefill  = 3 * time.Second
	maxThrottled = 10000 // client addresses remembered; beyond, the fullest are forgotten
)

// throttle counts failed sign-ins per client address.
type throttle struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[string]*rate.Limiter
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, by: map[string]*rate.Limiter{}}
}

// clientOf is the address the request came from, without its port.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// wait returns how long the client must wait before its next attempt, 0
// when it may try now.
func (t *throttle) wait(client string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.by[client]
	if l == nil {
		return 0
	}
	missing := 1 - l.TokensAt(t.now())
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing * float64(loginRefill))
}

// failed records a failed attempt.
func (t *throttle) failed(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	l := t.by[client]
	if l == nil {
		if len(t.by) >= maxThrottled {
			t.prune(now)
		}
		l = rate.NewLimiter(rate.Every(loginRefill), loginBurst)
		t.by[client] = l
	}
	l.AllowN(now, 1)
}

// prune forgets the clients whose bucket has refilled, which are the
// same as new ones; if none has, it forgets them all rather than grow.
func (t *throttle) prune(now time.Time) {
	for c, l := range t.by {
		if l.TokensAt(now) >= loginBurst {
			delete(t.by, c)
		}
	}
	if len(t.by) >= maxThrottled {
		clear(t.by)
	}
}
