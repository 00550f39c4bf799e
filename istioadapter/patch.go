package istioadapter

import (
	"encoding/json"
	"fmt"
)

// patchOp is one RFC 6902 JSON Patch operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// weightPatch builds the JSON Patch that sets the stable and canary
// weights of route res and nothing else. It replaces
// metadata.resourceVersion with rv, the version the route was resolved on,
// so that the API server refuses the patch with 409 Conflict when the
// object changed in between. It uses "add" for the weights because an
// omitted weight (0) is absent from the stored object, and "add" on an
// object member sets it whether or not it exists.
func weightPatch(rv string, res resolved, canary int32) ([]byte, error) {
	if rv == "" {
		return nil, fmt.Errorf("build weight patch: empty resourceVersion")
	}
	if canary < 0 || canary > 100 {
		return nil, fmt.Errorf("build weight patch: canary weight %d is outside 0..100", canary)
	}
	ops := []patchOp{
		{Op: "replace", Path: "/metadata/resourceVersion", Value: rv},
		{Op: "add", Path: weightPath(res.HTTP, res.Stable), Value: 100 - canary},
		{Op: "add", Path: weightPath(res.HTTP, res.Canary), Value: canary},
	}
	return json.Marshal(ops)
}

func weightPath(http, dest int) string {
	return fmt.Sprintf("/spec/http/%d/route/%d/weight", http, dest)
}
