package api

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// CheckView is one check's latest result as every surface shows it. The
// display rules (the source's name, "inbound" for the canary's own
// traffic, the values with their units and intervals, the order) are
// applied here, once; the figures themselves stay in
// status.analysis.checks for charts.
type CheckView struct {
	// Key identifies the check as its points in the series do
	// (readmodel.CheckKey), so that a surface can join the two.
	Key   string `json:"key"`
	Check string `json:"check"`
	// Hop is the edge, "checkout → payments", or "inbound" for the
	// canary's own traffic.
	Hop string `json:"hop"`
	// Source is what measured it: "metrics" (Prometheus) or "traces"
	// (Jaeger).
	Source string `json:"source"`
	// Verdict is Pass, Fail, Inconclusive or Skipped, with " (dry run)"
	// for a check that is only reported.
	Verdict string `json:"verdict"`
	// Failing is true for a failed check that acts (not a dry run): one
	// that rolls the canary back.
	Failing bool `json:"failing"`
	// Canary and Stable are each side's value with its interval, and
	// Limit the most the canary may have, all with units.
	Canary string `json:"canary"`
	Stable string `json:"stable"`
	Limit  string `json:"limit"`
	// Evidence is the sequential test's evidence against its threshold.
	Evidence string `json:"evidence"`
	// TimesLimit says how far over its limit the canary is, "×15.6 the
	// limit"; empty when it is not over.
	TimesLimit string `json:"timesLimit,omitempty"`
	// Window says what the check counted, "since the analysis began, 42 s
	// of data"; empty for a custom check, whose query names its own.
	Window string `json:"window,omitempty"`
	// NoData says a side had no data at all: the values are not
	// measurements, and surfaces say "no data" instead.
	NoData bool   `json:"noData,omitempty"`
	Reason string `json:"reason"`
}

// view is the API's view of r: the resource, and the status as people
// read it.
func view(r *v1alpha1.Rollout) Rollout {
	v := Rollout{
		Namespace: r.Namespace, Name: r.Name, UID: string(r.UID),
		ResourceVersion: r.ResourceVersion, CreatedAt: r.CreationTimestamp.UTC(),
		Phase: readmodel.PhaseOf(r), Step: readmodel.StepLabel(r), Target: readmodel.TargetOf(r.Spec), Checks: checkViews(r.Status.Analysis.Checks, tickTime(r)),
		Workload: workloadView(r), Releases: releaseViews(r), DataPlane: readmodel.DataPlaneLine(r), Graph: graphOf(r),
		Operations: rollout.Operations(r.Status.Phase, r.Spec.Paused), Due: dueView(r),
		Spec: r.Spec, Status: r.Status,
	}
	for k, val := range r.Annotations {
		if strings.HasPrefix(k, "serin.dev/") {
			if v.Requests == nil {
				v.Requests = map[string]string{}
			}
			v.Requests[k] = val
		}
	}
	return v
}

// checkViews renders cs with the failing checks first, keeping the
// stored order within each group: what rolled the canary back is what a
// person looks for first.
func checkViews(cs []v1alpha1.CheckStatus, at time.Time) []CheckView {
	out := make([]CheckView, 0, len(cs))
	for _, c := range cs {
		cr := rollout.CheckResultOf(c)
		cv := CheckView{
			TimesLimit: analysis.FormatTimesLimit(cr), Window: analysis.FormatWindow(cr.Since, at), NoData: c.NoData,
			Key: readmodel.CheckKey(c.Check, c.Hop, c.Source), Check: c.Check, Hop: c.Hop, Source: analysis.SourceName(c.Source), Verdict: c.Verdict,
			Failing: c.Verdict == string(analysis.Fail) && !c.DryRun,
			Canary:  analysis.FormatWithInterval(c.Canary, c.CanaryLow, c.CanaryHigh, c.Unit),
			Stable:  analysis.FormatWithInterval(c.Stable, c.StableLow, c.StableHigh, c.Unit),
			Limit:   analysis.FormatValue(c.Limit, c.Unit), Reason: c.Reason,
			Evidence: analysis.FormatEvidence(c.Evidence, c.Threshold, c.EvidenceAtSeconds),
		}
		if cv.Hop == "" {
			cv.Hop = "inbound"
		}
		if c.DryRun {
			cv.Verdict += " (dry run)"
		}
		out = append(out, cv)
	}
	slices.SortStableFunc(out, func(a, b CheckView) int { return btoi(b.Failing) - btoi(a.Failing) })
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// DueView is what a progressing rollout waits for next, as the controller
// counts it (rollout.DueOf), for a countdown.
type DueView struct {
	// NextStepAt is the earliest time of the next step, if the analysis
	// passes then; NextStep names it, "step 3/4 (50%)" or "100%".
	NextStepAt *time.Time `json:"nextStepAt,omitempty"`
	NextStep   string     `json:"nextStep,omitempty"`
	// NoDataAt is when an analysis that has had no data since
	// status.analysis.inconclusiveSince ends the rollout by NoDataAction,
	// "rollback" or "pause"; absent while there is data.
	NoDataAt     *time.Time `json:"noDataAt,omitempty"`
	NoDataAction string     `json:"noDataAction,omitempty"`
}

// dueView is r's DueView, or nil when it waits for nothing that can be
// counted down.
func dueView(r *v1alpha1.Rollout) *DueView {
	d := rollout.DueOf(r.Spec, r.Status)
	if d.NextStep.IsZero() && d.NoData.IsZero() {
		return nil
	}
	v := &DueView{}
	if !d.NextStep.IsZero() {
		t := d.NextStep.UTC()
		v.NextStepAt = &t
		steps := r.Spec.Defaulted().Steps
		if next := int(r.Status.CurrentStep) + 1; next < len(steps) {
			v.NextStep = fmt.Sprintf("step %s (%d%%)", rollout.StepOf(int32(next), len(steps)), steps[next])
			if steps[next] == 100 {
				v.NextStep = "100%"
			}
		}
	}
	if !d.NoData.IsZero() {
		t := d.NoData.UTC()
		v.NoDataAt, v.NoDataAction = &t, strings.ToLower(d.NoDataAction)
	}
	return v
}

// tickTime is when r's latest checks were judged, the end of their window.
func tickTime(r *v1alpha1.Rollout) time.Time {
	if t := r.Status.Analysis.LastTickAt; t != nil {
		return t.Time
	}
	return time.Time{}
}
