package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// createRollout handles POST /api/v1/rollouts. The order matters: the
// body is decoded and its identity checked before authorization (which
// needs the namespace); the spec is validated by the API server in a dry
// run, then checked for a running rollout on the same route, and only
// then created.
func (s *server) createRollout(c *gin.Context) {
	var req CreateRequest
	if err := decodeStrict(c.Request.Body, &req); err != nil {
		abort(c, s.Log, err)
		return
	}
	if !s.authorize(c, Action{Verb: "create", Namespace: req.Namespace, Name: req.Name}) {
		return
	}
	if err := checkIdentity(req); err != nil {
		abort(c, s.Log, err)
		return
	}
	ctx := c.Request.Context()
	r := newRollout(req)
	if _, err := s.Writer.Create(ctx, r, true); err != nil {
		if apierrors.IsNotFound(err) { // the only thing a create can miss
			err = errorf(http.StatusUnprocessableEntity, []string{"namespace: not found"}, "namespace %q does not exist", r.Namespace)
		}
		abort(c, s.Log, err)
		return
	}
	// What the CRD's schema cannot check: cron expressions, time zones,
	// custom query templates, and the namespaces a query may select.
	if err := rollout.ValidateSpecIn(r.Spec, s.Tenancy.Scope(r.Namespace)); err != nil {
		abort(c, s.Log, errorf(http.StatusUnprocessableEntity, []string{err.Error()}, "the Rollout spec is invalid: %v", err))
		return
	}
	if err := s.checkRouteFree(r); err != nil {
		abort(c, s.Log, err)
		return
	}
	created, err := s.Writer.Create(ctx, r, false)
	if err != nil {
		abort(c, s.Log, err)
		return
	}
	s.awaitReadModel(c, created)
	c.Header("Location", fmt.Sprintf("/api/v1/rollouts/%s/%s", created.Namespace, created.Name))
	c.JSON(http.StatusCreated, view(created))
}

// checkRouteFree refuses r when another rollout holds its VirtualService
// route, as seen by the read model, by the controller's own rule
// (rollout.RouteHolder). Two requests racing each other can both pass;
// the controller's preflight remains the last guard.
func (s *server) checkRouteFree(r *v1alpha1.Rollout) error {
	if !s.Store.Synced() {
		return errorf(http.StatusServiceUnavailable, nil, "the read model is still loading; retry")
	}
	others, err := s.Store.ByVirtualService(r.Namespace, r.Spec.VirtualService)
	if err != nil {
		return err
	}
	if o := rollout.RouteHolder(r, others); o != nil {
		return errorf(http.StatusConflict,
			[]string{fmt.Sprintf("rollout %s/%s (phase %q, route %q)", o.Namespace, o.Name, readmodel.PhaseOf(o), o.Spec.Route)},
			"VirtualService %s/%s already has a running rollout on this route", r.Namespace, r.Spec.VirtualService)
	}
	return nil
}

// setPaused handles pause (true) and resume (false): it sets spec.paused.
func (s *server) setPaused(paused bool) gin.HandlerFunc {
	op := "resume"
	if paused {
		op = "pause"
	}
	return func(c *gin.Context) {
		if !s.authorizeOp(c, op) {
			return
		}
		user := userOf(c)
		s.mutate(c, op, func(r *v1alpha1.Rollout) error {
			if r.Spec.Paused != paused {
				// The write makes the next generation; the controller
				// credits the pause or resume to user at that one.
				r.Spec.Paused = paused
				setAnnotations(r, v1alpha1.AnnotationPausedBy, fmt.Sprintf("%d/%s", r.Generation+1, user))
			}
			return nil
		})
	}
}

// promote asks the controller to jump to 100%.
func (s *server) promote(c *gin.Context) {
	if !s.authorizeOp(c, "promote") {
		return
	}
	user := userOf(c)
	s.mutate(c, "promote", func(r *v1alpha1.Rollout) error {
		setAnnotations(r, v1alpha1.AnnotationPromote, "true", v1alpha1.AnnotationPromoteBy, user)
		return nil
	})
}

// abortRollout asks the controller to abort, with the caller's reason.
func (s *server) abortRollout(c *gin.Context) {
	if !s.authorizeOp(c, "abort") {
		return
	}
	var req AbortRequest
	if err := decodeStrict(c.Request.Body, &req); err != nil {
		abort(c, s.Log, err)
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	switch {
	case req.Reason == "":
		abort(c, s.Log, errorf(http.StatusUnprocessableEntity, []string{"reason: required"}, "an abort needs a reason"))
		return
	case len(req.Reason) > maxReasonLen:
		abort(c, s.Log, errorf(http.StatusUnprocessableEntity, []string{fmt.Sprintf("reason: at most %d bytes", maxReasonLen)}, "the abort reason is too long"))
		return
	}
	c.Set(keyReason, req.Reason)
	user := userOf(c)
	s.mutate(c, "abort", func(r *v1alpha1.Rollout) error {
		setAnnotations(r, v1alpha1.AnnotationAbort, req.Reason, v1alpha1.AnnotationAbortBy, user)
		return nil
	})
}

// retryRollout asks the controller to run a RolledBack or Aborted rollout
// again from its first step, with a fresh preflight and analysis. It
// refuses (409) a rollout in any other phase, and one whose route another
// rollout holds now: the controller's preflight would fail that retry,
// and a Failed rollout cannot be retried.
func (s *server) retryRollout(c *gin.Context) {
	if !s.authorizeOp(c, "retry") {
		return
	}
	ns, name, user := c.Param("ns"), c.Param("name"), userOf(c)
	s.write(c, func(r *v1alpha1.Rollout) error {
		if err := rollout.CheckRetry(r.Status.Phase); err != nil {
			return fmt.Errorf("retry rollout %s/%s: %w", ns, name, err)
		}
		if err := s.checkRouteFree(r); err != nil {
			return err
		}
		setAnnotations(r, v1alpha1.AnnotationRetry, "true", v1alpha1.AnnotationRetryBy, user)
		return nil
	})
}

// authorizeOp authorizes op (a patch) on the path's rollout.
func (s *server) authorizeOp(c *gin.Context, op string) bool {
	return s.authorize(c, Action{Verb: "patch", Namespace: c.Param("ns"), Name: c.Param("name"), Subresource: op})
}

// mutate applies change to the path's rollout through the Writer unless
// the rollout has finished, and answers with the result. The caller has
// authorized it.
func (s *server) mutate(c *gin.Context, op string, change func(*v1alpha1.Rollout) error) {
	ns, name := c.Param("ns"), c.Param("name")
	s.write(c, func(r *v1alpha1.Rollout) error {
		if r.Status.Phase.Terminal() {
			return fmt.Errorf("%s rollout %s/%s in phase %s: %w", op, ns, name, r.Status.Phase, ErrTerminal)
		}
		return change(r)
	})
}

// write applies change to the path's rollout through the Writer and
// answers with the result once the read model shows it. An error from
// change is answered and nothing is written. The caller has authorized it.
func (s *server) write(c *gin.Context, change func(*v1alpha1.Rollout) error) {
	updated, err := s.Writer.Update(c.Request.Context(), c.Param("ns"), c.Param("name"), change)
	if err != nil {
		abort(c, s.Log, err)
		return
	}
	s.awaitReadModel(c, updated)
	c.JSON(http.StatusOK, view(updated))
}

// readYourWrites bounds how long a write waits for the read model to show
// it before answering anyway.
const readYourWrites = 5 * time.Second

// awaitReadModel waits, a bounded time, until the read model holds the
// version of r that the API server just returned. Then a client that reads
// or opens the console page right after its write sees that write, rather
// than a 404 or the state before it. The write has happened either way; a
// slow informer only costs the client that guarantee, and is logged.
func (s *server) awaitReadModel(c *gin.Context, r *v1alpha1.Rollout) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readYourWrites)
	defer cancel()
	if !s.Store.WaitFor(ctx, r.Namespace, r.Name, r.ResourceVersion) {
		s.Log.Warn("the read model has not shown a write yet; answering anyway",
			"rollout", r.Namespace+"/"+r.Name, "resourceVersion", r.ResourceVersion, "waited", readYourWrites)
	}
}

func userOf(c *gin.Context) string { return c.MustGet(keyUser).(User).Name }

// setAnnotations sets key/value pairs on r's annotations.
func setAnnotations(r *v1alpha1.Rollout, kv ...string) {
	if r.Annotations == nil {
		r.Annotations = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Annotations[kv[i]] = kv[i+1]
	}
}
