package web

import (
	"fmt"
	"net/http"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func steps(ro *v1alpha1.Rollout) []int32 {
	if len(ro.Spec.Steps) > 0 {
		return ro.Spec.Steps
	}
	return v1alpha1.DefaultSteps
}

// allowed asks the Authorizer, as the API would, and answers 403 (or 503
// when the decision could not be made) when the user may not.
func (c *Console) allowed(w http.ResponseWriter, r *http.Request, s *session, a api.Action) bool {
	ok, err := c.opts.Authorizer.Authorize(r.Context(), s.user, a)
	if err != nil {
		c.opts.Log.Error("console: authorize", "user", s.user.Name, "verb", a.Verb, "namespace", a.Namespace, "err", err)
		c.errorPage(w, r, s, http.StatusServiceUnavailable, "Your access could not be checked right now; try again.")
		return false
	}
	if !ok {
		what := "see rollouts"
		if a.Namespace != "" {
			what += " in namespace " + a.Namespace
		}
		c.errorPage(w, r, s, http.StatusForbidden, "You may not "+what+".")
	}
	return ok
}

// operations are the buttons of the rollout page, in order: those of a
// running rollout, then Retry, which only a rolled-back or aborted one
// shows.
var operations = []string{"pause", "resume", "promote", "abort", "retry"}

func (c *Console) rolloutPage(w http.ResponseWriter, r *http.Request) {
	s := c.requireSession(w, r)
	if s == nil {
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if !c.allowed(w, r, s, api.Action{Verb: "get", Namespace: ns, Name: name}) {
		return
	}
	ro, ok := c.opts.Store.Get(ns, name)
	switch {
	case !ok && !c.opts.Store.Synced():
		w.Header().Set("Retry-After", "1")
		c.errorPage(w, r, s, http.StatusServiceUnavailable, "The console is still loading the rollouts; reload in a moment.")
		return
	case !ok:
		c.errorPage(w, r, s, http.StatusNotFound, fmt.Sprintf("There is no rollout %s/%s.", ns, name))
		return
	}
	v := c.detail(ro)
	for _, op := range operations {
		ok, err := c.opts.Authorizer.Authorize(r.Context(), s.user, api.Action{Verb: "patch", Namespace: ns, Name: name, Subresource: op})
		if err != nil {
			c.opts.Log.Error("console: authorize operation", "user", s.user.Name, "op", op, "err", err)
		}
		if ok && err == nil {
			v.Ops = append(v.Ops, op)
			v.ShowControls = v.ShowControls || (op == "retry" && v.Retryable) || (op != "retry" && !v.Terminal)
		}
	}
	c.render(w, http.StatusOK, "rollout", layout{Title: ns + "/" + name, User: s.user.Name, CSRF: s.csrf, Page: v})
}
