package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Phase is where a Rollout is in its life.
// +kubebuilder:validation:Enum=Pending;Progressing;Paused;Succeeded;RolledBack;Aborted;Failed
type Phase string

// The phases of a Rollout. Succeeded, RolledBack, Aborted and Failed are
// terminal: a Rollout describes one canary run and never leaves them,
// except by a retry, and in workload mode by the next release, which
// starts again from Pending.
const (
	PhasePending     Phase = "Pending"
	PhaseProgressing Phase = "Progressing"
	PhasePaused      Phase = "Paused"
	PhaseSucceeded   Phase = "Succeeded"
	PhaseRolledBack  Phase = "RolledBack"
	PhaseAborted     Phase = "Aborted"
	PhaseFailed      Phase = "Failed"
)

// Terminal reports whether the phase is final.
func (p Phase) Terminal() bool {
	switch p {
	case PhaseSucceeded, PhaseRolledBack, PhaseAborted, PhaseFailed:
		return true
	}
	return false
}

// Annotations that request an imperative action on a Rollout. They are
// written by the REST API or by hand (kubectl annotate) and read by the
// controller; they do not change the spec's generation.
const (
	// AnnotationAbort asks the controller to abort; its value is the reason.
	AnnotationAbort = "serin.dev/abort"
	// AnnotationAbortBy names who asked for the abort.
	AnnotationAbortBy = "serin.dev/abort-by"
	// AnnotationPromote, set to "true", asks the controller to jump to 100%.
	AnnotationPromote = "serin.dev/promote"
	// AnnotationPromoteBy names who asked for the promotion.
	AnnotationPromoteBy = "serin.dev/promote-by"
	// AnnotationRetry, set to "true", asks the controller to run a
	// RolledBack or Aborted rollout again from its first step, after a
	// fresh preflight and with a fresh analysis. The controller removes it
	// once the retry is recorded, with the abort and promote requests of
	// the attempt it replaces, so that it acts once and a later rollback
	// is not retried by a leftover request.
	AnnotationRetry = "serin.dev/retry"
	// AnnotationRetryBy names who asked for the retry.
	AnnotationRetryBy = "serin.dev/retry-by"
	// AnnotationReleaseBy, on a delivered Deployment's metadata (outside
	// its template), names who last set its images through serin, and
	// AnnotationReleaseImages the images they set ("name=image, ..."): a
	// release whose template runs exactly those images records its
	// author; one made otherwise (kubectl set image) records none.
	AnnotationReleaseBy     = "serin.dev/release-by"
	AnnotationReleaseImages = "serin.dev/release-images"
	// AnnotationPausedBy names who last set spec.paused through serin
	// (the REST API, the CLI, the console), after the generation that
	// change made: "5/alice". A pause or resume is credited to them only
	// at that generation, so that a later hand edit of spec.paused is
	// credited to no one rather than to the wrong person.
	AnnotationPausedBy = "serin.dev/paused-by"
)

// LabelTrack is the pod label of serin's copies of a delivered workload:
// "stable" or "canary", which the DestinationRule subsets of the same
// names select.
const LabelTrack = "serin.dev/track"

// Finalizer is set on every Rollout so that deleting one mid-way first
// restores the route to 100/0.
const Finalizer = "serin.dev/restore-route"

// Rollout moves traffic on one Istio VirtualService route from a stable
// version to a canary version in steps, while analysis compares the two.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ro,categories=serin
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=string,JSONPath=`.status.step`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`
// +kubebuilder:printcolumn:name="VirtualService",type=string,JSONPath=`.spec.virtualService`,priority=1
// +kubebuilder:printcolumn:name="Deployment",type=string,JSONPath=`.spec.workload.deployment`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.summary`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutSpec   `json:"spec"`
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollouts.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}

// RolloutSpec is what the user asks for. Exactly one of the two modes is
// given: subset mode (stableSubset and canarySubset of one host) or host
// mode (stableHost and canaryHost, for meshes that split by service).
//
// +kubebuilder:validation:XValidation:rule="has(self.workload) ? (!has(self.stableSubset) && !has(self.canarySubset) && !has(self.stableHost) && !has(self.canaryHost)) : ((has(self.stableSubset) && has(self.canarySubset) && !has(self.stableHost) && !has(self.canaryHost)) || (has(self.stableHost) && has(self.canaryHost) && !has(self.stableSubset) && !has(self.canarySubset)))",message="give either stableSubset and canarySubset (subset mode), stableHost and canaryHost (host mode), or workload (serin then names the subsets stable and canary), and only one of them"
// +kubebuilder:validation:XValidation:rule="has(self.workload) == has(oldSelf.workload) && (!has(self.workload) || self.workload == oldSelf.workload)",message="workload cannot be added, removed or changed once a rollout exists; create a new Rollout instead"
// +kubebuilder:validation:XValidation:rule="!has(self.stableSubset) || !has(self.canarySubset) || self.stableSubset != self.canarySubset",message="stableSubset and canarySubset must differ"
// +kubebuilder:validation:XValidation:rule="!has(self.stableHost) || !has(self.canaryHost) || self.stableHost != self.canaryHost",message="stableHost and canaryHost must differ"
// +kubebuilder:validation:XValidation:rule="self.virtualService == oldSelf.virtualService && has(self.route) == has(oldSelf.route) && (!has(self.route) || self.route == oldSelf.route) && has(self.host) == has(oldSelf.host) && (!has(self.host) || self.host == oldSelf.host) && has(self.stableSubset) == has(oldSelf.stableSubset) && (!has(self.stableSubset) || self.stableSubset == oldSelf.stableSubset) && has(self.canarySubset) == has(oldSelf.canarySubset) && (!has(self.canarySubset) || self.canarySubset == oldSelf.canarySubset) && has(self.stableHost) == has(oldSelf.stableHost) && (!has(self.stableHost) || self.stableHost == oldSelf.stableHost) && has(self.canaryHost) == has(oldSelf.canaryHost) && (!has(self.canaryHost) || self.canaryHost == oldSelf.canaryHost)",message="virtualService, route, host and the stable/canary subsets or hosts cannot change once a rollout exists; create a new Rollout instead"
type RolloutSpec struct {
	// VirtualService is the name of the Istio VirtualService, in the
	// Rollout's namespace, whose route serin shifts.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	VirtualService string `json:"virtualService"`

	// Route is the name of the http route to shift. When it is empty, the
	// route is the single http route whose destinations include both the
	// stable and the canary destination.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=""
	Route string `json:"route"`

	// Host is the destination host in subset mode. It defaults to the host
	// of the route's destinations.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=""
	Host string `json:"host"`

	// StableSubset is the DestinationRule subset that serves today's version.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	StableSubset string `json:"stableSubset,omitempty"`

	// CanarySubset is the DestinationRule subset of the new version.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	CanarySubset string `json:"canarySubset,omitempty"`

	// StableHost is the stable service's host, in host mode.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	StableHost string `json:"stableHost,omitempty"`

	// CanaryHost is the canary service's host, in host mode.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	CanaryHost string `json:"canaryHost,omitempty"`

	// Workload, when set, makes the Rollout deliver a Deployment: serin
	// runs the Deployment's pod template in two copies of its own (the
	// stable and the canary track, selected by the DestinationRule subsets
	// "stable" and "canary"), and every change of the template is a new
	// release, walked through the steps and promoted or rolled back. The
	// Rollout then never finishes: after each release it waits for the next.
	// +optional
	Workload *WorkloadRef `json:"workload,omitempty"`

	// ProgressDeadline bounds how long a release's canary may take to
	// become ready (workload mode) before the release fails.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="progressDeadline must be at least 1s"
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`

	// Preflight configures the checks of a delivered workload's pod
	// template before serin runs it.
	// +optional
	Preflight *PreflightSpec `json:"preflight,omitempty"`

	// Steps are the canary weights, in percent, that the rollout walks
	// through. They are strictly increasing, each in [1, 100], and the last
	// is 100.
	// +optional
	// +kubebuilder:default={10,25,50,100}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=100
	// +kubebuilder:validation:XValidation:rule="self.all(i, self.filter(j, j <= i).size() == self.filter(j, j < i).size() + 1) && self.isSorted()",message="steps must be strictly increasing"
	// +kubebuilder:validation:XValidation:rule="self[self.size() - 1] == 100",message="the last step must be 100"
	Steps []int32 `json:"steps,omitempty"`

	// StepInterval is how long each step dwells while analysis passes.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="stepInterval must be at least 1s"
	StepInterval *metav1.Duration `json:"stepInterval,omitempty"`

	// Analysis configures the checks that compare canary and stable.
	// +optional
	Analysis *AnalysisSpec `json:"analysis,omitempty"`

	// Notifications names the channels this rollout's events go to; empty
	// means every configured channel that wants them.
	// +optional
	Notifications *Notifications `json:"notifications,omitempty"`

	// Schedule delays the start and limits progress to deployment windows.
	// +optional
	Schedule *Schedule `json:"schedule,omitempty"`

	// Paused holds the rollout at its current weight. serin sets it too
	// when it pauses by itself (for example on drift); set it to false to
	// resume.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// AnalysisSpec configures the analysis loop. Every field has a default
// that suits most users: declare nothing and serin compares error rate and
// p99 of the canary's inbound traffic and of every hop it calls, from
// Prometheus and from traces, against stable.
type AnalysisSpec struct {
	// Interval is the time between two analysis ticks.
	// +optional
	// +kubebuilder:default="2s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="analysis.interval must be at least 1s"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Window bounds how far back the first trace search of a rollout
	// reaches. The sequential tests count every request since the
	// rollout's first weight reached the route, and nothing before it.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="analysis.window must be at least 1s"
	Window *metav1.Duration `json:"window,omitempty"`

	// MinRequests is the sample of each side a check needs before it can
	// pass; below it the check is inconclusive. No data is never a pass.
	// A failure needs no minimum: the sequential test decides.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	MinRequests int32 `json:"minRequests,omitempty"`

	// Alpha bounds the probability that a canary no worse than stable is
	// ever rolled back by the built-in checks, over the whole rollout,
	// however often it is analysed. Default 0.01.
	// +optional
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=0.2
	Alpha *float64 `json:"alpha,omitempty"`

	// OnStableViolation is what happens when stable itself is above an
	// absolute limit (maxPercent, maxMs), so the canary cannot be judged
	// against it: Hold (the default) keeps the weight and goes on
	// analysing without advancing; Pause pauses the rollout; Rollback
	// returns traffic to stable.
	// +optional
	// +kubebuilder:default=Hold
	// +kubebuilder:validation:Enum=Hold;Pause;Rollback
	OnStableViolation string `json:"onStableViolation,omitempty"`

	// InconclusiveLimit is how long analysis may stay without data (a side
	// with no requests, a data source down) before OnInconclusive applies.
	// A canary with data on both sides is never rolled back for being
	// undecided.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="analysis.inconclusiveLimit must be at least 1s"
	InconclusiveLimit *metav1.Duration `json:"inconclusiveLimit,omitempty"`

	// OnInconclusive is what happens when analysis stays inconclusive for
	// InconclusiveLimit: Rollback (the default) or Pause.
	// +optional
	// +kubebuilder:default=Rollback
	// +kubebuilder:validation:Enum=Rollback;Pause
	OnInconclusive string `json:"onInconclusive,omitempty"`

	// ErrorRate limits the canary's inbound error rate.
	// +optional
	ErrorRate *ErrorRateCheck `json:"errorRate,omitempty"`
	// Latency limits the canary's inbound p99 latency.
	// +optional
	Latency *LatencyCheck `json:"latency,omitempty"`
	// Hops limits every downstream call the canary makes.
	// +optional
	Hops *HopChecks `json:"hops,omitempty"`
	// Traces configures the per-edge checks from traces.
	// +optional
	Traces *TraceChecks `json:"traces,omitempty"`
	// Custom are extra PromQL checks.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Custom []CustomCheck `json:"custom,omitempty"`
	// Match overrides how canary and stable are told apart in metrics,
	// for meshes labelled differently: destination-side label matchers.
	// +optional
	Match *MatchOverride `json:"match,omitempty"`
}

// WorkloadRef names the Deployment whose releases a Rollout delivers.
type WorkloadRef struct {
	// Deployment is the name of the Deployment, in the Rollout's
	// namespace. serin reads its pod template and scales it to zero once
	// its copies serve; it never writes the template.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=56
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Deployment string `json:"deployment"`
}

// PreflightSpec configures the checks of a delivered workload's template.
type PreflightSpec struct {
	// SidecarResources is what happens when the pod template does not set
	// the istio-proxy sidecar's CPU and memory requests and limits (the
	// sidecar.istio.io/proxyCPU, proxyMemory, proxyCPULimit and
	// proxyMemoryLimit annotations, or an istio-proxy container's
	// resources): Require (the default) refuses to run the template;
	// Warn records the SidecarResources condition and goes on.
	// +optional
	// +kubebuilder:default=Require
	// +kubebuilder:validation:Enum=Require;Warn
	SidecarResources string `json:"sidecarResources,omitempty"`
}

// Values of PreflightSpec.SidecarResources.
const (
	SidecarResourcesRequire = "Require"
	SidecarResourcesWarn    = "Warn"
)

// Notifications selects notification channels by name.
type Notifications struct {
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	Channels []string `json:"channels,omitempty"`
	// Runbook is the URL of what to do when this rollout fails, e.g.
	// "https://wiki.example.com/checkout/canary". Notifications link it.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s<>"]+$`
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != ''",message="notifications.runbook must be an absolute http or https URL with a host"
	Runbook string `json:"runbook,omitempty"`
}

// Schedule says when a rollout may start and advance.
type Schedule struct {
	// Start is a cron expression (five fields, or a descriptor such as
	// @daily): the rollout waits in Pending until its first time after the
	// Rollout was created.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every [0-9a-zµ.]+|\S+( +\S+){4})$`
	Start string `json:"start,omitempty"`
	// TimeZone is the IANA time zone of every cron expression here, e.g.
	// Europe/Berlin. Default UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	TimeZone string `json:"timeZone,omitempty"`
	// Windows are the deployment windows: the rollout starts and advances
	// only inside one. None means always.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Windows []Window `json:"windows,omitempty"`
	// OutsideWindow is what a progressing rollout does when its window
	// closes: Hold (the default) keeps the weight and goes on when the
	// next window opens; Rollback returns traffic to stable.
	// +optional
	// +kubebuilder:default=Hold
	// +kubebuilder:validation:Enum=Hold;Rollback
	OutsideWindow string `json:"outsideWindow,omitempty"`
	// Freeze lists periods when no rollout starts or advances.
	// +optional
	// +kubebuilder:validation:MaxItems=50
	Freeze []FreezePeriod `json:"freeze,omitempty"`
}

// Window is a deployment window: it opens at each time of the cron
// expression Start and stays open for Duration.
type Window struct {
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$`
	Start string `json:"start"`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="a window's duration must be at least 1m"
	Duration metav1.Duration `json:"duration"`
}

// FreezePeriod is a range of time, [From, To), when nothing starts or
// advances.
// +kubebuilder:validation:XValidation:rule="self.to > self.from",message="a freeze period must end after it starts"
type FreezePeriod struct {
	From metav1.Time `json:"from"`
	To   metav1.Time `json:"to"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason,omitempty"`
}

// Values of Schedule.OutsideWindow.
const (
	OutsideWindowHold     = "Hold"
	OutsideWindowRollback = "Rollback"
)

// ErrorRateCheck limits an error rate: at most MaxPercent, and at most
// stable's plus MaxIncreasePoints percentage points.
type ErrorRateCheck struct {
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxPercent *float64 `json:"maxPercent,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxIncreasePoints *float64 `json:"maxIncreasePoints,omitempty"`
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// DryRun evaluates and reports the check but never acts on it.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// LatencyCheck limits the p99 latency: at most MaxMs, and at most
// MaxRatio × stable + SlackMs.
type LatencyCheck struct {
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxMs *float64 `json:"maxMs,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRatio *float64 `json:"maxRatio,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	SlackMs *float64 `json:"slackMs,omitempty"`
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// HopChecks are the per-hop checks: the same two checks on each service
// the canary calls. They default to the inbound limits.
type HopChecks struct {
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// +optional
	ErrorRate *ErrorRateCheck `json:"errorRate,omitempty"`
	// +optional
	Latency *LatencyCheck `json:"latency,omitempty"`
	// Calls limits the calls to each hop per inbound request.
	// +optional
	Calls *CallRateCheck `json:"calls,omitempty"`
}

// CallRateCheck limits the calls the canary makes to a downstream service
// per inbound request: at most MaxRatio × stable's.
type CallRateCheck struct {
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRatio *float64 `json:"maxRatio,omitempty"`
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// TraceChecks configures the per-edge checks from traces, judged with the
// hop limits.
type TraceChecks struct {
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// CustomCheck is a PromQL query that returns one value, compared with a
// threshold. The query may use {{ .Namespace }}, {{ .Name }},
// {{ .Service }}, {{ .Host }}, {{ .CanaryVersion }}, {{ .StableVersion }},
// {{ .CanaryHost }}, {{ .StableHost }} and {{ .Window }}.
type CustomCheck struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`
	// +kubebuilder:validation:Enum="<";"<=";">";">="
	Op        string  `json:"op"`
	Threshold float64 `json:"threshold"`
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// MatchOverride gives explicit destination-side label matchers for each
// side, e.g. {destination_workload: checkout-v2}.
type MatchOverride struct {
	// +kubebuilder:validation:MinProperties=1
	Canary map[string]string `json:"canary"`
	// +kubebuilder:validation:MinProperties=1
	Stable map[string]string `json:"stable"`
}

// Defaults of the fields above, applied by the API server from the CRD
// schema and by Defaulted for objects built in Go.
const (
	DefaultStepInterval       = 30 * time.Second
	DefaultAnalysisInterval   = 2 * time.Second
	DefaultAnalysisWindow     = 30 * time.Second
	DefaultMinRequests        = 20
	DefaultAlpha              = 0.01
	DefaultInconclusiveLimit  = 60 * time.Second
	DefaultProgressDeadline   = 10 * time.Minute
	OnStableViolationHold     = "Hold"
	OnStableViolationPause    = "Pause"
	OnStableViolationRollback = "Rollback"
	OnInconclusiveRollback    = "Rollback"
	OnInconclusivePause       = "Pause"
)

// DefaultSteps are the canary weights used when spec.steps is empty.
var DefaultSteps = []int32{10, 25, 50, 100}

// RolloutStatus is what the controller observed and did.
type RolloutStatus struct {
	// Phase is where the rollout is.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// CurrentStep is the index into spec.steps of the step being dwelt on,
	// or -1 before the first step.
	// +optional
	CurrentStep int32 `json:"currentStep"`

	// Step is the current step as every surface shows it, counting from
	// one: "2/4"; "0/4" before the first step.
	// +optional
	Step string `json:"step,omitempty"`

	// CanaryWeight is the canary weight, in percent, that serin has decided
	// on for the route. Stable gets 100 minus this.
	// +optional
	CanaryWeight int32 `json:"canaryWeight"`

	// AppliedWeight is the canary weight that serin last confirmed on the
	// VirtualService by reading it back. It differs from CanaryWeight only
	// while a write is in flight, which lets a restarted controller tell
	// its own unfinished write from a hand edit.
	// +optional
	AppliedWeight int32 `json:"appliedWeight"`

	// StepStartedAt is when the current step began.
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`
	// WeightConfirmedAt is when the current step's weight was first seen
	// on the route. The step's dwell counts from then, not from the
	// decision, so a delayed write never shortens it.
	// +optional
	WeightConfirmedAt *metav1.Time `json:"weightConfirmedAt,omitempty"`

	// Message says, in plain words, why the rollout is where it is.
	// +optional
	Message string `json:"message,omitempty"`

	// Summary is where the rollout is, in a few words, kubectl's Reason
	// column: "25% on the route · 3/5 checks pass", "rolled back:
	// error-rate on checkout → payments ×15.6 the limit". It changes only
	// with what a person reads in the status, so that `kubectl get -w`
	// prints a line for each change.
	// +optional
	// +kubebuilder:validation:MaxLength=120
	Summary string `json:"summary,omitempty"`

	// Conditions are the standard Kubernetes conditions: Preflight,
	// MTLSStrict and Progressing.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the spec generation that the status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// NextStartAt is when a scheduled rollout may start, or when the next
	// deployment window opens, while it waits.
	// +optional
	NextStartAt *metav1.Time `json:"nextStartAt,omitempty"`

	// Target is what preflight resolved: the route, the host and the
	// version labels of the two subsets.
	// +optional
	Target *ResolvedTarget `json:"target,omitempty"`

	// Analysis holds the state of the analysis loop for the current step.
	// +optional
	Analysis AnalysisStatus `json:"analysis,omitempty"`

	// Workload is the state of the delivered Deployment, in workload mode.
	// +optional
	Workload *WorkloadStatus `json:"workload,omitempty"`

	// Releases are the latest releases of the workload, oldest first, at
	// most MaxReleases.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Releases []Release `json:"releases,omitempty"`

	// History lists the phase and step transitions, oldest first. It keeps
	// the most recent MaxHistory entries.
	// +optional
	History []Transition `json:"history,omitempty"`

	// DataPlane is whether the proxies carry the weight last written to
	// the route, read from istiod when the controller runs with
	// --istiod-url. A weight is on the route when the VirtualService holds
	// it; it is in effect for users only once the proxies have it.
	// +optional
	DataPlane *DataPlaneStatus `json:"dataPlane,omitempty"`
}

// DataPlaneStatus is the confirmation of one weight in the data plane.
type DataPlaneStatus struct {
	// Weight is the canary weight being confirmed: the last one written
	// to the route.
	Weight int32 `json:"weight"`
	// FromWeight is the canary weight on the route before that write.
	// +optional
	FromWeight int32 `json:"fromWeight,omitempty"`
	// DecidedAt is when serin decided that weight (the step or the
	// rollback), when known. Times here have microseconds: the data plane
	// follows a write within a second.
	// +optional
	DecidedAt *metav1.MicroTime `json:"decidedAt,omitempty"`
	// WrittenAt is when serin wrote that weight to the VirtualService.
	WrittenAt metav1.MicroTime `json:"writtenAt"`
	// ConfirmedAt is when every connected proxy that routes the service
	// had acknowledged a configuration carrying the weight; unset until
	// then.
	// +optional
	ConfirmedAt *metav1.MicroTime `json:"dataPlaneConfirmedAt,omitempty"`
	// Proxies is how many connected proxies route the service.
	// +optional
	Proxies int32 `json:"proxies,omitempty"`
	// Stragglers name the proxies that do not carry the weight yet, at
	// most MaxStragglers of them.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	Stragglers []string `json:"stragglers,omitempty"`
	// Message says why the weight is not confirmed yet (istiod
	// unreachable, proxies that do not acknowledge).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message,omitempty"`
	// Notified is set once the rollback notification that waits for this
	// confirmation has been queued.
	// +optional
	Notified bool `json:"notified,omitempty"`
}

// MaxStragglers bounds status.dataPlane.stragglers.
const MaxStragglers = 10

// MaxHistory bounds status.history.
const MaxHistory = 50

// MaxReleases bounds status.releases.
const MaxReleases = 20

// WorkloadStatus is what serin knows of the Deployment it delivers.
type WorkloadStatus struct {
	// AdoptedAt is when the stable copy first served the route.
	// +optional
	AdoptedAt *metav1.Time `json:"adoptedAt,omitempty"`
	// Replicas is the Deployment's replica count, which the stable copy
	// runs; serin takes it from the Deployment when it scales it to zero.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// StableRevision is the revision (the pod template's hash) that the
	// stable copy runs.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`
	// Release is the revision of the release in progress, or of the last
	// one once it has ended.
	// +optional
	Release string `json:"release,omitempty"`
	// ReleaseStartedAt is when that release began: when serin saw the
	// template change.
	// +optional
	ReleaseStartedAt *metav1.Time `json:"releaseStartedAt,omitempty"`
	// Done says the release's outcome has been carried out on the
	// workload: the canary scaled down, and after a success the stable
	// copy running the new revision with the route back on it.
	// +optional
	Done bool `json:"done,omitempty"`
}

// Release is one release of a workload: one revision of its pod template
// walked through the steps.
type Release struct {
	// Revision is the pod template's hash.
	Revision string `json:"revision"`
	// Images are the template's container images, by container name.
	// +optional
	Images map[string]string `json:"images,omitempty"`
	// By names who asked for the release through serin (the REST API or
	// the CLI); empty for a template changed otherwise.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	By string `json:"by,omitempty"`
	// StartedAt is when serin saw the template change.
	StartedAt metav1.Time `json:"startedAt"`
	// FinishedAt is when the release ended.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// Outcome is Succeeded, RolledBack, Aborted, Failed or Superseded;
	// empty while the release runs.
	// +optional
	Outcome string `json:"outcome,omitempty"`
	// Reason says why it ended so.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
	// WorstCheck names the canary's worst check when it ended, e.g.
	// "error-rate (prometheus): 20% vs 0.5%".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	WorstCheck string `json:"worstCheck,omitempty"`
}

// AnalysisStatus is the analysis loop's memory between ticks. It lives in
// the status so that a restarted controller continues where it was.
type AnalysisStatus struct {
	// LastVerdict is the verdict of the latest tick: Pass, Fail or Inconclusive.
	// +optional
	LastVerdict string `json:"lastVerdict,omitempty"`
	// LastReason explains the latest verdict.
	// +optional
	LastReason string `json:"lastReason,omitempty"`
	// LastTickAt is when the latest tick ran.
	// +optional
	LastTickAt *metav1.Time `json:"lastTickAt,omitempty"`
	// Since is when the analysis began: the first tick with the rollout's
	// weight on the route. The sequential tests count traffic from then
	// on, across steps, and nothing before it.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// PassedTicks counts passing ticks since the step (or the latest
	// failure within it) began.
	// +optional
	PassedTicks int32 `json:"passedTicks,omitempty"`
	// CleanSince is when the current run of ticks without a failure began;
	// a step is promoted only after a whole dwell since then.
	// +optional
	CleanSince *metav1.Time `json:"cleanSince,omitempty"`
	// InconclusiveSince is when the analysis last started to be inconclusive
	// without a pass or a failure since.
	// +optional
	InconclusiveSince *metav1.Time `json:"inconclusiveSince,omitempty"`
	// FirstFailureAt is when a check's evidence first reached its
	// threshold: the detection time of a rollback.
	// +optional
	FirstFailureAt *metav1.Time `json:"firstFailureAt,omitempty"`
	// StableAboveSLO says stable itself was above an absolute limit at the
	// latest tick.
	// +optional
	StableAboveSLO bool `json:"stableAboveSLO,omitempty"`
	// Checks are the latest tick's results, one per check and hop.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	Checks []CheckStatus `json:"checks,omitempty"`
	// History holds the latest ticks' verdicts, oldest first, at most
	// MaxAnalysisHistory.
	// +optional
	History []AnalysisTick `json:"history,omitempty"`
}

// MaxAnalysisHistory bounds status.analysis.history.
const MaxAnalysisHistory = 30

// ResolvedTarget is the route and versions preflight found.
type ResolvedTarget struct {
	Route string `json:"route,omitempty"`
	Host  string `json:"host,omitempty"`
	// StableVersion and CanaryVersion are the subsets' version labels.
	StableVersion string `json:"stableVersion,omitempty"`
	CanaryVersion string `json:"canaryVersion,omitempty"`
}

// CheckStatus is one check's latest result.
type CheckStatus struct {
	// Check is the check's name, e.g. error-rate or latency-p99.
	Check string `json:"check"`
	// Hop is the edge, e.g. "checkout → payments"; empty for inbound.
	// +optional
	Hop string `json:"hop,omitempty"`
	// Source is prometheus or jaeger.
	Source string `json:"source"`
	// Verdict is Pass, Fail, Inconclusive or Skipped.
	Verdict string `json:"verdict"`
	// Kind is what the check measures: error-rate, error-rate-slo,
	// latency-p99, latency-p99-slo, call-rate or custom.
	// +optional
	Kind string `json:"kind,omitempty"`
	// Canary, Stable and Limit are in Unit (%, ms or calls/req); the Low
	// and High fields are each side's 95% confidence sequence.
	Canary float64 `json:"canary"`
	// +optional
	CanaryLow float64 `json:"canaryLow,omitempty"`
	// +optional
	CanaryHigh float64 `json:"canaryHigh,omitempty"`
	Stable     float64 `json:"stable"`
	// +optional
	StableLow float64 `json:"stableLow,omitempty"`
	// +optional
	StableHigh float64 `json:"stableHigh,omitempty"`
	Limit      float64 `json:"limit"`
	// +optional
	Unit           string  `json:"unit,omitempty"`
	CanaryRequests float64 `json:"canaryRequests"`
	StableRequests float64 `json:"stableRequests"`
	// Evidence is the sequential test's e-value, Threshold the 1/α it
	// must reach to reject, and EvidenceAtSeconds when it did, since the
	// analysis began.
	// +optional
	Evidence float64 `json:"evidence,omitempty"`
	// +optional
	Threshold float64 `json:"threshold,omitempty"`
	// +optional
	EvidenceAtSeconds float64 `json:"evidenceAtSeconds,omitempty"`
	// StableAboveLimit says stable itself is above the absolute limit.
	// +optional
	StableAboveLimit bool `json:"stableAboveLimit,omitempty"`
	// NoData says a side had no data at all, as opposed to a sample still
	// too small.
	// +optional
	NoData bool `json:"noData,omitempty"`
	// Since is the start of the window the check counts: every request
	// since then. The built-in checks count from the analysis start
	// (status.analysis.since); it is unset for custom checks, whose query
	// names its own range.
	// +optional
	Since  *metav1.Time `json:"since,omitempty"`
	Reason string       `json:"reason"`
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
	// TraceID is an example canary trace on this hop.
	// +optional
	TraceID string `json:"traceID,omitempty"`
}

// AnalysisTick is one tick's verdict in the analysis history.
type AnalysisTick struct {
	Time    metav1.Time `json:"time"`
	Verdict string      `json:"verdict"`
	Reason  string      `json:"reason"`
}

// Transition is one entry of status.history.
type Transition struct {
	// Time is when the transition happened.
	Time metav1.Time `json:"time"`
	// From is the phase and step before, for example "Progressing/1 (25%)".
	From string `json:"from"`
	// To is the phase and step after.
	To string `json:"to"`
	// Reason is a short machine-readable reason, such as StepAdvanced.
	Reason string `json:"reason"`
	// Message explains the transition in plain words.
	// +optional
	Message string `json:"message,omitempty"`
	// By names who acted, for a transition a person asked for (pause,
	// resume, promote, abort, retry, release); empty when serin acted by
	// itself or the person is not known.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	By string `json:"by,omitempty"`
	// DataPlaneConfirmedAt is when the proxies had the weight this
	// transition set (a step, a rollback), when serin reads istiod.
	// +optional
	DataPlaneConfirmedAt *metav1.MicroTime `json:"dataPlaneConfirmedAt,omitempty"`
}
