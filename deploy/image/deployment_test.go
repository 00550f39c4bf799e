package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// TestDeploymentNamesTheImage checks that deploy/deployment.yaml runs an
// image this command builds: its repository, tagged with a release version
// as `make image` tags one built at a release tag (git describe).
func TestDeploymentNamesTheImage(t *testing.T) {
	raw, err := os.ReadFile("../deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(raw, &d); err != nil {
		t.Fatalf("deploy/deployment.yaml: %v", err)
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	image := cs[0].Image
	repo, tag, _ := strings.Cut(image, ":")
	if repo != DefaultRepository || !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(tag) {
		t.Errorf("deploy/deployment.yaml runs %q, want %s:v<major>.<minor>.<patch>", image, DefaultRepository)
	}
	if sc := d.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != Nonroot {
		t.Errorf("the pod's securityContext does not run as %d, the image's user", Nonroot)
	}
}
