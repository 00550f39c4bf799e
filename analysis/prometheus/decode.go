package prometheus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// The shared queries' answers are decoded here, not by client_golang.
// Its decoder builds a map and strings for every series of every answer;
// at a thousand services an answer holds some 80,000 series, arriving
// every second, and decoding them took a fifth of the controller's CPU
// and most of its garbage. This one reads the answer's bytes in place
// and looks each series' labels up among the label sets already held
// (labelSets), so that a series seen before costs no allocation at all.

// fetchRows sends an instant query of a shared answer and returns its
// finite samples, their label sets shared through s.sets and, for a
// packed query, unpacked by names.
func (s *Source) fetchRows(ctx context.Context, query string, at time.Time, names []model.LabelName) ([]sample, error) {
	return counted(s, func() ([]sample, error) { return s.sendRows(ctx, query, at, names) })
}

func (s *Source) sendRows(ctx context.Context, query string, at time.Time, names []model.LabelName) ([]sample, error) {
	form := url.Values{"query": {query}}
	if !at.IsZero() {
		form.Set("time", strconv.FormatFloat(float64(at.Unix())+float64(at.Nanosecond())/1e9, 'f', -1, 64))
	}
	u := s.client.URL("/api/v1/query", nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body, err := s.client.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if code := resp.StatusCode; code/100 != 2 {
		return nil, withDetail(answerError(code, body))
	}
	return decodeVector(body, s.sets, names)
}

// answerError is the error of an answer with HTTP status code, as
// client_golang makes it: Prometheus's errorType and error when the body
// has them, otherwise the status with the body as the detail.
func answerError(code int, body []byte) error {
	var e struct {
		ErrorType v1.ErrorType `json:"errorType"`
		Error     string       `json:"error"`
	}
	if (code == http.StatusBadRequest || code == http.StatusUnprocessableEntity) && json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &v1.Error{Type: e.ErrorType, Msg: e.Error}
	}
	switch code / 100 {
	case 4:
		return &v1.Error{Type: v1.ErrClient, Msg: fmt.Sprintf("client error: %d", code), Detail: string(body)}
	case 5:
		return &v1.Error{Type: v1.ErrServer, Msg: fmt.Sprintf("server error: %d", code), Detail: string(body)}
	}
	return &v1.Error{Type: v1.ErrBadResponse, Msg: fmt.Sprintf("bad response code %d", code), Detail: string(body)}
}

// decodeVector reads a query answer (the Prometheus HTTP API's
// {"status", "data": {"resultType", "result"}} envelope) that must hold
// a vector, and returns its samples with a finite value, their labels
// looked up in sets (unpacked by names when names is not nil). A
// native-histogram sample has no float value and is left out, as NaN is.
func decodeVector(body []byte, sets *labelSets, names []model.LabelName) ([]sample, error) {
	d := decoder{b: body}
	var status, errType, errMsg, resultType, later []byte
	var rows []sample
	err := d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "status":
			status, err = d.str()
		case "errorType":
			errType, err = d.str()
		case "error":
			errMsg, err = d.str()
		case "data":
			err = d.object(func(key []byte) error {
				var err error
				switch string(key) {
				case "resultType":
					resultType, err = d.str()
				case "result":
					// Prometheus says the resultType first. A result
					// that comes before it is read once the type is
					// known; one that is no vector is dropped, and the
					// type named.
					if resultType == nil {
						start := d.i
						err = d.skip()
						later = d.b[start:d.i]
						return err
					}
					if string(resultType) != model.ValVector.String() {
						return d.skip()
					}
					rows, err = d.vector(sets, names)
				default:
					err = d.skip()
				}
				return err
			})
		default:
			err = d.skip()
		}
		return err
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("bad answer: %w", err)
	case string(status) != "success":
		return nil, &v1.Error{Type: v1.ErrorType(errType), Msg: fmt.Sprintf("answer status %q: %s", status, errMsg)}
	case string(resultType) != model.ValVector.String():
		return nil, fmt.Errorf("answer is a %s, want a vector", resultType)
	case later != nil:
		d := decoder{b: later}
		if rows, err = d.vector(sets, names); err != nil {
			return nil, fmt.Errorf("bad answer: %w", err)
		}
	}
	return rows, nil
}

// maxPairs bounds the labels of one series read without allocating.
const maxPairs = 16

// vector reads the result array of a vector answer. The closures are
// made once, not per series, so that a series held costs no allocation.
func (d *decoder) vector(sets *labelSets, names []model.LabelName) ([]sample, error) {
	rows := make([]sample, 0, bytes.Count(d.b[d.i:], []byte(`"metric"`)))
	var (
		buf      [maxPairs]rawPair
		pairs    []rawPair
		value    float64
		hasValue bool
		hasHist  bool
		n        int // elements of "value" read
	)
	label := func(name []byte) error {
		v, err := d.str()
		pairs = append(pairs, rawPair{name, v})
		return err
	}
	valueElem := func() error {
		n++
		switch n {
		case 1:
			return d.skip() // the evaluation time, asked for
		case 2:
			v, err := d.str()
			if err != nil {
				return err
			}
			if value, err = strconv.ParseFloat(string(v), 64); err != nil {
				return fmt.Errorf("sample value %q: %w", v, err)
			}
			hasValue = true
			return nil
		}
		return errors.New("a sample value of more than 2 elements")
	}
	member := func(key []byte) error {
		switch string(key) {
		case "metric":
			pairs = pairs[:0] // a second "metric" replaces the first, as in a JSON decoder
			return d.object(label)
		case "value":
			n = 0
			err := d.array(valueElem)
			if err == nil && n != 2 {
				err = fmt.Errorf("a sample value of %d elements, want 2", n)
			}
			return err
		case "histogram": // no float value
			hasHist = true
			return d.skip()
		default:
			return d.skip()
		}
	}
	err := d.array(func() error {
		pairs, hasValue, hasHist = buf[:0], false, false
		if err := d.object(member); err != nil {
			return err
		}
		if !hasValue && !hasHist {
			return errors.New("a sample without a value")
		}
		if hasValue && !math.IsNaN(value) && !math.IsInf(value, 0) {
			rows = append(rows, sample{labels: sets.of(pairs, names), value: value})
		}
		return nil
	})
	return rows, err
}

// rawPair is one label of an answer, as read: name and value may alias
// the answer's bytes.
type rawPair struct{ name, value []byte }

// decoder reads JSON in place. It knows only what answers hold: objects,
// arrays, strings, numbers and the literals, nested at most maxDepth.
type decoder struct {
	b     []byte
	i     int
	depth int
}

const maxDepth = 32

var errTruncated = errors.New("unexpected end of the answer")

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) expect(c byte) error {
	d.ws()
	if d.i >= len(d.b) {
		return errTruncated
	}
	if d.b[d.i] != c {
		return fmt.Errorf("at byte %d: want %q, have %q", d.i, c, d.b[d.i])
	}
	d.i++
	return nil
}

// peek returns the next byte after white space, or 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

// str reads a string. Without escapes it is a slice of the answer;
// with them, a new one.
func (d *decoder) str() ([]byte, error) {
	if err := d.expect('"'); err != nil {
		return nil, err
	}
	start, escaped := d.i, false
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !escaped {
				return s, nil
			}
			var out string
			if err := json.Unmarshal(d.b[start-1:d.i], &out); err != nil {
				return nil, err
			}
			return []byte(out), nil
		case c == '\\':
			escaped = true
			d.i += 2
		case c < 0x20:
			return nil, fmt.Errorf("at byte %d: a control character in a string", d.i)
		default:
			d.i++
		}
	}
	return nil, errTruncated
}

// object reads an object, calling member with each key; member must read
// the value.
func (d *decoder) object(member func(key []byte) error) error {
	if err := d.enter('{'); err != nil {
		return err
	}
	defer d.leave()
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		key, err := d.str()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		case 0:
			return errTruncated
		default:
			return fmt.Errorf("at byte %d: want , or } in an object", d.i)
		}
	}
}

// array reads an array, calling elem for each element; elem must read
// it.
func (d *decoder) array(elem func() error) error {
	if err := d.enter('['); err != nil {
		return err
	}
	defer d.leave()
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		case 0:
			return errTruncated
		default:
			return fmt.Errorf("at byte %d: want , or ] in an array", d.i)
		}
	}
}

func (d *decoder) enter(c byte) error {
	if d.depth++; d.depth > maxDepth {
		return fmt.Errorf("at byte %d: nested deeper than %d", d.i, maxDepth)
	}
	return d.expect(c)
}

func (d *decoder) leave() { d.depth-- }

// skip reads a value of any kind and drops it.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		return d.object(func([]byte) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == '-' || c >= '0' && c <= '9':
		start := d.i
		for d.i < len(d.b) && strings.IndexByte("+-.eE0123456789", d.b[d.i]) >= 0 {
			d.i++
		}
		if _, err := strconv.ParseFloat(string(d.b[start:d.i]), 64); err != nil {
			return fmt.Errorf("at byte %d: bad number %q", start, d.b[start:d.i])
		}
		return nil
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(d.b[d.i:], []byte(lit)) {
				d.i += len(lit)
				return nil
			}
		}
		if c == 0 {
			return errTruncated
		}
		return fmt.Errorf("at byte %d: unexpected %q", d.i, c)
	}
}
