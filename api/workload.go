package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// FieldManager is the field manager of the API's writes to Deployments, so
// that `kubectl get deployment --show-managed-fields` tells a release set
// through serin from one set by kubectl (kubectl-set) or a GitOps tool.
const FieldManager = "serin-api"

// WorkloadWriter sets container images of the Deployments that Rollouts
// deliver, for a user the API has authorized to patch them. The
// controller, which never writes a Deployment's pod template itself, sees
// the new template and starts its release.
type WorkloadWriter interface {
	// SetImages reads Deployment namespace/name and asks plan which
	// images to set, by container name, given its current pod template.
	// It then patches those containers' images and nothing else. An error
	// from plan is returned as is and nothing is written. When the
	// Deployment changes between the read and the patch, it is read and
	// planned again, so that plan always judges the template it changes.
	// by names the user: the Deployment's metadata (not its template)
	// records them and the images the template then runs
	// (v1alpha1.AnnotationReleaseBy and AnnotationReleaseImages), so that
	// the release records its author.
	SetImages(ctx context.Context, namespace, name, by string, plan func(corev1.PodTemplateSpec) (map[string]string, error)) (*appsv1.Deployment, error)
}

// SetImages implements WorkloadWriter with a strategic merge patch of the
// pod template's containers by name, as kubectl set image sends, under
// the field manager FieldManager. Unlike kubectl, the patch carries the
// read resourceVersion: without it, a container renamed or removed
// between the read and the patch would come back as a container holding
// only a name and an image, since a strategic merge patch adds list
// elements it does not find.
func (w KubeWriter) SetImages(ctx context.Context, namespace, name, by string, plan func(corev1.PodTemplateSpec) (map[string]string, error)) (*appsv1.Deployment, error) {
	reader := w.Reader
	if reader == nil {
		reader = w.Client
	}
	var out *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &appsv1.Deployment{}
		if err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cur); err != nil {
			return err
		}
		images, err := plan(cur.Spec.Template)
		if err != nil {
			return err
		}
		patch, err := imagesPatch(cur.ResourceVersion, images, by, resultingImages(cur.Spec.Template, images))
		if err != nil {
			return err
		}
		if err := w.Client.Patch(ctx, cur, client.RawPatch(types.StrategicMergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
			return err
		}
		out = cur
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("set images of Deployment %s/%s: %w", namespace, name, err)
	}
	return out, nil
}

// resultingImages lists the images the template runs once images are set,
// as rollout.ImagesString writes them.
func resultingImages(t corev1.PodTemplateSpec, images map[string]string) string {
	out := map[string]string{}
	for _, c := range t.Spec.Containers {
		out[c.Name] = c.Image
		if img, ok := images[c.Name]; ok {
			out[c.Name] = img
		}
	}
	return rollout.ImagesString(out)
}

// imagesPatch is the strategic merge patch that sets images (container
// name to image) on a pod template's containers, with resourceVersion as
// its precondition. Containers come sorted by name, so that equal requests
// send equal patches.
func imagesPatch(resourceVersion string, images map[string]string, by, result string) ([]byte, error) {
	type container struct {
		Name  string `json:"name"`
		Image string `json:"image"`
	}
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	slices.Sort(names)
	cs := make([]container, len(names))
	for i, n := range names {
		cs[i] = container{Name: n, Image: images[n]}
	}
	p := map[string]any{
		"metadata": map[string]any{"resourceVersion": resourceVersion, "annotations": map[string]string{
			v1alpha1.AnnotationReleaseBy: by, v1alpha1.AnnotationReleaseImages: result}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": cs}}},
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode the images patch: %w", err)
	}
	return b, nil
}
