package rollout

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Workload names a Deployment whose releases a Rollout delivers, in plain
// terms: the engine never speaks Deployments.
type Workload struct {
	Namespace  string
	Deployment string
}

// String names the workload for messages, e.g. "deployment shop/checkout".
func (w Workload) String() string { return "deployment " + w.Namespace + "/" + w.Deployment }

// StableCopy and CanaryCopy are the names of serin's two copies of the
// workload: the tracks whose pods the subsets "stable" and "canary" select.
func (w Workload) StableCopy() string { return w.Deployment + "-" + string(TrackStable) }

// CanaryCopy is the canary track's name; see StableCopy.
func (w Workload) CanaryCopy() string { return w.Deployment + "-" + string(TrackCanary) }

// WorkloadOf returns the workload a Rollout delivers, and false when it
// delivers none (subset or host mode).
func WorkloadOf(ro *v1alpha1.Rollout) (Workload, bool) {
	if ro.Spec.Workload == nil {
		return Workload{}, false
	}
	return Workload{Namespace: ro.Namespace, Deployment: ro.Spec.Workload.Deployment}, true
}

// Track is one of the two copies of a delivered workload.
type Track string

// The two tracks. Their names are also the DestinationRule subsets that
// select their pods, by the label v1alpha1.LabelTrack.
const (
	TrackStable Track = "stable"
	TrackCanary Track = "canary"
)

// TrackState is what was seen of one copy.
type TrackState struct {
	// Exists says the copy exists.
	Exists bool
	// Revision is the revision of the pod template it runs.
	Revision string
	// Replicas is its desired replica count.
	Replicas int32
	// Ready counts its ready replicas of Revision; older pods do not count.
	Ready int32
	// Stuck, when set, says in plain words why its pods cannot become
	// ready (the Deployment's ProgressDeadlineExceeded, say).
	Stuck string
}

// At reports whether the copy runs rev with all of replicas ready.
func (t TrackState) At(rev string, replicas int32) bool {
	return t.Exists && t.Revision == rev && t.Replicas == replicas && t.Ready >= replicas
}

// Runs reports whether the copy is set to run rev at replicas, ready or not.
func (t TrackState) Runs(rev string, replicas int32) bool {
	return t.Exists && t.Revision == rev && t.Replicas == replicas
}

// WorkloadState is what a WorkloadManager saw of a workload.
type WorkloadState struct {
	// Revision identifies the Deployment's pod template: the release the
	// user asks for. Equal templates have equal revisions.
	Revision string
	// Images are the template's container images, by container name.
	Images map[string]string
	// RequestedBy names who set exactly these images through serin, from
	// the workload's v1alpha1.AnnotationReleaseBy; empty otherwise.
	RequestedBy string
	// Replicas is the Deployment's own spec.replicas: zero once serin has
	// scaled it down, and the user's new count when they change it.
	Replicas int32
	// Stable and Canary are serin's two copies.
	Stable TrackState
	Canary TrackState
	// SidecarGaps names what the template leaves unset of the istio-proxy
	// sidecar's requests and limits, e.g. "CPU limit"; empty when all are set.
	SidecarGaps []string
	// InjectionOff, when set, says how the template turns sidecar
	// injection off, e.g. "label sidecar.istio.io/inject=false".
	InjectionOff string
	// Autoscaler names the team's HorizontalPodAutoscaler of the workload,
	// or is empty. With one, the stable copy gets an equivalent autoscaler
	// (SetTrack keeps it), its replica count is the autoscaler's, and the
	// canary's follows the traffic weight.
	Autoscaler string
}

// Track returns the state of track tr.
func (s WorkloadState) Track(tr Track) TrackState {
	if tr == TrackStable {
		return s.Stable
	}
	return s.Canary
}

// ImagesString lists images as "name=image, ...", sorted by name.
func ImagesString(images map[string]string) string {
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%s", n, images[n])
	}
	return strings.Join(parts, ", ")
}

// WorkloadManager delivers the versions of a workload. The engine declares
// it; rollout/deployments implements it on apps/v1 Deployments.
type WorkloadManager interface {
	// Observe reads the workload and serin's two copies of it. It wraps
	// ErrNotFound when the workload itself does not exist.
	Observe(ctx context.Context, w Workload) (WorkloadState, error)
	// SetTrack makes track tr run the pod template of revision rev with
	// replicas replicas. The template comes from the workload or from the
	// other track, whichever runs rev; the call wraps ErrNotFound when
	// neither does. When the workload has an autoscaler, the stable
	// track gets an equivalent one, and replicas only sizes a new stable
	// copy: the autoscaler sizes it from then on. Scaling a track to zero needs no template: rev may
	// then be whatever it runs. It writes nothing when the track already
	// is so, and never touches the workload's own template.
	SetTrack(ctx context.Context, w Workload, tr Track, rev string, replicas int32) error
	// ScaleWorkload sets the workload's own replica count: zero once its
	// copies serve its traffic.
	ScaleWorkload(ctx context.Context, w Workload, replicas int32) error
}

// RouteAdopter is implemented by a TrafficRouter that can take over a
// route for workload delivery.
type RouteAdopter interface {
	// AdoptRoute prepares t for a workload: t's host gets the subsets
	// stable and canary, which select the pods labelled
	// v1alpha1.LabelTrack=stable (the canary subset too, until
	// SelectCanaryTrack points it at the canary's pods), and t's route
	// sends 100% to stable and 0% to canary. It changes nothing else, writes nothing
	// when all is so already, and refuses, writing nothing, a route that
	// serin cannot take over (one that sends traffic to another host).
	AdoptRoute(ctx context.Context, t Target) error
	// SelectCanaryTrack makes t's canary subset select the pods of track
	// tr: the canary's while a release has its canary up, the stable's at
	// rest, so that the subset always selects ready pods.
	SelectCanaryTrack(ctx context.Context, t Target, tr Track) error
	// CheckAdoption returns, writing nothing, the reason AdoptRoute would
	// refuse t, or nil.
	CheckAdoption(ctx context.Context, t Target) error
}
