package jaeger

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// Shared searches.
//
// The runner asks for [since, until] on every tick of every rollout, each
// rollout with its own now, its since the until of its previous call and
// its until a lag behind its now (so that spans on their way to Jaeger are
// found). Ranges that differ by milliseconds could share nothing, and an
// answer cached from an earlier, shorter range would either hand a caller
// traces from before its since again or lose those between the cached end
// and its until: its next since is this until, so nothing would bring them
// back.
//
// So a Source aligns both ends down to CacheTTL steps and answers [since,
// until] with the traces whose first span of the searched service started
// in [align(since), align(until)). Consecutive calls of one caller tile the
// time line, since each since is the previous until: every trace is
// counted once, in the call that follows the end of its step, and none
// from before a since is counted again. Every caller whose until falls in
// the same step shares one search (key: name, limit, aligned end), which
// started no later than its aligned since and is filtered to it. A search
// that serves a caller was started by a caller whose until was in the same
// step, so it was sent at least that caller's lag after the end of the
// step: every span that reached Jaeger within the lag of its start is in
// it, as the runner's lag promises.
// A caller whose until is still in the future (a test polling a fixed
// range) is answered from a search at most CacheTTL old.
//
// Jaeger returns the most recent traces of a range first, so a search cut
// off at its limit still holds the most recent traces of any later-starting
// part of its range.

// Backoff of a service name whose searches find nothing or fail, and of
// Jaeger's service list when it cannot be had: the first delay, doubled per
// further failure, up to the cap.
const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
)

// searchKey identifies the searches whose answers can serve one another's
// callers.
type searchKey struct {
	name  string
	limit int
	end   time.Time // aligned
}

// search is one search of Jaeger, in flight or done, with the callers
// waiting on it. Fields other than key, start, sent and done are guarded
// by searchCache.mu until done is closed, and read-only after.
type search struct {
	key    searchKey
	start  time.Time     // aligned; callers whose aligned since is earlier are not served
	sent   time.Time     // when it was started: its answer is at least this fresh
	done   chan struct{} // closed once traces and err are set
	cancel context.CancelFunc

	traces    []foundTrace
	err       error
	waiters   int  // callers that joined before it finished
	finished  bool // traces and err are set
	abandoned bool // every waiter left before it finished
}

// foundTrace is one trace of a search, placed in time by the start of its
// first span of the searched service: the span by which Jaeger matched it,
// and the one that decides which step it is counted in.
type foundTrace struct {
	id    string
	first int64 // Unix nanoseconds
	spans []span
}

// searchCache holds the searches that may still serve a caller and the
// backoff of each service name.
type searchCache struct {
	mu       sync.Mutex
	searches map[searchKey]*search
	backoff  map[string]*backoff
	swept    time.Time
}

// backoff is how a service that keeps finding nothing, or failing, is asked
// less and less often: after n failures in a row it is not asked again for
// backoffMin·2ⁿ⁻¹, at most backoffMax.
type backoff struct {
	fails int
	next  time.Time // not asked again before
	err   error     // the last failure; nil when it found nothing
	// from is where the range of a search that found nothing began: it
	// says nothing of earlier traces, so a caller whose range begins
	// earlier is searched all the same.
	from time.Time
}

// fail records one more failure at now: err, or nil for nothing found.
func (b *backoff) fail(now time.Time, err error) {
	b.next = now.Add(backoffDelay(b.fails))
	b.fails++
	b.err = err
}

// backoffDelay is the delay after fails earlier failures.
func backoffDelay(fails int) time.Duration {
	if fails >= 8 { // 2⁸ s is past any cap, and the shift cannot overflow
		return backoffMax
	}
	return min(backoffMin<<fails, backoffMax)
}

// align is t down to the CacheTTL grid, in UTC so that the same instant
// is the same search key whatever the caller's time zone.
func (s *Source) align(t time.Time) time.Time { return t.Truncate(s.step).UTC() }

// traces returns, by trace ID, the traces of service name whose first span
// of name started in [from, to) (aligned times), from a search of at most
// limit traces shared with every caller it can serve. It returns none
// without asking Jaeger when the range is empty or name is backed off after
// finding nothing, and the last error when it is backed off after a
// failure. A caller whose ctx ends stops waiting, and the search is
// cancelled once no caller waits for it.
func (s *Source) traces(ctx context.Context, name string, from, to time.Time, limit int) (map[string][]span, error) {
	if !from.Before(to) {
		// No step has ended since the previous call: the next call's
		// range starts at the same aligned time and holds these traces.
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("jaeger: search for traces of %s: %w: %w", name, analysis.ErrUnavailable, context.Cause(ctx))
	}
	f, err := s.join(ctx, searchKey{name: name, limit: limit, end: to}, from)
	if f == nil {
		return nil, err
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		s.leave(f)
		return nil, fmt.Errorf("jaeger: waiting for the search for traces of %s: %w: %w", name, analysis.ErrUnavailable, context.Cause(ctx))
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.within(from, to), nil
}

// join returns the search that answers key from from on: one in flight, or
// done less than CacheTTL ago, that started no later than from; else a new
// one, unless key.name is backed off. Then it returns nil and the last
// failure's error, or nil after nothing was found.
//
// Backing off after nothing was found is a bet that a quiet service stays
// quiet: the caller is told there are no traces, and moves its since past
// them, so traces a service starts to send during the backoff are not
// counted. That is the price of not searching a thousand quiet services
// every tick; it never biases canary against stable.
func (s *Source) join(ctx context.Context, key searchKey, from time.Time) (*search, error) {
	c := &s.searches
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.now()
	c.sweep(now, s.step)
	if f := c.searches[key]; f != nil && !f.start.After(from) && (!f.finished || now.Sub(f.sent) < s.step) {
		f.waiters++
		s.counts.shared.Add(1)
		return f, nil
	}
	if b := c.backoff[key.name]; b != nil && now.Before(b.next) && (b.err != nil || !from.Before(b.from)) {
		s.counts.skipped.Add(1)
		if b.err != nil {
			return nil, fmt.Errorf("%w (%s is not searched again before %s)", b.err, key.name, b.next.UTC().Format(time.RFC3339))
		}
		return nil, nil
	}
	f := &search{key: key, start: from, sent: now, done: make(chan struct{}), waiters: 1}
	// The search is the waiters', not the first caller's: it outlives that
	// caller's ctx, keeping its values, until no one waits.
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	if c.searches == nil {
		c.searches, c.backoff = map[searchKey]*search{}, map[string]*backoff{}
	}
	c.searches[key] = f // a narrower search still in flight keeps serving its own waiters
	go s.run(fctx, f)
	return f, nil
}

// run carries out f, then records for the backoff of its service name
// whether it found anything. A search no one waited for any more says
// nothing about the service.
func (s *Source) run(ctx context.Context, f *search) {
	defer f.cancel()
	spans, err := s.find(ctx, f.key.name, f.start, f.key.end, f.key.limit)
	traces := placeTraces(f.key.name, spans)
	c := &s.searches
	c.mu.Lock()
	f.traces, f.err, f.finished = traces, err, true
	switch {
	case f.abandoned:
	case err != nil || len(traces) == 0:
		b := c.backoff[f.key.name]
		if b == nil {
			b = &backoff{}
			c.backoff[f.key.name] = b
		}
		b.fail(s.now(), err)
		b.from = f.start
	default:
		delete(c.backoff, f.key.name)
	}
	if err != nil && c.searches[f.key] == f {
		delete(c.searches, f.key) // the backoff answers for it
	}
	c.mu.Unlock()
	close(f.done)
}

// leave records that a waiter of f stopped waiting, and cancels f when it
// was the last one.
func (s *Source) leave(f *search) {
	c := &s.searches
	c.mu.Lock()
	defer c.mu.Unlock()
	f.waiters--
	if f.waiters > 0 || f.finished {
		return
	}
	f.abandoned = true
	f.cancel()
	if c.searches[f.key] == f {
		delete(c.searches, f.key)
	}
}

// sweep drops, at most once per ttl, the searches that can serve no one
// any more, and the backoff of names not asked for long after it ended.
// The caller holds c.mu.
func (c *searchCache) sweep(now time.Time, ttl time.Duration) {
	if now.Sub(c.swept) < ttl {
		return
	}
	c.swept = now
	for k, f := range c.searches {
		if f.finished && now.Sub(f.sent) >= ttl {
			delete(c.searches, k)
		}
	}
	for name, b := range c.backoff {
		if now.Sub(b.next) > backoffMax {
			delete(c.backoff, name)
		}
	}
}

// within returns, by trace ID, f's traces placed in [from, to).
func (f *search) within(from, to time.Time) map[string][]span {
	lo, hi := from.UnixNano(), to.UnixNano()
	out := map[string][]span{}
	for _, t := range f.traces {
		if t.first >= lo && t.first < hi {
			out[t.id] = t.spans
		}
	}
	return out
}

// placeTraces groups a search's spans by trace and places each trace by
// its first span of service. A trace without one, which Jaeger should not
// return, is placed by its first span.
func placeTraces(service string, spans []span) []foundTrace {
	byTrace := groupByTrace(spans)
	out := make([]foundTrace, 0, len(byTrace))
	for id, trace := range byTrace {
		first, earliest := int64(math.MaxInt64), int64(math.MaxInt64)
		for _, sp := range trace {
			earliest = min(earliest, sp.StartNs)
			if sp.Service == service {
				first = min(first, sp.StartNs)
			}
		}
		if first == math.MaxInt64 {
			first = earliest
		}
		out = append(out, foundTrace{id: id, first: first, spans: trace})
	}
	return out
}
