package api

import (
	"maps"
	"reflect"

	"github.com/serin-dev/serin/api/readmodel"
)

// viewDoc ties one of the API's view types to the part of the Rollout
// resource it shows, so that a field that shows a field of the resource
// carries the CRD's description and enum in the OpenAPI document, and one
// that only looks like one says how it differs.
type viewDoc struct {
	// origin is the CRD object the view shows, e.g.
	// "status.analysis.checks[]": each field named like one of its fields
	// shows that field, with its description and enum, unless it is in
	// differ.
	origin string
	// renamed maps a field that shows a CRD field under another name to
	// that field's path.
	renamed map[string]string
	// differ describes each field named like one of origin's that shows
	// something else (a display string, another order).
	differ map[string]string
	// own describes the view's fields that show no field of the
	// resource, such as rates computed from it.
	own map[string]string
}

// targetText describes the target as the list and the rollout view show it.
const targetText = `What the rollout shifts, as every surface shows it: "checkout: v1 → v2", ` +
	`or "checkout: deployment checkout (stable → canary)" for a delivered Deployment; status.target is what preflight resolved.`

// viewDocs are the view types that show fields of the Rollout. The tests
// check that every origin, path and differing field exists in the CRD.
var viewDocs = map[reflect.Type]viewDoc{
	reflect.TypeFor[Rollout](): {origin: "status", differ: map[string]string{
		"step":     `The current step as every surface shows it: "step 2/4 (25%)", "step 0/4" before the first step (status.step is "2/4").`,
		"target":   targetText,
		"workload": "The delivered Deployment's state as every surface shows it, in workload mode; status.workload keeps the stored fields.",
		"releases": "The workload's releases as every surface shows them, newest first; status.releases keeps them oldest first.",
	}},
	reflect.TypeFor[RolloutSummary](): {origin: "status",
		renamed: map[string]string{"weight": "status.canaryWeight", "verdict": "status.analysis.lastVerdict"},
		differ:  map[string]string{"target": targetText},
	},
	reflect.TypeFor[CheckView](): {origin: "status.analysis.checks[]", differ: map[string]string{
		"hop":      `The edge, "checkout → payments", or "inbound" for the canary's own traffic.`,
		"source":   `What measured it: "metrics" (Prometheus) or "traces" (Jaeger).`,
		"verdict":  `Pass, Fail, Inconclusive or Skipped, with " (dry run)" for a check that is only reported.`,
		"canary":   "The canary's value with its interval and unit.",
		"stable":   "Stable's value with its interval and unit.",
		"limit":    "The most the canary may have, with its unit.",
		"evidence": "The sequential test's evidence against its threshold.",
	}},
	reflect.TypeFor[readmodel.Point](): {origin: "status",
		renamed: map[string]string{"time": "status.analysis.lastTickAt", "verdict": "status.analysis.lastVerdict"},
	},
	reflect.TypeFor[readmodel.CheckPoint](): {origin: "status.analysis.checks[]"},
	reflect.TypeFor[ReleaseView](): {origin: "status.releases[]",
		renamed: map[string]string{"endedAt": "status.releases[].finishedAt"},
		differ: map[string]string{
			"images": `The template's images, "name=image, ..." sorted by name.`,
			"outcome": `Succeeded, RolledBack, Aborted, Failed or Superseded once the release has ended; "Running" while it runs, ` +
				`and the phase with ", finishing" while its end is carried out on the copies.`,
		},
	},
	reflect.TypeFor[WorkloadView](): {origin: "status.workload",
		renamed: map[string]string{"deployment": "spec.workload.deployment"},
	},
	reflect.TypeFor[TraceView](): {origin: "status.analysis.checks[]",
		differ: map[string]string{
			"hop": `The hop of the check whose example the trace is, "checkout → payments", or "inbound" for the canary's own traffic.`,
		},
		own: map[string]string{
			"side":       "Which version the trace went through, as the analysis counted it: canary, stable, or empty for neither or both.",
			"durationUs": "From the first span's start to the last span's end, in microseconds.",
			"marked":     "The spanID of the span to look at first (the canary's end of the failed, else the slowest, call on the hop); empty for none.",
			"mark":       `Why that span is marked: "failed" or "slowest"; empty for none.`,
			"spans":      "The spans in tree order: each after its parent, siblings by start.",
			"omitted":    "How many spans of a very large trace were left out.",
		},
	},
	reflect.TypeFor[Graph](): {origin: "status.analysis", own: map[string]string{
		"service": "The service the rollout shifts, as its hops name it.",
		"seconds": "How long the requests behind the rates were counted: from status.analysis.since to the latest tick (0 before the first).",
		"nodes":   "The callers, the service's stable and canary versions, and each other service an edge reaches.",
		"edges":   "The inbound edge, then each hop in the order the analysis first saw it.",
	}},
	reflect.TypeFor[GraphNode](): {origin: "status", own: map[string]string{
		"id":     `What edges name the node by: "callers", "stable", "canary", or "svc:" and the service's name.`,
		"kind":   "callers, stable, canary or service.",
		"label":  `The node as people read it: "callers", "stable v1", "canary v2", "payments".`,
		"column": "Where the node stands in the flow: 0 callers, 1 the service's versions, 2 the services it calls, 3 beyond.",
	}},
	reflect.TypeFor[GraphEdge](): {origin: "status.analysis.checks[]",
		differ: map[string]string{
			"hop":     `The edge as the checks name it: "inbound" for the canary's own traffic, or "checkout → payments".`,
			"source":  `What the values were measured from: "metrics" when Prometheus measured the hop, else "traces".`,
			"canary":  "The canary's traffic on the edge.",
			"stable":  "Stable's traffic on the edge.",
			"verdict": "The worst verdict of the edge's checks, from both sources: Fail, Inconclusive, Pass or Skipped.",
		},
		own: map[string]string{
			"from":       `The node the edge leaves; "service" stands for both versions.`,
			"to":         `The node the edge reaches; "service" stands for both versions.`,
			"state":      "How the edge is coloured: pass, fail, gathering (evidence) or nodata.",
			"stateLabel": `The state in words: "pass", "fail", "gathering evidence", "no data", "fail (dry run)" or "too few calls".`,
			"failing":    "A check of the edge failed and acts (not a dry run): one that rolls the canary back.",
			"checks":     "The keys of the edge's checks (as the series key them: check|hop|source), failing ones first.",
			"summary":    "The edge in one sentence, for an accessible label.",
		},
	},
	reflect.TypeFor[GraphSide](): {origin: "status.analysis.checks[]", own: map[string]string{
		"rps":           "Requests per second over the checks' window, from status.analysis.checks[].since (else status.analysis.since) to the latest tick; traced calls, from traces; absent when not measured.",
		"rpsText":       `The rate with three significant figures and its unit, "12.3 req/s", or "no data".`,
		"errorRate":     "The error rate in %, from the edge's error-rate check; absent when not measured.",
		"errorRateText": `The error rate with three significant figures, "0.52%", or "no data".`,
		"p99":           "The p99 latency in ms, from the edge's latency-p99 check; absent when not measured.",
		"p99Text":       `The p99 with three significant figures and its unit, "450 ms", or "no data".`,
	}},
}

// crdPath returns the path of the CRD field that field name of the view
// shows, or "" for a field of the view's own.
func (d viewDoc) crdPath(name string) string {
	if p, ok := d.renamed[name]; ok {
		return p
	}
	if _, ok := d.differ[name]; ok || d.origin == "" {
		return ""
	}
	if _, ok := d.own[name]; ok {
		return ""
	}
	if p := d.origin + "." + name; crdNode(p) != nil {
		return p
	}
	return ""
}

// documented returns s, the schema of field name of owner, with the
// description and enum that viewDocs give it.
func (g *schemas) documented(owner reflect.Type, name string, s map[string]any) map[string]any {
	d, ok := viewDocs[owner]
	if !ok {
		return s
	}
	var desc string
	var enum any
	if p := d.crdPath(name); p != "" {
		node := crdKeywords(crdNode(p))
		desc, _ = node["description"].(string)
		enum = node["enum"]
	} else {
		desc = d.differ[name]
		if own, ok := d.own[name]; ok {
			desc = own
		}
	}
	if desc == "" && enum == nil {
		return s
	}
	if _, ref := s["$ref"]; ref { // OpenAPI 3.0 ignores a $ref's siblings
		return map[string]any{"description": desc, "allOf": []any{s}}
	}
	out := maps.Clone(s)
	if desc != "" {
		out["description"] = desc
	}
	if enum != nil {
		out["enum"] = enum
	}
	return out
}
