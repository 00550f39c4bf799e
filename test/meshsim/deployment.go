package meshsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	sigsjson "sigs.k8s.io/json"

	"github.com/serin-dev/serin/test/stack"
)

// Pod-template annotations that tell the kubelet stand-in how the pods of a
// template behave. Nothing in a real cluster reads them.
const (
	// AnnotationStartDelay is how long a new pod of the template takes to
	// become ready, as a Go duration ("5s"); without it, Options.StartDelay.
	AnnotationStartDelay = "meshsim.serin.dev/start-delay"
	// AnnotationNeverReady "true" makes the template's pods never become
	// ready: a canary that fails its readiness probe.
	AnnotationNeverReady = "meshsim.serin.dev/never-ready"
	// AnnotationBehaviour holds a Fault as JSON (its field names, no
	// others, e.g. {"errorRate":0.2}) that the template's workload has on
	// top of any fault set through SetFault.
	AnnotationBehaviour = "meshsim.serin.dev/behaviour"
)

// labelPodTemplateHash is the label the Deployment controller puts on every
// pod (and ReplicaSet) of a template.
const labelPodTemplateHash = appsv1.DefaultDeploymentUniqueLabelKey

// defaultProgressDeadline is the Deployment default of
// spec.progressDeadlineSeconds.
const defaultProgressDeadline = 600 * time.Second

// demoApps are the apps a Deployment's template may name to be simulated.
var demoApps = map[string]bool{Frontend: true, Checkout: true, Payments: true, Inventory: true}

// podTemplate is what the kubelet stand-in reads from a Deployment's pod
// template.
type podTemplate struct {
	hash           string            // pod-template-hash, 10 characters
	app            string            // the app label
	labels         map[string]string // the pods' labels: the template's, the hash, and what injection adds
	serviceAccount string
	behaviour      Fault
	startDelay     time.Duration
	neverReady     bool
	spec           *corev1.PodTemplateSpec // for the Pod objects
	// problems are the annotations that do not parse, each ignored: the
	// template then behaves normally (a bad start delay means the default).
	problems []string
}

// readTemplate reads d's pod template; defaultDelay is the start delay
// without an annotation. It never fails: a bad annotation is ignored and
// named in problems, so that one bad Deployment never stops the simulator.
func readTemplate(d *appsv1.Deployment, defaultDelay time.Duration) podTemplate {
	tm := d.Spec.Template
	t := podTemplate{hash: templateHash(&tm), app: tm.Labels["app"], startDelay: defaultDelay,
		serviceAccount: tm.Spec.ServiceAccountName, spec: tm.DeepCopy()}
	if t.serviceAccount == "" {
		t.serviceAccount = "default"
	}
	t.labels = maps.Clone(tm.Labels)
	if t.labels == nil {
		t.labels = map[string]string{}
	}
	t.labels[labelPodTemplateHash] = t.hash
	pod := stack.InjectedPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Labels: t.labels}})
	t.labels = pod.Labels
	if v, ok := tm.Annotations[AnnotationStartDelay]; ok {
		delay, err := time.ParseDuration(v)
		if err == nil && delay < 0 {
			err = fmt.Errorf("negative")
		}
		if err != nil {
			t.problems = append(t.problems, fmt.Sprintf("annotation %s %q is not a duration such as 5s (%v); using %v",
				AnnotationStartDelay, v, err, defaultDelay))
		} else {
			t.startDelay = delay
		}
	}
	switch v := tm.Annotations[AnnotationNeverReady]; v {
	case "", "false":
	case "true":
		t.neverReady = true
	default:
		t.problems = append(t.problems, fmt.Sprintf("annotation %s %q is neither true nor false; ignored", AnnotationNeverReady, v))
	}
	if v, ok := tm.Annotations[AnnotationBehaviour]; ok {
		f, err := ParseBehaviour(v)
		if err != nil {
			t.problems = append(t.problems, fmt.Sprintf("annotation %s: %v; the template behaves normally", AnnotationBehaviour, err))
		} else {
			t.behaviour = f
		}
	}
	return t
}

// ParseBehaviour reads the value of AnnotationBehaviour: one JSON object
// with Fault's field names, spelt exactly, no others and none twice, whose
// values are in range. The error wraps ErrInvalidFault for a value out of
// range.
func ParseBehaviour(v string) (Fault, error) {
	var f Fault
	strict, err := sigsjson.UnmarshalStrict([]byte(v), &f, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err == nil {
		err = errors.Join(strict...)
	}
	if err != nil {
		return Fault{}, fmt.Errorf("behaviour %q: %w", v, err)
	}
	if err := f.Validate(); err != nil {
		return Fault{}, fmt.Errorf("behaviour %q: %w", v, err)
	}
	return f, nil
}

// templateHash is a pod-template-hash for t: like the Deployment
// controller's, an FNV-32a hash of the template made into 10 characters
// that are safe in a name (the controller's is of the same alphabet, up to
// 10 long).
func templateHash(t *corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t) // a PodTemplateSpec always marshals
	h := fnv.New32a()
	_, _ = h.Write(b)
	return utilrand.SafeEncodeString(fmt.Sprintf("%010d", h.Sum32()))
}

// podState is one pod as the status computation sees it.
type podState struct {
	hash    string    // its template
	created time.Time // when it was made
	readyAt time.Time // when it becomes ready; zero if never
}

// readyAt reports whether p is ready at now.
func (p podState) ready(now time.Time) bool { return !p.readyAt.IsZero() && !p.readyAt.After(now) }

// replicas is spec.replicas with its default of 1.
func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// maxUnavailable is how many of the desired pods may be unavailable while
// the Deployment still counts as available, as the Deployment controller
// reckons it: 0 for Recreate or no replicas; else the rolling update's
// maxUnavailable (default 25%, rounded down), but 1 when it and maxSurge
// are both 0, and at most the replicas.
func maxUnavailable(d *appsv1.Deployment) int32 {
	n := replicas(d)
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || n == 0 {
		return 0
	}
	quarter := intstr.FromString("25%")
	unavail, surge := &quarter, &quarter
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxUnavailable != nil {
			unavail = ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			surge = ru.MaxSurge
		}
	}
	u, errU := intstr.GetScaledValueFromIntOrPercent(unavail, int(n), false)
	s, errS := intstr.GetScaledValueFromIntOrPercent(surge, int(n), true)
	if errU != nil || errS != nil { // the API server validates both
		return 0
	}
	if u == 0 && s == 0 {
		u = 1
	}
	return min(int32(u), n)
}

// deploymentStatus is the status the Deployment controller would write for
// d, whose current template is hash, given its pods at now. It reads the
// previous conditions in d.Status to keep their transition times. The
// conditions:
//
//   - Available is True when the available (ready) pods are at least the
//     replicas less maxUnavailable (reason MinimumReplicasAvailable), else
//     False (MinimumReplicasUnavailable).
//   - Progressing is True with NewReplicaSetAvailable once every pod is of
//     the current template and ready; True with ReplicaSetUpdated while
//     rolling; False with ProgressDeadlineExceeded when
//     progressDeadlineSeconds passed since the last progress (a pod made or
//     become ready) without the rollout completing.
//
// Times are whole seconds, as the API stores them, so that a status
// computed again from the same state equals the one written.
func deploymentStatus(d *appsv1.Deployment, hash string, pods []podState, now time.Time) appsv1.DeploymentStatus {
	want := replicas(d)
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: int32(len(pods)),
		CollisionCount: d.Status.CollisionCount}
	var last time.Time // the last progress
	for _, p := range pods {
		if p.hash == hash {
			st.UpdatedReplicas++
		}
		if p.ready(now) {
			st.ReadyReplicas++
			last = later(last, p.readyAt)
		}
		if p.hash == hash {
			last = later(last, p.created)
		}
	}
	st.AvailableReplicas = st.ReadyReplicas
	st.UnavailableReplicas = max(want-st.AvailableReplicas, 0)

	available := condition(d, appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable",
		"Deployment does not have minimum availability.", now)
	if st.AvailableReplicas >= want-maxUnavailable(d) {
		available = condition(d, appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable",
			"Deployment has minimum availability.", now)
	}
	rs := fmt.Sprintf("ReplicaSet %q", d.Name+"-"+hash)
	deadline := defaultProgressDeadline
	if d.Spec.ProgressDeadlineSeconds != nil {
		deadline = time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
	}
	var progressing appsv1.DeploymentCondition
	switch {
	case st.UpdatedReplicas == want && st.Replicas == want && st.ReadyReplicas == want:
		progressing = condition(d, appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable",
			rs+" has successfully progressed.", now)
	case !last.IsZero() && now.Sub(last) > deadline:
		progressing = condition(d, appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded",
			rs+" has timed out progressing.", now)
	default:
		progressing = condition(d, appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated",
			rs+" is progressing.", now)
		if !last.IsZero() {
			progressing.LastUpdateTime = seconds(last)
		}
	}
	st.Conditions = []appsv1.DeploymentCondition{available, progressing}
	return st
}

// condition is a condition of d's status with type t: its transition time
// is the previous one's when the status is unchanged, else now; its update
// time the previous one's when nothing in it changed, else now.
func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType, status corev1.ConditionStatus,
	reason, message string, now time.Time) appsv1.DeploymentCondition {
	c := appsv1.DeploymentCondition{Type: t, Status: status, Reason: reason, Message: message,
		LastUpdateTime: seconds(now), LastTransitionTime: seconds(now)}
	for _, prev := range d.Status.Conditions {
		if prev.Type != t || prev.Status != status {
			continue
		}
		c.LastTransitionTime = prev.LastTransitionTime
		if prev.Reason == reason && prev.Message == message {
			c.LastUpdateTime = prev.LastUpdateTime
		}
	}
	return c
}

// seconds is t as the API stores it, to the second.
func seconds(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second).UTC()) }

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
