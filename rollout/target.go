package rollout

import (
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// AnalysisTarget is the analysis.Target the analysis of ro judges: the
// service, and how its canary and stable are told apart in metrics and
// traces. The API reads it to mark a trace's spans canary or stable
// exactly as the analysis counted them, instead of deriving the rule
// again.
func AnalysisTarget(ro *v1alpha1.Rollout) analysis.Target {
	return analysisRequest(ro, analysis.Config{}, time.Time{}).Target
}
