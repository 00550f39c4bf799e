package api

import (
	"context"
	"fmt"

	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// RolloutWriter makes the API's changes through the Kubernetes API. Errors
// from the API server are returned wrapped, so that errors.As finds their
// status.
type RolloutWriter interface {
	// Create creates r. With dryRun the API server validates and defaults
	// it (CRD schema and CEL rules) but stores nothing.
	Create(ctx context.Context, r *v1alpha1.Rollout, dryRun bool) (*v1alpha1.Rollout, error)
	// Update reads the current Rollout namespace/name, lets mutate change
	// its spec or metadata, and patches the difference, retrying when the
	// Rollout changed in between. An error from mutate is returned as is
	// and nothing is written.
	Update(ctx context.Context, namespace, name string, mutate func(*v1alpha1.Rollout) error) (*v1alpha1.Rollout, error)
}

// KubeWriter is the RolloutWriter on a controller-runtime client.
type KubeWriter struct {
	// Client writes. Required.
	Client client.Client
	// Reader reads the Rollout before an update. It should bypass any
	// cache (a manager's GetAPIReader), so that the precondition is checked
	// on the current object; nil uses Client.
	Reader client.Reader
}

// Create implements RolloutWriter.
func (w KubeWriter) Create(ctx context.Context, r *v1alpha1.Rollout, dryRun bool) (*v1alpha1.Rollout, error) {
	r = r.DeepCopy()
	var opts []client.CreateOption
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	if err := w.Client.Create(ctx, r, opts...); err != nil {
		return nil, fmt.Errorf("create Rollout %s/%s: %w", r.Namespace, r.Name, err)
	}
	return r, nil
}

// Update implements RolloutWriter. The patch is a JSON merge patch with
// the read resourceVersion, so a concurrent change makes it fail with a
// conflict and it is retried on a fresh read.
func (w KubeWriter) Update(ctx context.Context, namespace, name string, mutate func(*v1alpha1.Rollout) error) (*v1alpha1.Rollout, error) {
	reader := w.Reader
	if reader == nil {
		reader = w.Client
	}
	var out *v1alpha1.Rollout
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &v1alpha1.Rollout{}
		if err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cur); err != nil {
			return err
		}
		orig := cur.DeepCopy()
		if err := mutate(cur); err != nil {
			return err
		}
		patch := client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
		if err := w.Client.Patch(ctx, cur, patch); err != nil {
			return err
		}
		out = cur
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update Rollout %s/%s: %w", namespace, name, err)
	}
	return out, nil
}
