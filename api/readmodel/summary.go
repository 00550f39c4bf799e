package readmodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// MaxReason bounds Summary.Reason, in characters.
const MaxReason = 120

// Summary is the list view of one Rollout: what a list of rollouts shows,
// with the display rules (the phase's name, the step's numbering, the
// target's description, the reason) applied once, in Summarize. The
// store computes it when it receives a new version of the Rollout; the
// REST API's list and list stream serve it, and the CLI and the console
// render it as it is.
//
// Every field is always present, so that a client can rely on the shape
// (and on the field names of the API's fields= selection).
type Summary struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Phase is status.phase, or Pending before the controller has
	// written one.
	Phase v1alpha1.Phase `json:"phase"`
	// Active is false once the phase is terminal. Lists show the active
	// rollouts first.
	Active bool `json:"active"`
	// Step is the step being dwelt on and the number of steps, "2/4";
	// "0/4" before the first step.
	Step string `json:"step"`
	// Weight is the canary weight, in percent.
	Weight int32 `json:"weight"`
	// Target is what the rollout shifts: the VirtualService (and its
	// route, when one is named), then stable → canary, by subset or by
	// host: "checkout: v1 → v2".
	Target string `json:"target"`
	// Verdict is the latest analysis verdict (Pass, Fail or
	// Inconclusive), empty before the first tick.
	Verdict string `json:"verdict"`
	// Reason says why the rollout is where it is: the controller's
	// message, or the latest verdict's reason when there is none, clipped
	// to MaxReason characters.
	Reason string `json:"reason"`
	// CreatedAt is when the Rollout was created.
	CreatedAt time.Time `json:"createdAt"`
	// UpdatedAt is when the rollout last changed phase or step (its
	// latest transition), or when its step started, or was created.
	UpdatedAt time.Time `json:"updatedAt"`
	// ResourceVersion is the Rollout's metadata.resourceVersion.
	ResourceVersion string `json:"resourceVersion"`
}

// Summarize computes r's Summary. It is the one place of the list's
// display rules; it reads only r.
func Summarize(r *v1alpha1.Rollout) Summary {
	st := r.Status
	phase := PhaseOf(r)
	reason := st.Message
	if reason == "" {
		reason = st.Analysis.LastReason
	}
	return Summary{
		Namespace: r.Namespace, Name: r.Name,
		Phase: phase, Active: !phase.Terminal(),
		Step:            stepText(phase, st.CurrentStep, len(stepsOf(r))),
		Weight:          st.CanaryWeight,
		Target:          TargetOf(r.Spec),
		Verdict:         st.Analysis.LastVerdict,
		Reason:          clip(reason, MaxReason),
		CreatedAt:       r.CreationTimestamp.UTC(),
		UpdatedAt:       updatedAt(r),
		ResourceVersion: r.ResourceVersion,
	}
}

// PhaseOf is r's phase as people read it: status.phase, or Pending before
// the controller has written one.
func PhaseOf(r *v1alpha1.Rollout) v1alpha1.Phase {
	if r.Status.Phase == "" {
		return v1alpha1.PhasePending
	}
	return r.Status.Phase
}

// StepLabel is r's step as every surface shows it: "step 2/4 (25%)" for
// the second of four steps, whose weight is 25%, and "step 0/4" before
// the first. The weight is the step's own, so a rollout that ended on a
// step (rolled back to 0%, say) still says which step it reached.
func StepLabel(r *v1alpha1.Rollout) string {
	steps, phase := stepsOf(r), PhaseOf(r)
	label := "step " + stepText(phase, r.Status.CurrentStep, len(steps))
	if i := int(r.Status.CurrentStep); phase != v1alpha1.PhasePending && i >= 0 && i < len(steps) {
		label += fmt.Sprintf(" (%d%%)", steps[i])
	}
	return label
}

func stepsOf(r *v1alpha1.Rollout) []int32 {
	if len(r.Spec.Steps) > 0 {
		return r.Spec.Steps
	}
	return v1alpha1.DefaultSteps
}

// stepText numbers steps from 1; a Pending rollout is before its first
// step, whatever its status.currentStep holds.
func stepText(phase v1alpha1.Phase, current int32, n int) string {
	if phase == v1alpha1.PhasePending || current < 0 {
		return fmt.Sprintf("0/%d", n)
	}
	return fmt.Sprintf("%d/%d", min(int(current)+1, n), n)
}

// TargetOf describes what a rollout of spec s shifts, as every surface
// shows it: "checkout: v1 → v2", "checkout, route primary: checkout →
// checkout-canary", or "checkout: deployment checkout (stable → canary)"
// for a delivered Deployment, whose subsets serin names.
func TargetOf(s v1alpha1.RolloutSpec) string {
	t := s.VirtualService
	if s.Route != "" {
		t += ", route " + s.Route
	}
	if s.Workload != nil {
		return t + ": deployment " + s.Workload.Deployment + " (stable → canary)"
	}
	if s.StableHost != "" {
		return t + ": " + s.StableHost + " → " + s.CanaryHost
	}
	return t + ": " + s.StableSubset + " → " + s.CanarySubset
}

func updatedAt(r *v1alpha1.Rollout) time.Time {
	if h := r.Status.History; len(h) > 0 {
		return h[len(h)-1].Time.UTC()
	}
	if t := r.Status.StepStartedAt; t != nil {
		return t.UTC()
	}
	return r.CreationTimestamp.UTC()
}

// clip shortens s to at most n characters, ending it with "…" when it
// cut something.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	return strings.TrimSpace(string(rs[:n-1])) + "…"
}

// SummaryFields are the JSON names of Summary's fields, in order: the
// names a field selection may use.
var SummaryFields = summaryFields()

// summaryIndex maps a field's JSON name to its index in SummaryFields.
var summaryIndex = func() map[string]int {
	m := map[string]int{}
	for i, f := range SummaryFields {
		m[f] = i
	}
	return m
}()

func summaryFields() []string {
	t := reflect.TypeFor[Summary]()
	out := make([]string, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out[i] = name
	}
	return out
}

// Fields is a selection of Summary fields; the zero value selects all.
type Fields struct{ on []bool }

// UnknownFieldError is a field selection naming a field Summary does not
// have.
type UnknownFieldError struct{ Field string }

func (e *UnknownFieldError) Error() string {
	return fmt.Sprintf("unknown field %q; the fields are %s", e.Field, strings.Join(SummaryFields, ", "))
}

// SelectFields returns the selection of the named fields, which are
// JSON names from SummaryFields; a name given twice counts once. An
// unknown name is an *UnknownFieldError.
func SelectFields(names []string) (Fields, error) {
	on := make([]bool, len(SummaryFields))
	for _, n := range names {
		i, ok := summaryIndex[n]
		if !ok {
			return Fields{}, &UnknownFieldError{Field: n}
		}
		on[i] = true
	}
	return Fields{on: on}, nil
}

// Row is one rollout of the list: its Summary, with its JSON encoded once,
// field by field, when the store received it. A list answer is then a
// concatenation of bytes, whatever fields it selects. A Row is shared and
// immutable.
type Row struct {
	Summary Summary
	json    []byte   // the whole object
	fields  [][]byte // `"name":value`, one per SummaryFields entry
	order   string   // the key of the list order
}

// newRow encodes s. Its fields are strings, numbers, booleans and times,
// which always encode.
func newRow(s Summary) *Row {
	r := &Row{Summary: s, fields: make([][]byte, len(SummaryFields)), order: orderKey(s)}
	v := reflect.ValueOf(s)
	r.json = append(r.json, '{')
	for i, name := range SummaryFields {
		val, err := json.Marshal(v.Field(i).Interface())
		if err != nil {
			panic("readmodel: encode summary field " + name + ": " + err.Error())
		}
		f := make([]byte, 0, len(name)+3+len(val))
		f = append(append(append(append(f, '"'), name...), '"', ':'), val...)
		r.fields[i] = f
		if i > 0 {
			r.json = append(r.json, ',')
		}
		r.json = append(r.json, f...)
	}
	r.json = append(r.json, '}')
	return r
}

// AppendJSON appends the row's JSON object, with the selected fields
// only, to dst.
func (r *Row) AppendJSON(dst []byte, sel Fields) []byte {
	if sel.on == nil {
		return append(dst, r.json...)
	}
	dst = append(dst, '{')
	first := true
	for i, f := range r.fields {
		if !sel.on[i] {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		dst, first = append(dst, f...), false
	}
	return append(dst, '}')
}

// JSON returns the row's whole JSON object. The caller must not modify it.
func (r *Row) JSON() []byte { return r.json }

// ShowsSame reports whether o shows the same as r: every field but the
// resourceVersion is equal. A live list skips a change that shows nothing
// new.
func (r *Row) ShowsSame(o *Row) bool {
	rv := summaryIndex["resourceVersion"]
	for i := range r.fields {
		if i != rv && !bytes.Equal(r.fields[i], o.fields[i]) {
			return false
		}
	}
	return true
}

// Cursor is a position in the list order: just after the row it was
// made from.
type Cursor struct {
	// Done is true for a rollout in a terminal phase, which comes after
	// every active one.
	Done      bool
	Namespace string
	Name      string
}

// Cursor returns the position just after r.
func (r *Row) Cursor() Cursor {
	return Cursor{Done: !r.Summary.Active, Namespace: r.Summary.Namespace, Name: r.Summary.Name}
}

// orderKey is the key of the list order: active rollouts first, then by
// namespace, then by name. NUL separates the parts, so that a namespace
// sorts before the longer ones it is a prefix of.
func orderKey(s Summary) string {
	return cursorKey(Cursor{Done: !s.Active, Namespace: s.Namespace, Name: s.Name})
}

func cursorKey(c Cursor) string {
	rank := "0"
	if c.Done {
		rank = "1"
	}
	return rank + "\x00" + c.Namespace + "\x00" + c.Name
}

// DataPlaneLine says, in one sentence, whether the proxies carry the
// route's weight, when the controller follows them (--istiod-url): "In
// the proxies: 25% on all 12, 0.4 s after the write." or "In the
// proxies: 2 of 12 do not carry 25% yet (a, b)." It is empty when the
// data plane is not followed. Every surface shows this line as it is.
func DataPlaneLine(r *v1alpha1.Rollout) string {
	dp := r.Status.DataPlane
	if dp == nil {
		return ""
	}
	if dp.ConfirmedAt != nil {
		on := fmt.Sprintf("all %d", dp.Proxies)
		switch dp.Proxies {
		case 0:
			return fmt.Sprintf("In the proxies: %d%%; no connected proxy routes the service.", dp.Weight)
		case 1:
			on = "the only one"
		}
		return fmt.Sprintf("In the proxies: %d%% on %s, %.1f s after the write.", dp.Weight, on, dp.ConfirmedAt.Sub(dp.WrittenAt.Time).Seconds())
	}
	if dp.Message != "" {
		return "In the proxies: " + dp.Message + "."
	}
	return fmt.Sprintf("In the proxies: waiting for %d%%.", dp.Weight)
}
