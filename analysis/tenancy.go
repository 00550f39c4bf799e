package analysis

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// ErrOutOfScope is wrapped by the errors of CheckQuery and CheckMatch when
// a query or a match override may select series outside the namespaces its
// rollout may read.
var ErrOutOfScope = errors.New("selects series outside the rollout's namespaces")

// namespaceLabels are the labels that tell whose series a selector reads:
// Kubernetes' own (namespace, and kubernetes_namespace from the usual
// relabelling of scrape targets) and Istio's standard metrics' workload
// namespaces. A selector is scoped when it has an equality matcher on one
// of them; the labels are trusted as Prometheus and the mesh write them.
// A source_workload_namespace of the rollout's namespace selects the calls
// its own workloads make, whatever they call.
var namespaceLabels = []string{"namespace", "destination_workload_namespace", "source_workload_namespace", "kubernetes_namespace"}

// MatchNamespaceLabel is the label a match override must pin: the shared
// Istio queries scope themselves to the namespaces in it.
const MatchNamespaceLabel = "destination_workload_namespace"

// Unknown stands, when a query is checked before a rollout runs, for a
// variable whose value is not known yet (the resolved host, the versions).
// It is a plain name, so the query parses as it will with a real value,
// and no namespace can have it as its name (namespace names have no '_'),
// so a namespace matcher built from such a variable is refused.
const Unknown = "serin_unknown_value"

// Tenancy is the operator's policy on which namespaces' series the custom
// checks and match overrides of a namespace's rollouts may select. The
// zero policy, and a nil *Tenancy, let a rollout select only its own
// namespace. It is loaded from YAML such as:
//
//	namespaces:
//	  team-a:
//	    allowNamespaces: [shared-metrics]
//	  "*":                       # every namespace
//	    allowNamespaces: [istio-system]
//
// There is no way to allow every namespace or a regular expression: a
// grant names namespaces.
type Tenancy struct {
	// Namespaces maps a rollout's namespace, or "*" for every namespace,
	// to what its rollouts may select besides their own namespace.
	Namespaces map[string]TenantGrant `json:"namespaces"`
}

// TenantGrant is what one namespace's rollouts may select besides their
// own namespace.
type TenantGrant struct {
	// AllowNamespaces are further namespaces whose series they may select.
	AllowNamespaces []string `json:"allowNamespaces"`
}

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ParseTenancy parses a tenancy policy. Unknown fields and names that
// cannot be namespaces are errors, never ignored.
func ParseTenancy(data []byte) (*Tenancy, error) {
	var t Tenancy
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, err
	}
	for ns, g := range t.Namespaces {
		if ns != "*" && !validNamespace(ns) {
			return nil, fmt.Errorf("namespaces: %q is not a namespace name nor \"*\"", ns)
		}
		for i, a := range g.AllowNamespaces {
			if !validNamespace(a) {
				return nil, fmt.Errorf("namespaces[%s].allowNamespaces[%d]: %q is not a namespace name (list namespaces; there is no wildcard)", ns, i, a)
			}
		}
	}
	return &t, nil
}

func validNamespace(s string) bool {
	return len(s) <= 63 && dns1123Label.MatchString(s)
}

// LoadTenancy reads and parses the tenancy policy in the file at path; an
// error names the file.
func LoadTenancy(path string) (*Tenancy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenancy config: %w", err)
	}
	t, err := ParseTenancy(data)
	if err != nil {
		return nil, fmt.Errorf("tenancy config %s: %w", path, err)
	}
	return t, nil
}

// Scope returns the namespaces that rollouts in ns may select: ns itself
// and what the policy grants to ns and to "*".
func (t *Tenancy) Scope(ns string) Scope {
	s := Scope{Namespace: ns}
	if t == nil || ns == "" {
		return s
	}
	for _, key := range []string{ns, "*"} {
		for _, a := range t.Namespaces[key].AllowNamespaces {
			if a != ns && !slices.Contains(s.Also, a) {
				s.Also = append(s.Also, a)
			}
		}
	}
	slices.Sort(s.Also)
	return s
}

// Scope is what one rollout's queries may select: series of its own
// Namespace and of the namespaces in Also. The zero Scope stands for a
// rollout whose namespace is not known yet: a check against it refuses
// what no namespace could allow (a selector without a namespace equality,
// a regular expression on a namespace) and leaves the namespaces
// themselves to a check with the rollout's Scope.
type Scope struct {
	Namespace string
	Also      []string
}

// Known reports whether s is a rollout's scope, not the zero Scope.
func (s Scope) Known() bool { return s.Namespace != "" }

func (s Scope) allows(ns string) bool {
	if !s.Known() {
		return ns != ""
	}
	return ns == s.Namespace || slices.Contains(s.Also, ns)
}

// String names the namespaces of s for messages.
func (s Scope) String() string {
	if !s.Known() {
		return "the rollout's namespace"
	}
	all := append([]string{s.Namespace}, s.Also...)
	for i, ns := range all {
		all[i] = fmt.Sprintf("%q", ns)
	}
	if len(all) == 1 {
		return all[0]
	}
	return "one of " + strings.Join(all, ", ")
}

// CheckQuery renders a custom query with vars (Unknown for what is not
// known yet), parses it as PromQL and checks that every series selector in
// it is scoped to s: each carries an equality matcher (=) on one of
// namespaceLabels whose value s allows. A query that does not render or
// parse is refused too.
//
// Checking the query before its real values are known is sound because
// RenderQuery cannot change a query's shape through a value (values stay
// inside string literals, or are plain names), and a namespace matcher
// whose value comes from an unknown variable holds Unknown, which no
// namespace is called.
func CheckQuery(query string, vars map[string]string, s Scope) error {
	q, err := RenderQuery(query, vars)
	if err != nil {
		return err
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		return fmt.Errorf("%w: does not parse as PromQL: %v", ErrQueryTemplate, err)
	}
	var first error
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && first == nil {
			first = checkSelector(vs, s)
		}
		return nil
	})
	return first
}

// checkSelector checks one vector selector against s.
func checkSelector(vs *parser.VectorSelector, s Scope) error {
	var inexact, other *labels.Matcher
	for _, m := range vs.LabelMatchers {
		if !slices.Contains(namespaceLabels, m.Name) {
			continue
		}
		switch {
		case m.Type == labels.MatchEqual && s.allows(m.Value):
			return nil // the selection is a conjunction: this one scopes it
		case m.Type == labels.MatchEqual:
			other = m
		default:
			inexact = m
		}
	}
	sel := selectorString(vs)
	switch {
	case other != nil && other.Value == "":
		return fmt.Errorf("%w: selector %s: %s=\"\" selects series without that label; use %s=%s", ErrOutOfScope, sel, other.Name, other.Name, s.example())
	case other != nil:
		return fmt.Errorf("%w: selector %s selects namespace %q; this rollout may select %s (more only through the controller's tenancy config)", ErrOutOfScope, sel, other.Value, s)
	case inexact != nil:
		return fmt.Errorf("%w: selector %s matches %s with %s; only an equality (%s=%s) scopes a selector to a namespace", ErrOutOfScope, sel, inexact.Name, inexact.Type, inexact.Name, s.example())
	}
	return fmt.Errorf("%w: selector %s has no matcher on a namespace label (one of %s) equal to %s",
		ErrOutOfScope, sel, strings.Join(namespaceLabels, ", "), s)
}

// example is a matcher value for messages.
func (s Scope) example() string {
	if !s.Known() {
		return `"{{ .Namespace }}"`
	}
	return fmt.Sprintf("%q", s.Namespace)
}

// selectorString prints a selector as metric{matchers}, the metric name
// outside the braces.
func selectorString(vs *parser.VectorSelector) string {
	var ms []string
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual && m.Value == vs.Name {
			continue
		}
		ms = append(ms, m.String())
	}
	return vs.Name + "{" + strings.Join(ms, ", ") + "}"
}

// CheckMatch checks one side's match override (destination-side label
// equalities): it must pin MatchNamespaceLabel to a namespace that s
// allows, or the shared queries would read every namespace's series for
// it.
func CheckMatch(match map[string]string, s Scope) error {
	ns, ok := match[MatchNamespaceLabel]
	switch {
	case !ok || ns == "":
		return fmt.Errorf("%w: a match must include %s: %s, or it selects every namespace's series", ErrOutOfScope, MatchNamespaceLabel, s.exampleYAML())
	case !s.allows(ns):
		return fmt.Errorf("%w: %s %q: this rollout may select %s (more only through the controller's tenancy config)", ErrOutOfScope, MatchNamespaceLabel, ns, s)
	}
	return nil
}

func (s Scope) exampleYAML() string {
	if !s.Known() {
		return "<the rollout's namespace>"
	}
	return s.Namespace
}
