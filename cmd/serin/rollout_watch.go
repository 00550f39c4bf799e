package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

const (
	// barWidth is the width of watch's progress bar, in characters.
	barWidth = 20
	// streamIdleLimit is how long the event stream may stay silent (the
	// server sends heartbeats) before watch reconnects.
	streamIdleLimit = 60 * time.Second
	// maxEventBytes bounds one Server-Sent Event line.
	maxEventBytes = 4 << 20
)

func parseWatch(args []string, cio cliIO) (rolloutCommand, error) {
	cf, ns, name, err := parseNamed("watch", "watch -n NS NAME", args, cio, nil)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) int {
		w := &watcher{c: cf.client, cio: cio, ns: ns, name: name, json: cf.g.Output == "json", timeout: cf.g.Timeout}
		return w.run(ctx)
	}, nil
}

// watcher follows one rollout until it reaches a terminal phase, from the
// events stream or, when the server has none, by polling.
type watcher struct {
	c        *apiClient
	cio      cliIO
	ns, name string
	json     bool
	timeout  time.Duration // how long the server may stay unreachable

	last      string // the last frame drawn, to skip repeats
	drawn     int    // lines of the last frame on a TTY, to redraw over
	connected bool   // the stream answered 200 at least once
}

func (w *watcher) id() string { return w.ns + "/" + w.name }

// run returns the exit code: 0 when the rollout Succeeded, 3 when it
// ended otherwise or was deleted.
func (w *watcher) run(ctx context.Context) int {
	code, err := w.stream(ctx)
	if err == nil {
		return code
	}
	if !w.connected && isStatus(err, http.StatusNotFound) {
		// Either the server has no events endpoint or the rollout does
		// not exist; a GET tells which.
		r, gerr := w.c.Get(ctx, w.ns, w.name)
		if gerr != nil {
			return w.fail(ctx, gerr)
		}
		fmt.Fprintf(w.cio.Stderr, "serin: the server has no events endpoint; polling every %v\n", w.pollInterval())
		return w.poll(ctx, r)
	}
	return w.fail(ctx, err)
}

func (w *watcher) fail(ctx context.Context, err error) int {
	if ctx.Err() != nil {
		return exitInterrupted
	}
	return fail(w.cio, "watch rollout "+w.id(), err)
}

func (w *watcher) pollInterval() time.Duration {
	if w.cio.PollInterval > 0 {
		return w.cio.PollInterval
	}
	return time.Second
}

// unreachable tracks how long the server has been failing and reports
// whether watch should give up.
type unreachable struct {
	since    time.Time
	notified bool
}

func (u *unreachable) giveUp(limit time.Duration) bool {
	if u.since.IsZero() {
		u.since = time.Now()
	}
	return limit > 0 && time.Since(u.since) > limit
}

// stream follows the events stream, reconnecting after a lost connection.
// It returns an exit code, or an error that ends the watch.
func (w *watcher) stream(ctx context.Context) (int, error) {
	var down unreachable
	for {
		code, done, err := w.streamOnce(ctx)
		switch {
		case done:
			return code, nil
		case ctx.Err() != nil:
			return exitInterrupted, nil
		case isStatus(err, http.StatusNotFound) && w.connected:
			return w.deleted(), nil // the stream was there, the rollout no longer is
		}
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) || !w.connected || down.giveUp(w.timeout) {
				return 0, err
			}
			if !down.notified {
				fmt.Fprintf(w.cio.Stderr, "serin: lost the event stream (%v); reconnecting\n", err)
				down.notified = true
			}
		} else {
			down = unreachable{} // the server ended the stream: reconnect
		}
		if !sleep(ctx, w.pollInterval()) {
			return exitInterrupted, nil
		}
	}
}

// streamOnce opens the stream and reads it until it ends. done is true
// when the watch is over, with its exit code.
func (w *watcher) streamOnce(ctx context.Context) (code int, done bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	limit := w.timeout
	if limit <= 0 {
		limit = streamIdleLimit
	}
	idle := time.AfterFunc(limit, cancel) // until the answer's headers
	defer idle.Stop()
	body, err := w.c.Events(ctx, w.ns, w.name)
	if err != nil {
		return 0, false, err
	}
	defer body.Close()
	w.connected = true
	// The stream may send only changes, so show where the rollout is now.
	// Opening the stream first means no change falls between the two.
	idle.Reset(limit)
	r, err := w.c.Get(ctx, w.ns, w.name)
	if err != nil {
		return 0, false, err
	}
	if code, done := w.update(r); done {
		return code, true, nil
	}
	idle.Reset(streamIdleLimit)
	// doc is the rollout as the stream's events make it: a whole "rollout"
	// event first, then "patch" events (JSON merge patches) that carry
	// only what changed since the previous event.
	var doc []byte
	err = readEvents(body, func(event string, data []byte) (bool, error) {
		idle.Reset(streamIdleLimit)
		switch event {
		case "rollout", "patch":
			if event == "rollout" {
				doc = slices.Clone(data)
			} else {
				if doc == nil {
					return false, errors.New("a patch event before the stream's first rollout event")
				}
				next, err := api.ApplyMergePatch(doc, data)
				if err != nil {
					return false, fmt.Errorf("apply patch event: %w", err)
				}
				doc = next
			}
			var r api.Rollout
			if err := json.Unmarshal(doc, &r); err != nil {
				return false, fmt.Errorf("decode %s event: %w", event, err)
			}
			code, done = w.update(r)
			return done, nil
		case "deleted":
			code, done = w.deleted(), true
			return true, nil
		}
		return false, nil // heartbeats and unknown events
	})
	return code, done, err
}

// readEvents reads Server-Sent Events from r and calls handle for each,
// until handle returns stop or an error, or the stream ends (nil).
// Comments (": ping" heartbeats) are passed as an event named "", so that
// the caller sees the stream is alive.
func readEvents(r io.Reader, handle func(event string, data []byte) (stop bool, err error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventBytes)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data == nil && event == "" {
				continue
			}
			if event == "" {
				event = "message"
			}
			stop, err := handle(event, data)
			if stop || err != nil {
				return err
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
			if _, err := handle("", nil); err != nil { // a heartbeat
				return err
			}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "data":
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, value...)
			}
		}
	}
	return sc.Err()
}

// poll follows the rollout by reading it every poll interval, starting
// with r.
func (w *watcher) poll(ctx context.Context, r api.Rollout) int {
	var down unreachable
	for {
		if code, done := w.update(r); done {
			return code
		}
		if !sleep(ctx, w.pollInterval()) {
			return exitInterrupted
		}
		next, err := w.c.Get(ctx, w.ns, w.name)
		switch {
		case err == nil:
			r, down = next, unreachable{}
		case ctx.Err() != nil:
			return exitInterrupted
		case isStatus(err, http.StatusNotFound):
			return w.deleted()
		case errors.As(err, new(*apiError)) || down.giveUp(w.timeout):
			return w.fail(ctx, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// update shows r and reports whether it is terminal, with the exit code.
func (w *watcher) update(r api.Rollout) (int, bool) {
	w.draw(r)
	if !r.Status.Phase.Terminal() {
		return 0, false
	}
	if r.Status.Phase == v1alpha1.PhaseSucceeded {
		fmt.Fprintf(w.cio.Stdout, "rollout %s Succeeded\n", w.id())
		return exitOK, true
	}
	fmt.Fprintf(w.cio.Stderr, "serin: rollout %s %s: %s\n", w.id(), r.Status.Phase, endReason(r))
	return exitNotSucceded, true
}

func (w *watcher) deleted() int {
	fmt.Fprintf(w.cio.Stderr, "serin: rollout %s was deleted\n", w.id())
	return exitNotSucceded
}

// endReason says why r ended, in the controller's words when it has any.
func endReason(r api.Rollout) string {
	if r.Status.Message != "" {
		return r.Status.Message
	}
	if h := r.Status.History; len(h) > 0 {
		last := h[len(h)-1]
		if last.Message != "" {
			return last.Message
		}
		return last.Reason
	}
	if reason := r.Requests[v1alpha1.AnnotationAbort]; reason != "" {
		return "abort requested: " + reason
	}
	return "no reason given"
}

// draw shows r unless it looks the same as last time: one JSON line per
// update with -o json, a frame redrawn in place on a terminal, and one
// line per change otherwise.
func (w *watcher) draw(r api.Rollout) {
	lines := frame(r)
	key := strings.Join(lines, "\n")
	if w.json {
		key = r.ResourceVersion
	}
	if key == w.last {
		return
	}
	w.last = key
	switch {
	case w.json:
		b, _ := json.Marshal(r) // an api.Rollout always encodes
		fmt.Fprintf(w.cio.Stdout, "%s\n", b)
	case w.cio.TTY:
		width := w.cio.width()
		if w.drawn > 0 {
			fmt.Fprintf(w.cio.Stdout, "\x1b[%dA\x1b[J", w.drawn) // back over the last frame
		}
		for _, l := range lines {
			fmt.Fprintln(w.cio.Stdout, truncate(l, width-1)) // a wrapped line would break the redraw
		}
		w.drawn = len(lines)
	default:
		fmt.Fprintln(w.cio.Stdout, strings.Join(lines, "  "))
	}
}

// frame is the watch view of r: the progress bar with the step, the
// latest analysis, each failing check with its values and limit, and the
// controller's message. Everything shown comes from the API's view as it
// is.
func frame(r api.Rollout) []string {
	weight := min(max(r.Status.CanaryWeight, 0), 100)
	fill := int(weight) * barWidth / 100
	head := fmt.Sprintf("[%s%s] %3d%%  %s  %s", strings.Repeat("#", fill), strings.Repeat("-", barWidth-fill), weight, r.Step, r.Phase)
	if r.Spec.Paused && r.Status.Phase != v1alpha1.PhasePaused && !r.Status.Phase.Terminal() {
		head += " (pause requested)"
	}
	lines := []string{head}
	if a := r.Status.Analysis; a.LastVerdict != "" {
		l := "analysis: " + a.LastVerdict
		if a.LastReason != "" {
			l += ": " + a.LastReason
		}
		lines = append(lines, l)
	}
	for _, c := range r.Checks {
		if c.Failing {
			lines = append(lines, failingLine(c))
		}
	}
	if r.Status.Message != "" {
		lines = append(lines, "message: "+r.Status.Message)
	}
	return lines
}

// failingLine is one failing check. The limit comes before the values,
// whose intervals make them long, so that it is on screen even at 80
// columns; what comes last is what a narrow terminal cuts off.
func failingLine(c api.CheckView) string {
	l := fmt.Sprintf("  FAIL %s %s (%s): limit %s, canary %s, stable %s", c.Check, c.Hop, c.Source, c.Limit, c.Canary, c.Stable)
	if c.Evidence != "" {
		l += ", " + c.Evidence
	}
	return l
}

func truncate(s string, n int) string {
	rs := []rune(s)
	if len(rs) <= n {
		return s
	}
	return string(rs[:n-1]) + "…"
}
