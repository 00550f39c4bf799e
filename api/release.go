package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/gin-gonic/gin"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/serin-dev/serin/rollout"
)

// ReleaseRequest is the body of POST .../release: the images to run, by
// container name of the delivered Deployment's pod template.
//
//	{"images": {"checkout": "shop/checkout:2.1"}}
type ReleaseRequest struct {
	Images map[string]string `json:"images"`
}

// Bounds of a ReleaseRequest, well above any real pod template, so that
// a request cannot make the API build a large patch.
const (
	maxReleaseImages = 64
	maxImageLen      = 1024
)

// releaseRollout handles POST .../release: it sets images of the
// Deployment the rollout delivers, as kubectl set image does, and the
// controller then starts the release of the new template. The caller
// needs get on the rollout, which the answer shows, and patch on the
// Deployment, which is what is written. The answer is 202 with the
// rollout as it is now: the release shows in status.releases once the
// controller has seen the template change.
func (s *server) releaseRollout(c *gin.Context) {
	ns, name := c.Param("ns"), c.Param("name")
	if !s.authorize(c, Action{Verb: "get", Namespace: ns, Name: name}) || !s.synced(c) {
		return
	}
	r, ok := s.Store.Get(ns, name)
	if !ok {
		abort(c, s.Log, errorf(http.StatusNotFound, nil, "rollout %s/%s not found", ns, name))
		return
	}
	w, ok := rollout.WorkloadOf(r)
	if !ok {
		abort(c, s.Log, errorf(http.StatusConflict, []string{"spec.workload: not set"},
			"rollout %s/%s delivers no Deployment (spec.workload is not set), so it has no images to release", ns, name))
		return
	}
	if !s.authorize(c, Action{Verb: "patch", Namespace: ns, Name: w.Deployment, Group: "apps", Resource: "deployments"}) {
		return
	}
	if s.Workloads == nil {
		abort(c, s.Log, errorf(http.StatusNotImplemented, nil, "this server does not set Deployment images"))
		return
	}
	var req ReleaseRequest
	if err := decodeStrict(c.Request.Body, &req); err != nil {
		abort(c, s.Log, err)
		return
	}
	if err := checkImages(req.Images); err != nil {
		abort(c, s.Log, err)
		return
	}
	c.Set(keyImages, rollout.ImagesString(req.Images))
	_, err := s.Workloads.SetImages(c.Request.Context(), ns, w.Deployment, userOf(c), func(t corev1.PodTemplateSpec) (map[string]string, error) {
		return planImages(w, t, req.Images)
	})
	if err != nil {
		abort(c, s.Log, deploymentError(w, err))
		return
	}
	c.JSON(http.StatusAccepted, view(r))
}

// checkImages refuses (422) an empty request, a name that cannot be a
// container's, and an image that is not an image reference, naming each
// in the details.
func checkImages(images map[string]string) error {
	switch {
	case len(images) == 0:
		return errorf(http.StatusUnprocessableEntity, []string{"images: required, e.g. {\"checkout\": \"shop/checkout:2.1\"}"},
			"a release needs the images to set, by container name")
	case len(images) > maxReleaseImages:
		return errorf(http.StatusUnprocessableEntity, []string{fmt.Sprintf("images: at most %d", maxReleaseImages)}, "too many images")
	}
	var details []string
	for _, n := range sortedNames(images) {
		img := images[n]
		if n == "" {
			details = append(details, "images: an empty container name")
			continue
		}
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			details = append(details, fmt.Sprintf("images.%s: not a container name: %s", n, strings.Join(errs, "; ")))
			continue
		}
		switch {
		case img == "":
			details = append(details, fmt.Sprintf("images.%s: an empty image", n))
		case len(img) > maxImageLen:
			details = append(details, fmt.Sprintf("images.%s: an image of at most %d bytes", n, maxImageLen))
		default:
			if _, err := reference.ParseNormalizedNamed(img); err != nil {
				details = append(details, fmt.Sprintf("images.%s: %q is not an image reference: %v", n, img, err))
			}
		}
	}
	if len(details) > 0 {
		return errorf(http.StatusUnprocessableEntity, details, "the release does not validate")
	}
	return nil
}

// planImages returns the images of want that change the pod template t of
// workload w. It refuses (422) a name that is none of t's containers,
// naming the ones it has, and (409) a request that changes nothing.
func planImages(w rollout.Workload, t corev1.PodTemplateSpec, want map[string]string) (map[string]string, error) {
	have := map[string]string{}
	var names []string
	for _, c := range t.Spec.Containers {
		have[c.Name] = c.Image
		names = append(names, c.Name)
	}
	var unknown []string
	for _, n := range sortedNames(want) {
		if _, ok := have[n]; ok {
			continue
		}
		d := fmt.Sprintf("images.%s: %s's pod template has no container %q; its containers are %s", n, w, n, strings.Join(names, ", "))
		if slices.ContainsFunc(t.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == n }) {
			d = fmt.Sprintf("images.%s: %q is an init container; a release sets the images of the containers (%s)", n, n, strings.Join(names, ", "))
		}
		unknown = append(unknown, d)
	}
	if len(unknown) > 0 {
		return nil, errorf(http.StatusUnprocessableEntity, unknown, "no such container in %s's pod template", w)
	}
	changed := map[string]string{}
	for n, img := range want {
		if have[n] != img {
			changed[n] = img
		}
	}
	if len(changed) == 0 {
		return nil, errorf(http.StatusConflict, []string{rollout.ImagesString(want)}, "the template already runs these images: nothing to release")
	}
	return changed, nil
}

// deploymentError says an error of setting w's images in terms of the
// Deployment: classify's defaults speak of the rollout.
func deploymentError(w rollout.Workload, err error) error {
	var he *httpError
	if errors.As(err, &he) {
		return err
	}
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return err
	}
	st := se.Status()
	switch {
	case apierrors.IsNotFound(err):
		return errorf(http.StatusNotFound, nil, "%s, which the rollout delivers, does not exist", w)
	case apierrors.IsConflict(err):
		return errorf(http.StatusConflict, []string{st.Message}, "%s kept changing concurrently; retry", w)
	case apierrors.IsInvalid(err):
		var details []string
		if st.Details != nil {
			for _, c := range st.Details.Causes {
				details = append(details, fmt.Sprintf("%s: %s", c.Field, c.Message))
			}
		}
		return errorf(http.StatusUnprocessableEntity, details, "the API server refused the new images of %s", w)
	}
	return err
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
