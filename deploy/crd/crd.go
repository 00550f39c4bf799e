// Package crd embeds the CustomResourceDefinitions that `make generate`
// writes into this directory from the Go types, so that code which
// describes a resource (the REST API's OpenAPI document) reads the very
// schema the API server enforces instead of a copy that can fall behind.
package crd

import _ "embed"

// Rollouts is serin.dev_rollouts.yaml, the CustomResourceDefinition of
// rollouts.serin.dev, as controller-gen generated it from
// rollout/v1alpha1.
//
//go:embed serin.dev_rollouts.yaml
var Rollouts []byte
