package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// listPhases are the choices of the list's phase filter, active phases
// first as the list shows them. They are the phases the API's phase
// filter accepts.
var listPhases = []v1alpha1.Phase{
	v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhasePending,
	v1alpha1.PhaseSucceeded, v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted, v1alpha1.PhaseFailed,
}

// listFilter is what the list page shows, from its URL, so that a link
// keeps the filters. Namespace scopes the page (and its API calls, which
// are authorized per namespace); the other three are applied in the
// browser by list.js, which keeps them in the URL as the user changes
// them.
type listFilter struct {
	Namespace string         // ?namespace=, empty for all namespaces
	Text      string         // ?q=, words that namespace/name must contain
	Phase     v1alpha1.Phase // ?phase=, empty for every phase
	Active    bool           // ?active=1: only rollouts that have not finished
}

// parseListFilter reads the list page's query. A parameter given twice, an
// unknown phase or an active= other than 1 or 0 is an error that says
// what is wrong, rather than a list that silently ignores it.
func parseListFilter(q url.Values) (listFilter, error) {
	for _, p := range []string{"namespace", "q", "phase", "active"} {
		if len(q[p]) > 1 {
			return listFilter{}, fmt.Errorf("the filter %s is given %d times; give it once", p, len(q[p]))
		}
	}
	f := listFilter{Namespace: q.Get("namespace"), Text: strings.TrimSpace(q.Get("q")), Phase: v1alpha1.Phase(q.Get("phase"))}
	if f.Phase != "" && !knownPhase(f.Phase) {
		return listFilter{}, fmt.Errorf("there is no phase %q; the phases are %s", f.Phase, phaseNames())
	}
	switch a := q.Get("active"); a {
	case "", "0":
	case "1":
		f.Active = true
	default:
		return listFilter{}, fmt.Errorf("active=%q: give active=1 for active rollouts only, or leave it out", a)
	}
	return f, nil
}

func knownPhase(p v1alpha1.Phase) bool {
	for _, q := range listPhases {
		if p == q {
			return true
		}
	}
	return false
}

func phaseNames() string {
	names := make([]string, len(listPhases))
	for i, p := range listPhases {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// listView is the list page's data. The page is a frame: list.js reads
// every page of GET /api/v1/rollouts and the list stream, and draws only
// the rows in view, so that the page costs the same at 10 rollouts and at
// 10,000.
type listView struct {
	listFilter
	Loading bool // the read model has not synced yet
	Phases  []v1alpha1.Phase
}

func (c *Console) listPage(w http.ResponseWriter, r *http.Request) {
	s := c.requireSession(w, r)
	if s == nil {
		return
	}
	f, err := parseListFilter(r.URL.Query())
	if err != nil {
		c.errorPage(w, r, s, http.StatusBadRequest, "This list cannot be shown: "+err.Error()+".")
		return
	}
	if !c.allowed(w, r, s, api.Action{Verb: "list", Namespace: f.Namespace}) {
		return
	}
	v := listView{listFilter: f, Loading: !c.opts.Store.Synced(), Phases: listPhases}
	c.render(w, http.StatusOK, "list", layout{Title: "Rollouts", User: s.user.Name, CSRF: s.csrf, Page: v})
}
