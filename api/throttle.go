package api

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed authentications are throttled per client address: a burst of
// failureBurst, then one more every failureRefill. A token is a long
// random secret, so this is not what keeps it from being guessed; it
// keeps a script from turning the API or the login form into a stream of
// TokenReviews against the API server. Successful authentications cost
// nothing.
const (
	failureBurst  = 10
	failureRefill = 3 * time.Second
	maxThrottled  = 10000 // client addresses remembered; beyond, the fullest are forgotten
)

// FailureThrottle counts failed authentications per client address, for
// the API's bearer tokens and the console's login form alike: share one
// between them so that a client gets one budget, not one per door.
type FailureThrottle struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[string]*rate.Limiter
}

// NewFailureThrottle returns a FailureThrottle on the clock now (nil
// means time.Now).
func NewFailureThrottle(now func() time.Time) *FailureThrottle {
	if now == nil {
		now = time.Now
	}
	return &FailureThrottle{now: now, by: map[string]*rate.Limiter{}}
}

// ClientAddr is the address r came from, without its port: the TCP peer.
// X-Forwarded-For is not trusted, since any client can set it; behind a
// proxy, every client is the proxy's address.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Wait returns how long the client must wait before its next attempt, 0
// when it may try now.
func (t *FailureThrottle) Wait(client string) time.Duration {
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
	return time.Duration(missing * float64(failureRefill))
}

// Failed records a failed attempt.
func (t *FailureThrottle) Failed(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	l := t.by[client]
	if l == nil {
		if len(t.by) >= maxThrottled {
			t.prune(now)
		}
		l = rate.NewLimiter(rate.Every(failureRefill), failureBurst)
		t.by[client] = l
	}
	l.AllowN(now, 1)
}

// prune forgets the clients whose bucket has refilled, which are the
// same as new ones; if none has, it forgets them all rather than grow.
func (t *FailureThrottle) prune(now time.Time) {
	for c, l := range t.by {
		if l.TokensAt(now) >= failureBurst {
			delete(t.by, c)
		}
	}
	if len(t.by) >= maxThrottled {
		clear(t.by)
	}
}

// RetryAfter is d as the value of a Retry-After header: whole seconds,
// rounded up.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}
