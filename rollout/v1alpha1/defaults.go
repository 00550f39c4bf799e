package v1alpha1

// Defaulted returns a copy of s with every unset field at its default, the
// same defaults the CRD schema makes the API server apply. The engine uses
// it so that objects built in Go (tests, the REST API) behave like stored ones.
func (s RolloutSpec) Defaulted() RolloutSpec {
	out := *s.DeepCopy()
	if len(out.Steps) == 0 {
		out.Steps = append([]int32(nil), DefaultSteps...)
	}
	if out.StepInterval.Duration == 0 {
		out.StepInterval.Duration = DefaultStepInterval
	}
	if out.Analysis == nil {
		out.Analysis = &AnalysisSpec{}
	}
	a := out.Analysis
	if a.Interval.Duration == 0 {
		a.Interval.Duration = DefaultAnalysisInterval
	}
	if a.FailureThreshold == 0 {
		a.FailureThreshold = DefaultFailureThreshold
	}
	if a.InconclusiveLimit.Duration == 0 {
		a.InconclusiveLimit.Duration = DefaultInconclusiveLimit
	}
	if a.OnInconclusive == "" {
		a.OnInconclusive = OnInconclusiveRollback
	}
	return out
}
