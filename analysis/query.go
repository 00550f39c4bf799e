package analysis

import (
	"bytes"
	"fmt"
	"text/template"
)

// RenderQuery fills a custom query's {{ .Var }} placeholders. A reference
// to an unknown variable is an error naming it.
func RenderQuery(query string, vars map[string]string) (string, error) {
	tpl, err := template.New("query").Option("missingkey=error").Parse(query)
	if err != nil {
		return "", fmt.Errorf("custom query %q: %w", query, err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("custom query %q: %w", query, err)
	}
	return b.String(), nil
}
