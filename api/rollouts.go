package api

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// CreateRequest is the body of POST /api/v1/rollouts: the Rollout's
// namespace and name, and its spec exactly as in the Rollout resource.
//
//	{"namespace": "shop", "name": "checkout-v2",
//	 "spec": {"virtualService": "checkout", "stableSubset": "v1", "canarySubset": "v2"}}
type CreateRequest struct {
	Namespace string               `json:"namespace"`
	Name      string               `json:"name"`
	Spec      v1alpha1.RolloutSpec `json:"spec"`
}

// AbortRequest is the body of POST .../abort.
type AbortRequest struct {
	Reason string `json:"reason"`
}

// maxReasonLen bounds an abort reason, which becomes an annotation value.
const maxReasonLen = 1024

// Rollout is the JSON shape of one rollout in answers.
type Rollout struct {
	Namespace       string    `json:"namespace"`
	Name            string    `json:"name"`
	UID             string    `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	CreatedAt       time.Time `json:"createdAt"`
	// Requests are the pending serin.dev/ action annotations (promote,
	// abort, retry and who asked).
	Requests map[string]string `json:"requests,omitempty"`
	// Phase, Step and Checks are the status as every surface shows it
	// (see view.go): clients render them as they are.
	Phase v1alpha1.Phase `json:"phase"`
	// Step is "step 2/4 (25%)", or "step 0/4" before the first step.
	Step string `json:"step"`
	// Target is what the rollout shifts, as the list shows it:
	// "checkout: v1 → v2", or "checkout: deployment checkout (stable →
	// canary)" for a delivered Deployment.
	Target string `json:"target"`
	// Checks are the latest tick's checks, failures first.
	Checks []CheckView `json:"checks"`
	// Workload is the delivered Deployment's state, in workload mode.
	Workload *WorkloadView `json:"workload,omitempty"`
	// Releases are the workload's releases, newest first.
	Releases []ReleaseView `json:"releases,omitempty"`
	// Graph is the canary's neighbourhood, callers → stable and canary →
	// each downstream service, with each edge's traffic (graph.go).
	Graph Graph `json:"graph"`
	// DataPlane says whether the proxies carry the route's weight, when
	// the controller follows them (readmodel.DataPlaneLine); empty when
	// it does not.
	DataPlane string `json:"dataPlane,omitempty"`
	// Operations are the operations open to the rollout in its phase
	// (rollout.Operations): pause or resume, promote and abort while it
	// runs, retry once rolled back or aborted, none after success or
	// failure. A caller's role may allow fewer.
	Operations []rollout.Operation `json:"operations"`
	// Due is what a progressing rollout waits for next, for a countdown;
	// absent for one that is not progressing at a step.
	Due    *DueView               `json:"due,omitempty"`
	Spec   v1alpha1.RolloutSpec   `json:"spec"`
	Status v1alpha1.RolloutStatus `json:"status"`
}

// synced answers 503 while the read model is still loading, so that an
// empty answer is never a guess.
func (s *server) synced(c *gin.Context) bool {
	if s.Store.Synced() {
		return true
	}
	c.Header("Retry-After", "1")
	abort(c, s.Log, errorf(http.StatusServiceUnavailable, nil, "the read model is still loading; retry"))
	return false
}

func (s *server) getRollout(c *gin.Context) {
	ns, name := c.Param("ns"), c.Param("name")
	if !s.authorize(c, Action{Verb: "get", Namespace: ns, Name: name}) || !s.synced(c) {
		return
	}
	r, ok := s.Store.Get(ns, name)
	if !ok {
		abort(c, s.Log, errorf(http.StatusNotFound, nil, "rollout %s/%s not found", ns, name))
		return
	}
	c.JSON(http.StatusOK, view(r))
}

// decodeStrict reads the whole body and decodes it into v, refusing
// unknown or duplicate fields, case-insensitive matches, trailing data and
// bodies over the limit, all as 400.
func decodeStrict(body io.Reader, v any) error {
	data, err := io.ReadAll(body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(http.StatusBadRequest, nil, "request body is larger than %d bytes", tooBig.Limit)
	}
	if err != nil {
		return errorf(http.StatusBadRequest, nil, "read request body: %v", err)
	}
	strict, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return errorf(http.StatusBadRequest, []string{err.Error()}, "malformed JSON")
	}
	if len(strict) > 0 {
		details := make([]string, len(strict))
		for i, e := range strict {
			details[i] = e.Error()
		}
		return errorf(http.StatusBadRequest, details, "unknown or duplicate fields")
	}
	return nil
}

// checkIdentity validates the namespace and name of a CreateRequest, which
// the API server cannot report as field errors of the object.
func checkIdentity(req CreateRequest) error {
	var details []string
	for _, e := range validation.IsDNS1123Label(req.Namespace) {
		details = append(details, "namespace: "+e)
	}
	for _, e := range validation.IsDNS1123Subdomain(req.Name) {
		details = append(details, "name: "+e)
	}
	if len(details) > 0 {
		return errorf(http.StatusUnprocessableEntity, details, "the rollout does not validate")
	}
	return nil
}

func newRollout(req CreateRequest) *v1alpha1.Rollout {
	return &v1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Rollout"},
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name},
		Spec:       req.Spec,
	}
}
