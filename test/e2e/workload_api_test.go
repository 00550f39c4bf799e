package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWorkloadReleaseThroughRESTAndCLI: a release is asked for through
// the REST API (refused for a viewer, nothing written) and through
// `serin rollout set-image`; each runs as a template change would, and
// `serin rollout history` lists both.
func TestWorkloadReleaseThroughRESTAndCLI(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	must(t, os.WriteFile(tokens, []byte(apiOperator+",olga,operator\n"+apiViewer+",victor,viewer\n"), 0o600))
	e.extraArgs = []string{"--auth", "static", "--api-token-file", tokens}
	e.workloadDeployment()
	p := e.deliver(2*time.Second, nil)
	path := "/api/v1/rollouts/" + e.ns + "/checkout/release"
	gen := e.deployment("checkout").Generation
	body := map[string]any{"images": map[string]string{"checkout": "shop/checkout:2"}}
	if code, resp := apiDo(t, p, http.MethodPost, path, apiViewer, body); code != http.StatusForbidden {
		t.Fatalf("a viewer's release: %d %v, want 403", code, resp)
	}
	// The simulator writes the Deployment's status meanwhile; its spec and
	// annotations are what a refused release must leave alone.
	if d := e.deployment("checkout"); d.Generation != gen || d.Spec.Template.Spec.Containers[0].Image != "shop/checkout:1" ||
		d.Annotations["serin.dev/release-by"] != "" {
		t.Fatalf("the refused release wrote the Deployment: generation %d, image %s, annotations %v",
			d.Generation, d.Spec.Template.Spec.Containers[0].Image, d.Annotations)
	}
	if code, resp := apiDo(t, p, http.MethodPost, path, apiOperator, body); code != http.StatusAccepted {
		t.Fatalf("POST release: %d %v, want 202", code, resp)
	}
	ro := e.waitRelease("checkout", 1, 90*time.Second)
	if r := ro.Status.Releases[0]; r.Outcome != "Succeeded" || r.Images["checkout"] != "shop/checkout:2" || r.By != "olga" {
		t.Fatalf("release 1: %+v, want Succeeded with shop/checkout:2, by olga", r)
	}
	e.assertServingStable("shop/checkout:2")

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(e.ctx, serinBin, append([]string{"rollout"}, args...)...)
		cmd.Env = append(os.Environ(), "SERIN_SERVER=http://"+p.addr, "SERIN_TOKEN="+apiOperator)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("serin rollout %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cli("set-image", "-n", e.ns, "checkout", "checkout=shop/checkout:3")
	ro = e.waitRelease("checkout", 2, 90*time.Second)
	if r := ro.Status.Releases[1]; r.Outcome != "Succeeded" || r.Images["checkout"] != "shop/checkout:3" {
		t.Fatalf("release 2: %+v", r)
	}
	e.assertServingStable("shop/checkout:3")
	hist := cli("history", "-n", e.ns, "checkout")
	i2, i3 := strings.Index(hist, "shop/checkout:2"), strings.Index(hist, "shop/checkout:3")
	if i2 < 0 || i3 < 0 || i3 > i2 || !strings.Contains(hist, "Succeeded") {
		t.Errorf("serin rollout history does not list both releases, newest first:\n%s", hist)
	}
}
