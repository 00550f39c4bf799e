package api

import (
	"fmt"
	"time"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// WorkloadView is the delivered Deployment's state as every surface shows
// it; status.workload keeps the stored fields.
type WorkloadView struct {
	// Deployment is the user's Deployment, in the rollout's namespace.
	Deployment string `json:"deployment"`
	// StableCopy and CanaryCopy are serin's two copies of it.
	StableCopy string `json:"stableCopy"`
	CanaryCopy string `json:"canaryCopy"`
	// Adopted says the stable copy serves the route; AdoptedAt is since when.
	Adopted   bool       `json:"adopted"`
	AdoptedAt *time.Time `json:"adoptedAt,omitempty"`
	// Replicas is how many replicas each copy runs.
	Replicas int32 `json:"replicas"`
	// StableRevision is the revision the stable copy serves.
	StableRevision string `json:"stableRevision,omitempty"`
	// Releasing is the revision of the release in progress, empty when
	// none is.
	Releasing string `json:"releasing,omitempty"`
	// State says it in words: "adopting", "releasing revision 5d8f…",
	// or "stable at revision 5d8f…, waiting for a change of the template".
	State string `json:"state"`
}

// ReleaseView is one release as every surface shows it.
type ReleaseView struct {
	Revision string `json:"revision"`
	// Images are the template's images, "name=image, ..." sorted by name.
	Images string `json:"images"`
	// By names who asked for the release through serin; empty for a
	// template changed otherwise (kubectl, GitOps).
	By        string     `json:"by,omitempty"`
	StartedAt time.Time  `json:"startedAt"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	// Duration is how long the release took, "4m10s"; empty while it runs.
	Duration string `json:"duration,omitempty"`
	// Outcome is Succeeded, RolledBack, Aborted, Failed or Superseded once
	// the release has ended; "Running" while it runs, and the phase with
	// ", finishing" while its end is carried out on the copies.
	Outcome string `json:"outcome"`
	// Running says the release has not ended.
	Running bool `json:"running"`
	// Stable says this revision is the one the stable copy serves.
	Stable     bool   `json:"stable"`
	Reason     string `json:"reason,omitempty"`
	WorstCheck string `json:"worstCheck,omitempty"`
}

// workloadView renders r's workload, or nil when r delivers none.
func workloadView(r *v1alpha1.Rollout) *WorkloadView {
	w, ok := rollout.WorkloadOf(r)
	if !ok {
		return nil
	}
	v := &WorkloadView{Deployment: w.Deployment, StableCopy: w.StableCopy(), CanaryCopy: w.CanaryCopy(), State: "adopting"}
	ws := r.Status.Workload
	if ws == nil {
		return v
	}
	v.Replicas, v.StableRevision = max(ws.Replicas, 1), ws.StableRevision
	if ws.AdoptedAt == nil {
		return v
	}
	t := ws.AdoptedAt.UTC()
	v.Adopted, v.AdoptedAt = true, &t
	if ws.Release != "" && !ws.Done {
		v.Releasing = ws.Release
		v.State = "releasing revision " + ws.Release
		return v
	}
	v.State = fmt.Sprintf("stable at revision %s, waiting for a change of the template", ws.StableRevision)
	return v
}

// releaseViews renders r's releases newest first.
func releaseViews(r *v1alpha1.Rollout) []ReleaseView {
	rs := r.Status.Releases
	if len(rs) == 0 {
		return nil
	}
	stable := ""
	if ws := r.Status.Workload; ws != nil {
		stable = ws.StableRevision
	}
	out := make([]ReleaseView, 0, len(rs))
	for i := len(rs) - 1; i >= 0; i-- {
		rel := rs[i]
		v := ReleaseView{Revision: rel.Revision, Images: rollout.ImagesString(rel.Images), StartedAt: rel.StartedAt.UTC(),
			Outcome: rel.Outcome, Stable: rel.Revision == stable, Reason: rel.Reason, WorstCheck: rel.WorstCheck, By: rel.By}
		if rel.FinishedAt != nil {
			end := rel.FinishedAt.UTC()
			v.EndedAt, v.Duration = &end, shortDuration(end.Sub(v.StartedAt))
		}
		// Only the newest release can still run; its end is being
		// carried out on the copies once the phase is terminal.
		switch newest := i == len(rs)-1; {
		case rel.Outcome != "":
		case !newest:
			v.Outcome = "Ended"
		case r.Status.Phase.Terminal():
			v.Running, v.Outcome = true, string(r.Status.Phase)+", finishing"
		default:
			v.Running, v.Outcome = true, "Running"
		}
		out = append(out, v)
	}
	return out
}

// shortDuration says d to the second, with at most two units: "45s",
// "4m10s", "2h05m".
func shortDuration(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}
