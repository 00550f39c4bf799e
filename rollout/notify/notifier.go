package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	// Timeout bounds each send to one channel; default 10s. Keep it below
	// the queue's NotifyQueueOptions.Timeout.
	Timeout time.Duration
	// Now tells the time, for Retry-After dates and webhook timestamps;
	// default time.Now.
	Now func() time.Time
}

// Notifier fans an event out to the channels that want it, one POST per
// channel, all channels at once. It implements rollout.Notifier.
//
// Retry contract: when some channels fail, Notify returns a
// *DeliveryError. Its Pending method names the channels worth retrying
// (5xx, 429, network errors and timeouts) and RetryAfter the longest
// Retry-After they asked for. The queue retries the event with
// Event.Channels set to the pending channels only, so a channel that
// already has the event never receives it twice.
type Notifier struct {
	channels []Channel
	links    links
	client   *http.Client
	timeout  time.Duration
	now      func() time.Time
}

var _ rollout.Notifier = (*Notifier)(nil)

// New returns a Notifier for cfg.
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
	return &Notifier{channels: slices.Clone(cfg.Channels), links: links{cfg.ConsoleURL, cfg.JaegerURL},
		client: o.Client, timeout: o.Timeout, now: o.Now}, nil
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

// Notify delivers ev to every channel that wants it, restricted to
// ev.Channels when that is not empty. retry is true when at least one
// channel failed in a way worth retrying; err is a *DeliveryError.
func (n *Notifier) Notify(ctx context.Context, ev rollout.Event) (bool, error) {
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
		req.Header.Set("X-Serin-Delivery", eventID(m))
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

// DeliveryError is what Notify returns when one or more channels failed.
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
