package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Defaulted returns a copy of s with every unset field at its default, the
// same defaults the CRD schema makes the API server apply. The engine uses
// it so that objects built in Go (tests, the REST API) behave like stored ones.
func (s RolloutSpec) Defaulted() RolloutSpec {
	out := *s.DeepCopy()
	if len(out.Steps) == 0 {
		out.Steps = append([]int32(nil), DefaultSteps...)
	}
	if out.StepInterval == nil {
		out.StepInterval = &metav1.Duration{Duration: DefaultStepInterval}
	}
	if out.ProgressDeadline == nil {
		out.ProgressDeadline = &metav1.Duration{Duration: DefaultProgressDeadline}
	}
	if out.Preflight == nil {
		out.Preflight = &PreflightSpec{}
	}
	if out.Preflight.SidecarResources == "" {
		out.Preflight.SidecarResources = SidecarResourcesRequire
	}
	if out.Analysis == nil {
		out.Analysis = &AnalysisSpec{}
	}
	a := out.Analysis
	if a.Interval == nil {
		a.Interval = &metav1.Duration{Duration: DefaultAnalysisInterval}
	}
	if a.Window == nil {
		a.Window = &metav1.Duration{Duration: DefaultAnalysisWindow}
	}
	if a.MinRequests == 0 {
		a.MinRequests = DefaultMinRequests
	}
	if a.Alpha == nil {
		alpha := DefaultAlpha
		a.Alpha = &alpha
	}
	if a.OnStableViolation == "" {
		a.OnStableViolation = OnStableViolationHold
	}
	if a.InconclusiveLimit == nil {
		a.InconclusiveLimit = &metav1.Duration{Duration: DefaultInconclusiveLimit}
	}
	if a.OnInconclusive == "" {
		a.OnInconclusive = OnInconclusiveRollback
	}
	return out
}
