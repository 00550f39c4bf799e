package web

import (
	"slices"
	"strings"
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// detailView is the rollout page's data. The page's JavaScript redraws
// the same parts from the API's JSON, with the same rules (rollout.js).
type detailView struct {
	Namespace, Name string
	Phase           string
	Message         string
	Target          string // "checkout: v1 → v2"
	Created         time.Time
	Changed         time.Time
	Paused          bool
	Terminal        bool
	Outcome         string // why a rollout ended badly, in plain words
	Steps           []stepView
	Weight, Stable  int32
	Verdict         string // the latest analysis verdict
	Reason          string
	Checks          []checkView // inbound checks, one chart each
	Hops            []hopRow
	History         []v1alpha1.Transition // newest first
	Ops             []string              // the operations this user may do
	TraceURL        string                // prefix of example-trace links
}

// stepView is one rung of the step ladder.
type stepView struct {
	Weight int32
	State  string // done, current or todo
}

// checkView is an inbound check's latest value, shown under its chart.
type checkView struct {
	Key     string // check name, also the chart's key in the series
	Verdict string
	Text    string // "canary 0.4 % · stable 0.3 % · limit 1 %"
}

// hopRow is one edge of the per-hop table: its latency and error checks
// from one source, side by side.
type hopRow struct {
	Edge, Source         string
	CanaryP99, StableP99 string
	CanaryErr, StableErr string
	Verdict              string // the worst of the edge's checks
	DryRun               bool
	TraceID, TraceURL    string
}

func (c *Console) detail(ro *v1alpha1.Rollout) detailView {
	st := ro.Status
	sum := readmodel.Summarize(ro) // the phase, target and time the list shows, too
	v := detailView{
		Namespace: ro.Namespace, Name: ro.Name, Phase: string(sum.Phase), Message: st.Message,
		Created: sum.CreatedAt, Changed: sum.UpdatedAt,
		Paused: ro.Spec.Paused, Terminal: st.Phase.Terminal(),
		Weight: st.CanaryWeight, Stable: 100 - st.CanaryWeight,
		Verdict: st.Analysis.LastVerdict, Reason: st.Analysis.LastReason,
		Target: sum.Target, Outcome: outcome(ro), TraceURL: c.opts.TraceURL,
	}
	if v.Outcome != "" {
		v.Message = "" // the outcome says it, prominently
	}
	v.Steps = ladder(ro)
	for _, ck := range st.Analysis.Checks {
		if ck.Hop == "" {
			v.Checks = append(v.Checks, checkView{Key: ck.Check, Verdict: ck.Verdict, Text: checkText(ck)})
		}
	}
	v.Hops = c.hops(st.Analysis.Checks)
	v.History = slices.Clone(st.History)
	slices.Reverse(v.History)
	return v
}

// outcome says why a rollout ended without success, in plain words.
func outcome(ro *v1alpha1.Rollout) string {
	st := ro.Status
	msg := st.Message
	if msg == "" && len(st.History) > 0 {
		msg = st.History[len(st.History)-1].Message
	}
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	switch st.Phase {
	case v1alpha1.PhaseRolledBack:
		return "Rolled back: all traffic went back to the stable version. " + msg
	case v1alpha1.PhaseAborted:
		return "Aborted: all traffic went back to the stable version. " + msg
	case v1alpha1.PhaseFailed:
		return "Failed: " + msg
	}
	return ""
}

func ladder(ro *v1alpha1.Rollout) []stepView {
	ws := steps(ro)
	cur := int(ro.Status.CurrentStep)
	out := make([]stepView, len(ws))
	for i, w := range ws {
		state := "todo"
		switch {
		case ro.Status.Phase == v1alpha1.PhaseSucceeded || (ro.Status.Phase != "" && i < cur):
			state = "done"
		case ro.Status.Phase != "" && i == cur && !ro.Status.Phase.Terminal():
			state = "current"
		case ro.Status.Phase != "" && i == cur:
			state = "stopped"
		}
		out[i] = stepView{Weight: w, State: state}
	}
	return out
}

func num(v float64, unit string) string { return analysis.FormatValue(v, unit) }

// checkText is a check's figures for people: each side with its
// interval, the limit, and the sequential test's evidence.
func checkText(ck v1alpha1.CheckStatus) string {
	s := "canary " + analysis.FormatWithInterval(ck.Canary, ck.CanaryLow, ck.CanaryHigh, ck.Unit) +
		" · stable " + analysis.FormatWithInterval(ck.Stable, ck.StableLow, ck.StableHigh, ck.Unit) +
		" · limit " + num(ck.Limit, ck.Unit)
	if e := analysis.FormatEvidence(ck.Evidence, ck.Threshold, ck.EvidenceAtSeconds); e != "" {
		s += " · " + e
	}
	return s
}

// checkKind is a check's kind; statuses written before checks carried one
// are told by their unit.
func checkKind(ck v1alpha1.CheckStatus) analysis.Kind {
	switch {
	case ck.Kind != "":
		return analysis.Kind(ck.Kind)
	case ck.Unit == "ms":
		return analysis.KindLatency
	case ck.Unit == "%":
		return analysis.KindErrorRate
	}
	return analysis.KindCustom
}

// verdictRank orders verdicts from best to worst.
var verdictRank = map[string]int{"": 0, "Skipped": 1, "Pass": 2, "Inconclusive": 3, "Fail": 4}

// hops groups the checks by edge and source. The inbound edge comes first.
func (c *Console) hops(checks []v1alpha1.CheckStatus) []hopRow {
	var out []hopRow
	index := map[[2]string]int{}
	for _, ck := range checks {
		kind := checkKind(ck)
		if kind != analysis.KindLatency && kind != analysis.KindErrorRate {
			continue // the table compares with stable; other checks have their own charts
		}
		edge := ck.Hop
		if edge == "" {
			edge = "inbound"
		}
		k := [2]string{edge, ck.Source}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, hopRow{Edge: edge, Source: ck.Source, CanaryP99: "–", StableP99: "–", CanaryErr: "–", StableErr: "–"})
		}
		h := &out[i]
		if kind == analysis.KindLatency {
			h.CanaryP99, h.StableP99 = num(ck.Canary, "ms"), num(ck.Stable, "ms")
		} else {
			h.CanaryErr, h.StableErr = num(ck.Canary, "%"), num(ck.Stable, "%")
		}
		if verdictRank[ck.Verdict] > verdictRank[h.Verdict] {
			h.Verdict = ck.Verdict
		}
		h.DryRun = h.DryRun || ck.DryRun
		if ck.TraceID != "" {
			h.TraceID = ck.TraceID
			if c.opts.TraceURL != "" {
				h.TraceURL = c.opts.TraceURL + ck.TraceID
			}
		}
	}
	return out
}
