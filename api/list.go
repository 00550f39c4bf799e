package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Limits of GET /api/v1/rollouts?limit=.
const (
	DefaultListLimit = 100
	MaxListLimit     = 500
)

// RolloutSummary is one item of GET /api/v1/rollouts: the summary view of
// a rollout. The full status comes only from GET
// /api/v1/rollouts/{ns}/{name}.
type RolloutSummary = readmodel.Summary

// RolloutList is the JSON shape of GET /api/v1/rollouts: one page of
// summaries, active rollouts first, then by namespace and name. With
// fields=, each item holds only the selected fields.
type RolloutList struct {
	Items []RolloutSummary `json:"items"`
	// Continue, when present, fetches the next page: pass it as
	// ?continue= with the same filters. Absent on the last page.
	Continue string `json:"continue,omitempty"`
}

// phases are the values accepted by the phase filter.
var phases = []v1alpha1.Phase{
	v1alpha1.PhasePending, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseSucceeded,
	v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted, v1alpha1.PhaseFailed,
}

// listQuery is a parsed GET /api/v1/rollouts.
type listQuery struct {
	filter readmodel.Filter
	after  *readmodel.Cursor
	limit  int
	fields readmodel.Fields
}

// parseListQuery reads the list's query parameters. A bad one is a 400
// that names it.
func parseListQuery(q url.Values) (listQuery, error) {
	out := listQuery{limit: DefaultListLimit}
	for _, p := range []string{"namespace", "phase", "limit", "continue", "fields"} {
		if len(q[p]) > 1 {
			return out, errorf(http.StatusBadRequest, nil, "query parameter %s is given %d times; give it once", p, len(q[p]))
		}
	}
	out.filter = readmodel.Filter{Namespace: q.Get("namespace"), Phase: v1alpha1.Phase(q.Get("phase"))}
	if out.filter.Phase != "" && !validPhase(out.filter.Phase) {
		return out, errorf(http.StatusBadRequest, []string{fmt.Sprintf("phase must be one of %v", phases)}, "phase: unknown phase %q", out.filter.Phase)
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > MaxListLimit {
			return out, errorf(http.StatusBadRequest, nil, "limit: %q is not a number from 1 to %d", v[0], MaxListLimit)
		}
		out.limit = n
	}
	if v := q["continue"]; len(v) > 0 && v[0] != "" { // empty: from the start
		c, err := decodeContinue(v[0])
		if err != nil {
			return out, errorf(http.StatusBadRequest, []string{err.Error()}, "continue: not a token from a list answer")
		}
		out.after = &c
	}
	if v, ok := q["fields"]; ok {
		sel, err := parseFields(v[0])
		if err != nil {
			return out, err
		}
		out.fields = sel
	}
	return out, nil
}

// parseFields reads fields=name,phase,weight.
func parseFields(v string) (readmodel.Fields, error) {
	names := strings.Split(v, ",")
	for i, n := range names {
		names[i] = strings.TrimSpace(n)
		if names[i] == "" {
			return readmodel.Fields{}, errorf(http.StatusBadRequest, []string{"fields are " + strings.Join(readmodel.SummaryFields, ", ")},
				"fields: an empty field name in %q", v)
		}
	}
	sel, err := readmodel.SelectFields(names)
	if ue, ok := errors.AsType[*readmodel.UnknownFieldError](err); ok {
		return readmodel.Fields{}, errorf(http.StatusBadRequest, []string{"fields are " + strings.Join(readmodel.SummaryFields, ", ")},
			"fields: unknown field %q", ue.Field)
	}
	return sel, err
}

// continueToken is what a continue token encodes: the version of its
// format and the position after the page's last item.
type continueToken struct {
	V         int    `json:"v"`
	Done      bool   `json:"done,omitempty"`
	Namespace string `json:"ns"`
	Name      string `json:"n"`
}

// The current format of continue tokens.
const continueVersion = 1

// encodeContinue makes the opaque token of the position c: base64url of
// a small JSON object. It holds only names the caller may list anyway.
func encodeContinue(c readmodel.Cursor) string {
	b, _ := json.Marshal(continueToken{V: continueVersion, Done: c.Done, Namespace: c.Namespace, Name: c.Name}) // always encodes
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (readmodel.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return readmodel.Cursor{}, fmt.Errorf("not base64url: %w", err)
	}
	var t continueToken
	if err := decodeStrict(strings.NewReader(string(b)), &t); err != nil {
		return readmodel.Cursor{}, errors.New("not a token's JSON")
	}
	if t.V != continueVersion || t.Namespace == "" || t.Name == "" {
		return readmodel.Cursor{}, fmt.Errorf("token version %d with namespace %q and name %q: not a position", t.V, t.Namespace, t.Name)
	}
	return readmodel.Cursor{Done: t.Done, Namespace: t.Namespace, Name: t.Name}, nil
}

// listRollouts handles GET /api/v1/rollouts. The summaries' JSON was
// encoded when the read model received each version; the answer only
// joins a page of them.
func (s *server) listRollouts(c *gin.Context) {
	q, err := parseListQuery(c.Request.URL.Query())
	if err != nil {
		abort(c, s.Log, err)
		return
	}
	if !s.authorize(c, Action{Verb: "list", Namespace: q.filter.Namespace}) || !s.synced(c) {
		return
	}
	rows, more, err := s.Store.Page(q.filter, q.after, q.limit)
	if err != nil {
		abort(c, s.Log, err)
		return
	}
	bp := listBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBuffer {
			listBuffers.Put(bp)
		}
	}()
	buf := append((*bp)[:0], `{"items":[`...)
	for i, r := range rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = r.AppendJSON(buf, q.fields)
	}
	buf = append(buf, ']')
	if more {
		buf = append(buf, `,"continue":"`...)
		buf = append(buf, encodeContinue(rows[len(rows)-1].Cursor())...) // base64url: nothing to escape
		buf = append(buf, '"')
	}
	buf = append(buf, '}')
	*bp = buf
	c.Data(http.StatusOK, "application/json; charset=utf-8", buf) // written before it returns: the buffer is free again
}

// listBuffers holds the answers' buffers between requests, so that a busy
// list makes little garbage: a page of 500 summaries is about 160 KB.
var listBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledBuffer bounds the buffers kept, so that one large answer does
// not pin its memory.
const maxPooledBuffer = 1 << 20

func validPhase(p v1alpha1.Phase) bool {
	for _, q := range phases {
		if p == q {
			return true
		}
	}
	return false
}
