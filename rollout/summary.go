package rollout

import (
	"fmt"
	"strings"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// maxSummary bounds status.summary (the CRD's MaxLength).
const maxSummary = 120

// SummaryOf says where a rollout is in a few words, for status.summary
// (kubectl's Reason column): the weight and how far it has got (set,
// written, on the route, on the proxies) and the analysis (checks
// passing, gathering evidence, no data) while it runs; the first failing
// check and how far over its limit after a rollback; the first clause of
// the message otherwise. It reads only fields that a status write is made
// for (worthWriting), never the latest figures, so that it changes with a
// written status and never forces one.
func SummaryOf(st v1alpha1.RolloutStatus) string {
	var s string
	switch st.Phase {
	case "", v1alpha1.PhasePending:
		s = "waiting to start"
		if st.Message != "" {
			s = firstClause(st.Message)
		}
	case v1alpha1.PhaseProgressing:
		s = weightState(st) + " · " + analysisState(st.Analysis)
	case v1alpha1.PhasePaused:
		s = firstClause(st.Message) + " · " + weightState(st)
	case v1alpha1.PhaseSucceeded:
		s = "promoted to 100%" + settling(st)
	case v1alpha1.PhaseRolledBack:
		s = "rolled back: " + culprit(st) + settling(st)
	default: // Aborted, Failed
		s = firstClause(st.Message) + settling(st)
	}
	return clip(s, maxSummary)
}

// settling says, for a rollout that has ended, how far its last weight
// has got until it is on the route (and the proxies, when followed).
func settling(st v1alpha1.RolloutStatus) string {
	dp := st.DataPlane
	if st.AppliedWeight == st.CanaryWeight && (dp == nil || dp.Weight != st.CanaryWeight || dp.ConfirmedAt != nil) {
		return ""
	}
	return " · " + weightState(st)
}

// weightState says how far the canary's weight has got.
func weightState(st v1alpha1.RolloutStatus) string {
	w := st.CanaryWeight
	switch dp := st.DataPlane; {
	case st.AppliedWeight != w:
		return fmt.Sprintf("setting %d%%", w)
	case dp != nil && dp.Weight == w && dp.ConfirmedAt != nil:
		return fmt.Sprintf("%d%% on the proxies", w)
	case dp != nil && dp.Weight == w:
		return fmt.Sprintf("%d%% on the route, not yet on the proxies", w)
	case st.WeightConfirmedAt == nil:
		return fmt.Sprintf("%d%% written, confirming", w)
	}
	return fmt.Sprintf("%d%% on the route", w)
}

// analysisState says where the analysis stands, from its verdicts.
func analysisState(a v1alpha1.AnalysisStatus) string {
	pass, n := 0, 0
	for _, c := range a.Checks {
		if c.DryRun {
			continue
		}
		n++
		if c.Verdict == string(analysis.Pass) {
			pass++
		}
	}
	counted := fmt.Sprintf("%d/%d checks pass", pass, n)
	switch {
	case a.LastVerdict == "":
		return "no analysis yet"
	case a.LastVerdict == string(analysis.Fail):
		return "failing"
	case a.LastVerdict == string(analysis.Pass) && n == 0:
		return "analysis passes"
	case a.LastVerdict == string(analysis.Pass):
		return counted
	case a.InconclusiveSince != nil:
		return "no data"
	}
	return "gathering evidence, " + counted
}

// culprit names the first failing check of a rollback and how far over
// its limit it went, or the first clause of the message for a rollback
// that no check caused (no data, a closed window).
func culprit(st v1alpha1.RolloutStatus) string {
	var fails []v1alpha1.CheckStatus
	for _, c := range st.Analysis.Checks {
		if c.Verdict == string(analysis.Fail) && !c.DryRun {
			fails = append(fails, c)
		}
	}
	if len(fails) == 0 {
		return strings.TrimPrefix(firstClause(st.Message), "rolled back: ")
	}
	c := CheckResultOf(fails[0])
	s := c.Check + " on " + analysis.HopName(c.Hop)
	if x := analysis.FormatTimesLimit(c); x != "" {
		s += " " + x
	}
	if len(fails) > 1 {
		s += fmt.Sprintf(" (+%d more)", len(fails)-1)
	}
	return s
}

// firstClause is msg up to its first ";": the engine's messages say what
// happened first, then what it means for the traffic.
func firstClause(msg string) string {
	s, _, _ := strings.Cut(msg, ";")
	return strings.TrimSpace(s)
}
