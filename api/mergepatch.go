package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// The SSE stream of one rollout sends deltas as JSON merge patches (RFC
// 7386): an object holds the members that changed, recursively; a member
// set to null was removed; any other value, arrays included, replaces the
// old one whole. The functions here make and apply them on decoded JSON,
// with numbers kept as json.Number, so that nothing is rounded.

// decodeJSON decodes b keeping numbers exact.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

// mergePatch returns the merge patch that turns the object from into to:
// empty when they are equal.
func mergePatch(from, to map[string]any) map[string]any {
	p := map[string]any{}
	for k, fv := range from {
		tv, ok := to[k]
		if !ok {
			p[k] = nil
			continue
		}
		fm, fok := fv.(map[string]any)
		tm, tok := tv.(map[string]any)
		switch {
		case fok && tok:
			if sub := mergePatch(fm, tm); len(sub) > 0 {
				p[k] = sub
			}
		case !reflect.DeepEqual(fv, tv):
			p[k] = tv
		}
	}
	for k, tv := range to {
		if _, ok := from[k]; !ok {
			p[k] = tv
		}
	}
	return p
}

// applyMergePatch applies patch to target, as RFC 7386 section 2 says.
// It does not modify either; the result may share parts of both.
func applyMergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, _ := target.(map[string]any)
	out := make(map[string]any, len(tm)+len(pm))
	for k, v := range tm {
		out[k] = v
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = applyMergePatch(out[k], v)
	}
	return out
}

// ApplyMergePatch applies the JSON merge patch patch (the data of an SSE
// "patch" event) to the JSON document doc (the stream's previous
// "rollout" or "patch" result) and returns the new document, for clients
// that follow GET /api/v1/rollouts/{ns}/{name}/events.
func ApplyMergePatch(doc, patch []byte) ([]byte, error) {
	d, err := decodeJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("merge patch: the document: %w", err)
	}
	p, err := decodeJSON(patch)
	if err != nil {
		return nil, fmt.Errorf("merge patch: the patch: %w", err)
	}
	return json.Marshal(applyMergePatch(d, p))
}
