package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// streamBuffer is how many changes an SSE client may fall behind before it
// is dropped (its stream ends; an EventSource reconnects and starts from
// the current state).
const streamBuffer = 64

// SeriesList is the JSON shape of GET .../series: the rollout's analysis
// ticks, oldest first.
type SeriesList struct {
	Points []readmodel.Point `json:"points"`
}

// RolloutEvent is the data of an SSE "rollout" event: the same JSON as GET
// /api/v1/rollouts/{ns}/{name}, plus the newest point of its series.
//
// The stream of one rollout sends it whole once, as its first event; each
// later change comes as a "patch" event whose data is the JSON merge patch
// (RFC 7386) from the stream's previous event to the new RolloutEvent:
// only the members that changed, null for one removed, arrays whole.
// ApplyMergePatch applies one.
type RolloutEvent struct {
	Rollout
	// Point is the rollout's newest analysis tick, absent before the first.
	Point *readmodel.Point `json:"point,omitempty"`
}

// DeletedEvent is the data of an SSE "deleted" event.
type DeletedEvent struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// ping is the heartbeat comment.
var ping = []byte(": ping\n\n")

// SSE event names.
const (
	sseRollout = "rollout" // a whole RolloutEvent
	ssePatch   = "patch"   // a merge patch to the previous RolloutEvent
	sseSummary = "summary" // a RolloutSummary, on list streams
	sseDeleted = "deleted"
)

func (s *server) getSeries(c *gin.Context) {
	ns, name := c.Param("ns"), c.Param("name")
	if !s.authorize(c, Action{Verb: "get", Namespace: ns, Name: name}) || !s.synced(c) {
		return
	}
	if _, ok := s.Store.Get(ns, name); !ok {
		abort(c, s.Log, errorf(http.StatusNotFound, nil, "rollout %s/%s not found", ns, name))
		return
	}
	c.JSON(http.StatusOK, SeriesList{Points: s.Store.Series(ns, name)})
}

// streamRollout handles GET /api/v1/rollouts/{ns}/{name}/events: the
// rollout now, whole, then each change as a merge patch, until the client
// leaves or the rollout is deleted.
func (s *server) streamRollout(c *gin.Context) {
	ns, name := c.Param("ns"), c.Param("name")
	if !s.authorize(c, Action{Verb: "get", Namespace: ns, Name: name}) || !s.synced(c) {
		return
	}
	release, ok := s.admitStream(c)
	if !ok {
		return
	}
	defer release()
	// Subscribe before reading, so that no change falls in between.
	events, cancel := s.Store.Subscribe(streamBuffer)
	defer cancel()
	r, ok := s.Store.Get(ns, name)
	if !ok {
		abort(c, s.Log, errorf(http.StatusNotFound, nil, "rollout %s/%s not found", ns, name))
		return
	}
	w := s.startStream(c)
	var d delta
	if w.rollout(&d, r, s.latestPoint(r)) != nil {
		return
	}
	w.loop(events, func(e readmodel.Event) (bool, error) {
		if e.Rollout.Namespace != ns || e.Rollout.Name != name {
			return true, nil
		}
		if e.Type == readmodel.EventDelete {
			return false, w.deleted(e.Rollout)
		}
		return true, w.rollout(&d, e.Rollout, e.Point)
	})
}

// streamAll handles GET /api/v1/events?namespace=: the summary of every
// rollout of the namespace (or of all namespaces) now, in the list order,
// then a summary per change that shows something new, and a deletion
// event per deletion, until the client leaves.
func (s *server) streamAll(c *gin.Context) {
	ns := c.Query("namespace")
	if !s.authorize(c, Action{Verb: "list", Namespace: ns}) || !s.synced(c) {
		return
	}
	release, ok := s.admitStream(c)
	if !ok {
		return
	}
	defer release()
	events, cancel := s.Store.Subscribe(streamBuffer)
	defer cancel()
	rows, err := s.Store.Summaries(readmodel.Filter{Namespace: ns})
	if err != nil {
		abort(c, s.Log, err)
		return
	}
	w := s.startStream(c)
	sent := map[string]*readmodel.Row{} // namespace/name -> the row last sent
	for _, r := range rows {
		if w.summary(r, sent) != nil {
			return
		}
	}
	w.loop(events, func(e readmodel.Event) (bool, error) {
		if ns != "" && e.Rollout.Namespace != ns {
			return true, nil
		}
		if e.Type == readmodel.EventDelete {
			delete(sent, e.Rollout.Namespace+"/"+e.Rollout.Name)
			return true, w.deleted(e.Rollout)
		}
		return true, w.summary(e.Row, sent)
	})
}

// latestPoint returns the newest point of r's series, or nil.
func (s *server) latestPoint(r *v1alpha1.Rollout) *readmodel.Point {
	pts := s.Store.Series(r.Namespace, r.Name)
	if len(pts) == 0 {
		return nil
	}
	return &pts[len(pts)-1]
}

// sseWriter writes Server-Sent Events to one client.
type sseWriter struct {
	c         *gin.Context
	rc        *http.ResponseController
	heartbeat time.Duration
	// writeTimeout bounds each write and its flush: a client that does not
	// read is dropped rather than holding the handler for good.
	writeTimeout time.Duration
	// allowed reports whether the caller may still read the stream.
	allowed func() bool
}

// startStream sends the event-stream headers. A stream outlives the
// server's WriteTimeout, which is meant for plain requests: each write
// gets its own deadline instead (see sseWriter.write). (The server's
// ReadTimeout does not end it: net/http lifts the read deadline once the
// request has been read.)
// The request must have been authorized: the stream checks again, at each
// heartbeat, that its caller may still do the same thing.
func (s *server) startStream(c *gin.Context) *sseWriter {
	rc := http.NewResponseController(unwrap(c.Writer))
	w := &sseWriter{c: c, rc: rc, heartbeat: s.Heartbeat, writeTimeout: s.StreamWriteTimeout,
		allowed: func() bool { return s.stillAllowed(c) }}
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Status(http.StatusOK)
	w.deadline()
	c.Writer.WriteHeaderNow()
	_ = rc.Flush() // a failure shows at the first write
	return w
}

// unwrap returns the http.ResponseWriter under gin's, whose Flush reports
// a failed write (gin's drops the error).
func unwrap(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// deadline gives the next write writeTimeout from now. It cannot fail on
// a live connection; on a closed one the write that follows fails.
func (w *sseWriter) deadline() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.writeTimeout))
}

// write sends b and flushes it within writeTimeout. A write that times out
// fails, and the connection is closed.
func (w *sseWriter) write(b []byte) error {
	w.deadline()
	if _, err := w.c.Writer.Write(b); err != nil {
		return err
	}
	return w.rc.Flush()
}

// stillAllowed authenticates c's request again, by the same credential,
// and authorizes its recorded action again, so that a stream ends soon
// after its token expires, its session ends or its RBAC is revoked. A
// check that cannot be made (the API server is unreachable) keeps the
// stream open and is logged; a refusal ends it.
func (s *server) stillAllowed(c *gin.Context) bool {
	ctx := c.Request.Context()
	u, err := s.identify(c.Request)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) || ctx.Err() != nil {
			return false
		}
		s.Log.Warn("SSE: cannot check the caller again; the stream stays open", "err", err)
		return true
	}
	a := c.MustGet(keyAction).(Action)
	ok, err := s.Authorizer.Authorize(ctx, u, a)
	if err != nil {
		s.Log.Warn("SSE: cannot authorize the caller again; the stream stays open", "user", u.Name, "err", err)
		return true
	}
	if !ok {
		s.Log.Info("SSE: access revoked; the stream ends", "user", u.Name, "verb", a.Verb, "namespace", a.Namespace, "name", a.Name)
	}
	return ok
}

// send writes one event, data encoded as JSON, and flushes it.
func (w *sseWriter) send(event string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("SSE %s event: %w", event, err)
	}
	return w.sendRaw(event, b)
}

// sendRaw writes one event whose data is b, one line of JSON.
func (w *sseWriter) sendRaw(event string, b []byte) error {
	msg := make([]byte, 0, len(event)+len(b)+16)
	msg = append(append(append(msg, "event: "...), event...), "\ndata: "...)
	msg = append(append(msg, b...), "\n\n"...)
	return w.write(msg)
}

// delta is what a stream of one rollout sent last: the data of its
// previous event, decoded, to make the next patch from.
type delta struct {
	version string
	doc     map[string]any // nil before the first event
}

// versionOf is what tells two states of a rollout apart for a stream: its
// resourceVersion, and the time of its latest tick, which the controller
// shows from memory between writes (readmodel.Store.Live).
func versionOf(r *v1alpha1.Rollout) string {
	if r.ResourceVersion == "" {
		return ""
	}
	v := r.ResourceVersion
	if t := r.Status.Analysis.LastTickAt; t != nil {
		v += "@" + t.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// rollout sends r: whole in a "rollout" event the first time, then as a
// "patch" event holding only what changed since the previous event, and
// nothing when nothing did (the same version, or the same JSON).
func (w *sseWriter) rollout(d *delta, r *v1alpha1.Rollout, p *readmodel.Point) error {
	if v := versionOf(r); d.doc != nil && v != "" && v == d.version {
		return nil
	}
	b, err := json.Marshal(RolloutEvent{Rollout: view(r), Point: p})
	if err != nil {
		return fmt.Errorf("SSE rollout event of %s/%s: %w", r.Namespace, r.Name, err)
	}
	v, err := decodeJSON(b)
	if err != nil {
		return fmt.Errorf("SSE rollout event of %s/%s: %w", r.Namespace, r.Name, err)
	}
	doc := v.(map[string]any) // a RolloutEvent is an object
	prev := d.doc
	d.doc, d.version = doc, versionOf(r)
	if prev == nil {
		return w.sendRaw(sseRollout, b)
	}
	patch := mergePatch(prev, doc)
	if len(patch) == 0 {
		return nil
	}
	pb, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("SSE patch event of %s/%s: %w", r.Namespace, r.Name, err)
	}
	return w.sendRaw(ssePatch, pb)
}

// summary sends row in a "summary" event unless the row last sent for the
// same rollout shows the same (a new resourceVersion alone is not sent).
func (w *sseWriter) summary(row *readmodel.Row, sent map[string]*readmodel.Row) error {
	key := row.Summary.Namespace + "/" + row.Summary.Name
	if prev := sent[key]; prev != nil && prev.ShowsSame(row) {
		return nil
	}
	sent[key] = row
	return w.sendRaw(sseSummary, row.JSON())
}

func (w *sseWriter) deleted(r *v1alpha1.Rollout) error {
	return w.send(sseDeleted, DeletedEvent{Namespace: r.Namespace, Name: r.Name})
}

// loop hands each event to handle and sends heartbeats, until the client
// leaves, a write fails, handle returns false, the subscription is dropped
// because the client fell behind, or the caller's access is gone.
func (w *sseWriter) loop(events <-chan readmodel.Event, handle func(readmodel.Event) (bool, error)) {
	tick := time.NewTicker(w.heartbeat)
	defer tick.Stop()
	defer w.deadline() // time for the end of the response, long after the last write
	done := w.c.Request.Context().Done()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			if !w.allowed() {
				return
			}
			if w.write(ping) != nil {
				return
			}
		case e, ok := <-events:
			if !ok {
				return
			}
			more, err := handle(e)
			if err != nil || !more {
				return
			}
		}
	}
}

// streamCount counts the open streams of each user.
type streamCount struct {
	mu     sync.Mutex
	max    int
	byUser map[string]int
}

func newStreamCount(max int) *streamCount {
	return &streamCount{max: max, byUser: map[string]int{}}
}

// acquire takes one of user's stream slots; false means all are taken.
func (sc *streamCount) acquire(user string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.byUser[user] >= sc.max {
		return false
	}
	sc.byUser[user]++
	return true
}

func (sc *streamCount) release(user string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.byUser[user]--; sc.byUser[user] <= 0 {
		delete(sc.byUser, user)
	}
}

// streamRetryAfter is the Retry-After of a refused stream, in seconds: an
// EventSource does not retry a 429 by itself, a script may.
const streamRetryAfter = "10"

// admitStream takes a stream slot of the request's user, or answers 429
// when the user already has MaxStreamsPerUser streams open. Call release
// when the stream ends.
func (s *server) admitStream(c *gin.Context) (release func(), ok bool) {
	u := c.MustGet(keyUser).(User)
	if !s.streams.acquire(u.Name) {
		c.Header("Retry-After", streamRetryAfter)
		abort(c, s.Log, errorf(http.StatusTooManyRequests, nil,
			"user %q already has %d event streams open; close one first", u.Name, s.MaxStreamsPerUser))
		return nil, false
	}
	return func() { s.streams.release(u.Name) }, true
}
