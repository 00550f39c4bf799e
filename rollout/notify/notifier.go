package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/serin-dev/serin/rollout"
)

// Options tune a Notifier. Zero fields take the defaults.
type Options struct {
	// Client sends the requests; default a client that does not follow
	// redirects (a webhook that redirects is misconfigured, and a
	// redirected POST loses its body).
	Client *http.Client
	// Timeout bounds each send to one channel; default 10s.
	Timeout time.Duration
	// Now tells the time, for Retry-After dates and webhook timestamps;
	// default time.Now.
	Now func() time.Time
	// Queue tunes each channel's queue: its size, retries and waits.
	Queue QueueOptions
	// Log receives delivery failures, retries and drops; default
	// slog.Default(), since they happen off any caller's path.
	Log *slog.Logger
}

// Notifier fans an event out to the channels that want it. Each channel
// has its own bounded queue and worker, so a channel that is slow, or
// waiting out a Retry-After, delays only its own later events: never
// another channel's, and never the engine. It implements rollout.Notifier.
//
// Retry contract: a send to one channel says whether its failure is worth
// retrying (5xx, 429, network errors and timeouts are; other 4xx and 3xx
// are not) and how long the receiver asked to wait (Retry-After). The
// channel's worker retries on that word alone, so the engine's queue, in
// front, only ever hands events over.
type Notifier struct {
	channels []Channel
	links    links
	client   *http.Client
	timeout  time.Duration
	now      func() time.Time
	queues   map[string]*channelQueue

	// life bounds the workers: they outlive every Notify call, and end
	// on Close.
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

var _ rollout.Notifier = (*Notifier)(nil)

// New returns a Notifier for cfg. Its workers run until Close, or until
// the context given to Start ends.
func New(cfg *Config, o Options) (*Notifier, error) {
	if cfg == nil {
		return nil, errors.New("notify: nil config")
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	n := &Notifier{channels: slices.Clone(cfg.Channels), links: links{cfg.ConsoleURL, cfg.JaegerURL},
		client: o.Client, timeout: o.Timeout, now: o.Now, queues: map[string]*channelQueue{}}
	// Not a caller's context: the workers belong to the Notifier.
	n.life, n.stop = context.WithCancel(context.Background())
	qo := o.Queue.withDefaults()
	for _, c := range n.channels {
		n.queues[c.Name] = newChannelQueue(c, qo, o.Log, n.sendOne)
	}
	return n, nil
}

// Channels returns the configured channel names, for validating the
// channels a Rollout names.
func (n *Notifier) Channels() []string {
	names := make([]string, len(n.channels))
	for i, c := range n.channels {
		names[i] = c.Name
	}
	return names
}

// Notify queues ev for every channel that wants it, restricted to
// ev.Channels when that is not empty, and returns at once: each channel's
// worker delivers it, retrying there. An event whose id (EventID) a
// channel has already queued or delivered is not queued again. The only
// error is a *DeliveryError naming channels that ev names but that are not
// configured, which is not worth retrying.
func (n *Notifier) Notify(_ context.Context, ev rollout.Event) (bool, error) {
	targets, errs := n.targets(ev)
	if len(targets) > 0 {
		m := build(ev, n.links)
		for _, ch := range targets {
			n.queues[ch.Name].push(n.life, &n.wg, m)
		}
	}
	if len(errs) == 0 {
		return false, nil
	}
	return false, &DeliveryError{Rollout: ev.Namespace + "/" + ev.Name, Kind: ev.Kind, Errs: errs}
}

// Send delivers ev once to every channel that wants it, all at once, and
// waits: no queue, no retry, no deduplication. It is for tools and tests
// that want the answer; the engine uses Notify. retry is true when at
// least one channel failed in a way worth retrying; err is a
// *DeliveryError whose Pending names those channels.
func (n *Notifier) Send(ctx context.Context, ev rollout.Event) (bool, error) {
	targets, errs := n.targets(ev)
	if len(targets) > 0 {
		m := build(ev, n.links)
		results := make([]*SendError, len(targets))
		var wg sync.WaitGroup
		for i, ch := range targets {
			wg.Go(func() { results[i] = n.send(ctx, ch, m) })
		}
		wg.Wait()
		for _, e := range results {
			if e != nil {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) == 0 {
		return false, nil
	}
	de := &DeliveryError{Rollout: ev.Namespace + "/" + ev.Name, Kind: ev.Kind, Errs: errs}
	return len(de.Pending()) > 0, de
}

// Start makes the Notifier a controller-runtime Runnable: it returns when
// ctx ends, after closing the Notifier. Without it the workers run until
// Close or the end of the process.
func (n *Notifier) Start(ctx context.Context) error {
	<-ctx.Done()
	n.Close()
	return nil
}

// Close drops what is queued, cuts short any send or retry wait, and waits
// for the workers to end. Events notified afterwards are dropped.
func (n *Notifier) Close() {
	for _, q := range n.queues {
		q.close()
	}
	n.stop()
	n.wg.Wait()
}

// Stats reports each channel's queue, in configuration order.
func (n *Notifier) Stats() []ChannelStats {
	out := make([]ChannelStats, len(n.channels))
	for i, c := range n.channels {
		out[i] = n.queues[c.Name].snapshot()
	}
	return out
}

// sendOne is one attempt at one channel, for its queue: whether a failure
// is worth retrying, and the receiver's Retry-After.
func (n *Notifier) sendOne(ctx context.Context, ch Channel, m message) (retry bool, after time.Duration, err error) {
	if se := n.send(ctx, ch, m); se != nil {
		return se.Retry, se.After, se
	}
	return false, 0, nil
}

// targets returns the channels ev goes to, and an error for each channel
// ev names that is not configured.
func (n *Notifier) targets(ev rollout.Event) ([]Channel, []*SendError) {
	var out []Channel
	var errs []*SendError
	for _, name := range ev.Channels {
		if !slices.ContainsFunc(n.channels, func(c Channel) bool { return c.Name == name }) {
			errs = append(errs, &SendError{Channel: name, Err: errors.New("no such notification channel")})
		}
	}
	for _, c := range n.channels {
		if c.Events[ev.Kind] && (len(ev.Channels) == 0 || slices.Contains(ev.Channels, c.Name)) {
			out = append(out, c)
		}
	}
	return out, errs
}

// send POSTs m to one channel, bounded by the per-send timeout. It returns
// nil on a 2xx answer.
func (n *Notifier) send(ctx context.Context, ch Channel, m message) *SendError {
	now := n.now()
	body, err := render(ch.Type, m, now)
	if err != nil {
		return &SendError{Channel: ch.Name, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.URL.Reveal(), bytes.NewReader(body))
	if err != nil {
		return &SendError{Channel: ch.Name, Err: scrub(err, ch.URL)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "serin-notify/1")
	if ch.Type == TypeWebhook {
		req.Header.Set("X-Serin-Event", string(m.Event.Kind))
		req.Header.Set("X-Serin-Delivery", m.ID)
		req.Header.Set("X-Serin-Timestamp", unixHeader(now))
		req.Header.Set("X-Serin-Signature", Sign([]byte(ch.Key.Reveal()), body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		err = scrub(err, ch.URL)
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v: %w", n.timeout, err)
		}
		return &SendError{Channel: ch.Name, Retry: true, Err: err}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	retry, after := classify(resp.StatusCode, resp.Header.Get("Retry-After"), n.now())
	return &SendError{Channel: ch.Name, Status: resp.StatusCode, Retry: retry, After: after,
		Err: fmt.Errorf("HTTP %d: %s", resp.StatusCode, redactIn(oneLine(string(snippet)), ch.URL))}
}

// classify says whether an HTTP status is worth retrying, and after how
// long: 429 and 5xx are, honouring Retry-After; other 4xx (and 3xx) are
// not, since the same request will fail the same way.
func classify(status int, retryAfter string, now time.Time) (retry bool, after time.Duration) {
	switch {
	case status >= 200 && status < 300:
		return false, 0
	case status == http.StatusTooManyRequests || status >= 500:
		return true, parseRetryAfter(retryAfter, now)
	}
	return false, 0
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date. Anything else, or a date in the past, is zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// scrub removes the URL from a client error. *url.Error quotes the whole
// URL, and a webhook URL is a credential: keep only the cause. If the
// cause still quotes the URL, withhold it.
func scrub(err error, u Secret) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if s := err.Error(); redactIn(s, u) != s {
		return errors.New("request failed (details withheld: they quote the URL)")
	}
	return err
}

// redactIn replaces the URL, and its path and query, wherever they occur
// in s.
func redactIn(s string, u Secret) string {
	raw := u.Reveal()
	olds := []string{raw}
	if p, err := url.Parse(raw); err == nil {
		if len(p.EscapedPath()) > 1 {
			olds = append(olds, p.EscapedPath(), p.Path)
		}
		if p.RawQuery != "" {
			olds = append(olds, p.RawQuery)
		}
	}
	for _, o := range olds {
		if o != "" {
			s = strings.ReplaceAll(s, o, redacted)
		}
	}
	return s
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(empty body)"
	}
	return truncate(s, 200)
}

// SendError is one channel's failed delivery. Its message never contains
// the channel's URL.
type SendError struct {
	Channel string
	// Status is the HTTP status; 0 when there was no answer.
	Status int
	// Retry says whether the failure is worth retrying.
	Retry bool
	// After is the receiver's Retry-After; zero if none.
	After time.Duration
	Err   error
}

// Error names the channel and the cause.
func (e *SendError) Error() string { return fmt.Sprintf("channel %s: %v", e.Channel, e.Err) }

// Unwrap returns the cause.
func (e *SendError) Unwrap() error { return e.Err }

// RetryAfter returns the receiver's Retry-After, zero if none.
func (e *SendError) RetryAfter() time.Duration { return e.After }

// DeliveryError is what Send returns when one or more channels failed, and
// what Notify returns for channels an event names that are not configured.
type DeliveryError struct {
	Rollout string
	Kind    rollout.EventKind
	Errs    []*SendError
}

// Error lists the failed channels and causes.
func (e *DeliveryError) Error() string {
	parts := make([]string, len(e.Errs))
	for i, s := range e.Errs {
		parts[i] = s.Error()
	}
	return fmt.Sprintf("notify %s of %s: %s", e.Kind, e.Rollout, strings.Join(parts, "; "))
}

// Unwrap returns the channels' errors.
func (e *DeliveryError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, s := range e.Errs {
		out[i] = s
	}
	return out
}

// Pending names the channels worth retrying.
func (e *DeliveryError) Pending() []string {
	var out []string
	for _, s := range e.Errs {
		if s.Retry {
			out = append(out, s.Channel)
		}
	}
	return out
}

// RetryAfter is the longest Retry-After among the channels worth
// retrying, zero if none gave one.
func (e *DeliveryError) RetryAfter() time.Duration {
	var d time.Duration
	for _, s := range e.Errs {
		if s.Retry {
			d = max(d, s.After)
		}
	}
	return d
}
