package v1alpha1_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedFilesAreCurrent regenerates the CRD and the deepcopy code
// from the Go types and fails if the committed files differ: run
// `make generate` after changing types.go.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	gen := func(args ...string) {
		t.Helper()
		cmd := exec.Command("go", append([]string{"tool", "controller-gen"}, args...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	gen("crd:allowDangerousTypes=true", "paths=./rollout/v1alpha1/...", "output:crd:dir="+tmp)
	same(t, filepath.Join(tmp, "serin.dev_rollouts.yaml"), filepath.Join(root, "deploy/crd/serin.dev_rollouts.yaml"))

	gen("object", "paths=./rollout/v1alpha1/...", "output:object:dir="+tmp)
	same(t, filepath.Join(tmp, "zz_generated.deepcopy.go"), filepath.Join(root, "rollout/v1alpha1/zz_generated.deepcopy.go"))
}

func same(t *testing.T, generated, committed string) {
	t.Helper()
	want, err := os.ReadFile(generated)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is out of date with the Go types; run `make generate`", committed)
	}
}
