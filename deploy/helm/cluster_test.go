package helm_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/test/stack"
)

// The ServiceMonitor CRD is not part of the stack: it is installed from
// testdata (the Prometheus Operator's own, vendored) once, so that the
// chart's ServiceMonitor is checked by the API server like the rest.
var serviceMonitorCRD sync.Once

func installServiceMonitorCRD(t *testing.T) {
	t.Helper()
	var err error
	serviceMonitorCRD.Do(func() {
		err = st.ApplyYAML(context.Background(), testdata("monitoring.coreos.com_servicemonitors.yaml"))
	})
	if err != nil {
		t.Fatalf("install the ServiceMonitor CRD: %v", err)
	}
}

// kubeClient is a client of the stack as its admin.
func kubeClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// ensureNamespace creates ns unless it exists.
func ensureNamespace(t *testing.T, ns string) {
	t.Helper()
	if out, err := kubectl("", "create", "namespace", ns); err != nil && !strings.Contains(out, "AlreadyExists") {
		t.Fatalf("create namespace %s: %v\n%s", ns, err, out)
	}
}

// TestDryRunServer: the chart's renders (default values with the CRD, and
// every optional part on, ServiceMonitor included) and the kustomize build
// of deploy/ pass the real API server's validation in a server-side dry
// run, which lists each object and creates none of them.
func TestDryRunServer(t *testing.T) {
	installServiceMonitorCRD(t)
	ensureNamespace(t, releaseNS)
	for _, c := range []struct {
		name     string
		manifest string
		args     []string
	}{
		{"chart defaults", renderYAML(t, "--include-crds"), []string{"-f", "-"}},
		{"chart HA", renderYAML(t, "-f", testdata("ha.yaml")), []string{"-f", "-"}},
		{"chart full", renderYAML(t, "-f", testdata("full.yaml")), []string{"-f", "-"}},
		{"kustomize deploy/", "", []string{"-k", filepath.Join(stack.RepoRoot(), "deploy")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := kubectl(c.manifest, append([]string{"apply", "--dry-run=server"}, c.args...)...)
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server %v: %v\n%s", c.args, err, out)
			}
			want := []string{"deployment.apps/serin-controller", "clusterrole.rbac.authorization.k8s.io/serin-controller", "service/serin-controller"}
			if c.manifest != "" {
				objs, err := decode(c.manifest)
				if err != nil {
					t.Fatal(err)
				}
				if n := strings.Count(out, "(server dry run)"); n != len(objs) {
					t.Errorf("%d objects in the dry run, %d rendered %v:\n%s", n, len(objs), objs.ids(), out)
				}
				if objs.get("ServiceMonitor", "serin-controller") != nil {
					want = append(want, "servicemonitor.monitoring.coreos.com/serin-controller")
				}
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("dry run output lacks %s:\n%s", w, out)
				}
			}
		})
	}
	kc := kubeClient(t)
	ctx := context.Background()
	if _, err := kc.AppsV1().Deployments(releaseNS).Get(ctx, "serin-controller", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry run created the Deployment (get: %v)", err)
	}
	if _, err := kc.RbacV1().ClusterRoles().Get(ctx, "serin-controller", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry run created the ClusterRole (get: %v)", err)
	}
}

// TestInstallUpgradeUninstall: helm installs the chart on the real API
// server (the CRD already there is kept), an upgrade to two replicas turns
// on leader election and adds its Role and the PodDisruptionBudget, an
// upgrade with a refused value writes nothing, and uninstall removes every
// object but the CRD.
func TestInstallUpgradeUninstall(t *testing.T) {
	const rel, ns = "serin-it", "serin-it"
	ctx := context.Background()
	kc := kubeClient(t)
	out, stderr, err := runHelm("install", rel, chartDir(), "--namespace", ns, "--create-namespace")
	if err != nil {
		t.Fatalf("helm install: %v\n%s%s", err, out, stderr)
	}
	t.Cleanup(func() { _, _, _ = runHelm("uninstall", rel, "--namespace", ns) })
	for _, w := range []string{"STATUS: deployed", "rollout status deployment/serin-it-controller", "port-forward service/serin-it-controller 8080"} {
		if !strings.Contains(out, w) {
			t.Errorf("helm install output (NOTES) lacks %q:\n%s", w, out)
		}
	}
	d, err := kc.AppsV1().Deployments(ns).Get(ctx, "serin-it-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("installed Deployment: %v", err)
	}
	if *d.Spec.Replicas != 1 || slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect") {
		t.Errorf("installed Deployment: %d replicas, args %v", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Args)
	}
	if _, err := kc.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "serin-it-controller", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a PodDisruptionBudget with one replica (get: %v)", err)
	}

	// The console's session key is made at install, at least 32 bytes,
	// and kept by the upgrade: sessions survive it and span the replicas.
	key, err := kc.CoreV1().Secrets(ns).Get(ctx, "serin-it-console-session", metav1.GetOptions{})
	if err != nil || len(key.Data["key"]) < 32 {
		t.Fatalf("the session key Secret: %v, %d bytes", err, len(key.Data["key"]))
	}
	if out, stderr, err := runHelm("upgrade", rel, chartDir(), "--namespace", ns, "--set", "replicaCount=2"); err != nil {
		t.Fatalf("helm upgrade to 2 replicas: %v\n%s%s", err, out, stderr)
	}
	if again, err := kc.CoreV1().Secrets(ns).Get(ctx, "serin-it-console-session", metav1.GetOptions{}); err != nil || string(again.Data["key"]) != string(key.Data["key"]) {
		t.Errorf("the upgrade changed the session key (%v): every session would end", err)
	}
	d, err = kc.AppsV1().Deployments(ns).Get(ctx, "serin-it-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if args := d.Spec.Template.Spec.Containers[0].Args; *d.Spec.Replicas != 2 || !slices.Contains(args, "--leader-elect") || !slices.Contains(args, "--leader-election-namespace="+ns) {
		t.Errorf("upgraded Deployment: %d replicas, args %v", *d.Spec.Replicas, args)
	}
	if _, err := kc.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "serin-it-controller", metav1.GetOptions{}); err != nil {
		t.Errorf("PodDisruptionBudget after the upgrade to 2 replicas: %v", err)
	}
	if _, err := kc.RbacV1().Roles(ns).Get(ctx, "serin-it-leader-election", metav1.GetOptions{}); err != nil {
		t.Errorf("leader-election Role after the upgrade: %v", err)
	}

	_, stderr, err = runHelm("upgrade", rel, chartDir(), "--namespace", ns, "--set", "replicaCount=-1")
	if err == nil || !strings.Contains(stderr, "/replicaCount") {
		t.Errorf("helm upgrade --set replicaCount=-1: %v\n%s", err, stderr)
	}
	if d, err := kc.AppsV1().Deployments(ns).Get(ctx, "serin-it-controller", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 2 {
		t.Errorf("after the refused upgrade: %v, Deployment %+v", err, d.Spec.Replicas)
	}

	if out, stderr, err := runHelm("uninstall", rel, "--namespace", ns); err != nil {
		t.Fatalf("helm uninstall: %v\n%s%s", err, out, stderr)
	}
	if _, err := kc.AppsV1().Deployments(ns).Get(ctx, "serin-it-controller", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment after uninstall: %v", err)
	}
	if _, err := kc.RbacV1().ClusterRoles().Get(ctx, "serin-it-controller", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole after uninstall: %v", err)
	}
	out, err = kubectl("", "get", "crd", "rollouts.serin.dev")
	if err != nil {
		t.Errorf("the Rollout CRD is gone after uninstall: %v\n%s", err, out)
	}
}
