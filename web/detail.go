package web

import (
	"slices"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// detailView is the rollout page's frame: what the page shows before its
// script has run, and what the script needs to start (the rollout's
// identity and resourceVersion, and the controls this user may use). The
// analysis, the per-hop table and the history are drawn by rollout.js
// and analysis.js only, from the API's JSON, so that their display rules
// live in one place; the header below is drawn by both, with the same
// rules, so that the first paint already tells the truth.
type detailView struct {
	Namespace, Name string
	// ResourceVersion is the version the page was rendered from: the
	// script draws no answer older than it.
	ResourceVersion string
	Phase           string
	Message         string
	Target          string // "checkout: v1 → v2"
	Created         time.Time
	Changed         time.Time
	Paused          bool
	Terminal        bool
	// Retryable says the rollout may run again (rollout.Operations offers
	// retry), as the API's view of it says to rollout.js.
	Retryable bool
	// Outcome says how a rollout ended without success, and OutcomeWhy
	// the controller's message, unless the failing checks say it.
	Outcome, OutcomeWhy string
	Steps               []stepView
	Weight, Stable      int32
	Ops                 []string // the operations this user may do
	// ShowControls says whether any of Ops applies in the rollout's phase:
	// a finished rollout offers none, or Retry alone.
	ShowControls bool
	// Deployment is the Deployment the rollout delivers, empty when it
	// delivers none; the page then has a releases table, which
	// rollout.js draws from the API's view (its releases and workload).
	Deployment string
	// DataPlane says whether the proxies carry the weight
	// (readmodel.DataPlaneLine), as rollout.js draws it from the API.
	DataPlane string
}

// stepView is one rung of the step ladder.
type stepView struct {
	Weight int32
	State  string // done, current, stopped or todo
}

func (c *Console) detail(ro *v1alpha1.Rollout) detailView {
	st := ro.Status
	sum := readmodel.Summarize(ro) // the phase, target and time the list shows, too
	v := detailView{
		Namespace: ro.Namespace, Name: ro.Name, ResourceVersion: ro.ResourceVersion,
		Phase: string(sum.Phase), Message: st.Message,
		Created: sum.CreatedAt, Changed: sum.UpdatedAt,
		Paused: ro.Spec.Paused, Terminal: st.Phase.Terminal(),
		Retryable: slices.Contains(rollout.Operations(st.Phase, ro.Spec.Paused), rollout.OpRetry),
		Weight:    st.CanaryWeight, Stable: 100 - st.CanaryWeight,
		Target: sum.Target, DataPlane: readmodel.DataPlaneLine(ro),
	}
	if w, ok := rollout.WorkloadOf(ro); ok {
		v.Deployment = w.Deployment
	}
	v.Outcome, v.OutcomeWhy = outcome(ro)
	if v.Outcome != "" {
		v.Message = "" // the outcome says it, prominently
	}
	v.Steps = ladder(ro)
	return v
}

// outcomeHeadlines say what a rollout's end means for its traffic, one
// sentence per phase that ends without success (rollout.js has the same).
var outcomeHeadlines = map[v1alpha1.Phase]string{
	v1alpha1.PhaseRolledBack: "Rolled back: all traffic is on the stable version.",
	v1alpha1.PhaseAborted:    "Aborted: all traffic is on the stable version.",
	v1alpha1.PhaseFailed:     "Failed: the rollout could not go on.",
}

// outcome is the headline of a rollout that ended without success and the
// controller's message, which says why. A rollback with failing checks
// leaves the message out: the page lists those checks from their fields,
// and the message stays in the history, so that it is shown once.
func outcome(ro *v1alpha1.Rollout) (headline, why string) {
	st := ro.Status
	headline = outcomeHeadlines[st.Phase]
	if headline == "" {
		return "", ""
	}
	if st.Phase == v1alpha1.PhaseRolledBack && slices.ContainsFunc(st.Analysis.Checks, failing) {
		return headline, ""
	}
	why = st.Message
	if why == "" && len(st.History) > 0 {
		why = st.History[len(st.History)-1].Message
	}
	if why != "" {
		why = strings.ToUpper(why[:1]) + why[1:]
	}
	return headline, why
}

// failing is a check that failed for real, not in a dry run.
func failing(ck v1alpha1.CheckStatus) bool { return ck.Verdict == "Fail" && !ck.DryRun }

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
