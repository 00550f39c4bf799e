package helm_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/serin-dev/serin/test/stack"
)

// TestLint: helm lint --strict passes with the default values, the HA
// values and every optional part on.
func TestLint(t *testing.T) {
	for _, values := range [][]string{nil, {"-f", testdata("ha.yaml")}, {"-f", testdata("full.yaml")}} {
		out, stderr, err := runHelm(append([]string{"lint", "--strict", chartDir()}, values...)...)
		if err != nil || !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm lint --strict %v: %v\n%s%s", values, err, out, stderr)
		}
	}
}

// controllerArgs is the container's args without the "controller"
// subcommand.
func controllerArgs(t *testing.T, d *appsv1.Deployment) []string {
	t.Helper()
	c := d.Spec.Template.Spec.Containers
	if len(c) != 1 || len(c[0].Args) == 0 || c[0].Args[0] != "controller" {
		t.Fatalf("containers %+v: want one running `serin controller`", c)
	}
	return c[0].Args[1:]
}

// hasArgs fails the test for each of want missing from args, and each of
// absent present (matched as a flag name, with or without =value).
func hasArgs(t *testing.T, args, want, absent []string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("args %q lack %q", args, w)
		}
	}
	for _, a := range absent {
		for _, arg := range args {
			if arg == a || strings.HasPrefix(arg, a+"=") {
				t.Errorf("args %q have %q", args, arg)
			}
		}
	}
}

// TestDefaultRender: the default values give one controller without
// leader election, replaced with Recreate, locked down, probed on /healthz
// and /readyz, with analysis on Istio's addons and the API behind the
// cluster's own authentication with a session key of the chart's, and the
// dashboard as a ConfigMap for Grafana's sidecar, and the users' roles
// serin-view and serin-edit; nothing else optional is rendered.
func TestDefaultRender(t *testing.T) {
	objs := render(t)
	got := objs.ids()
	want := []string{"ServiceAccount/serin-controller", "ClusterRole/serin-controller", "ClusterRoleBinding/serin-controller",
		"Service/serin-controller", "Deployment/serin-controller", "ConfigMap/serin-dashboard-serin", "Secret/serin-console-session",
		"ClusterRole/serin-view", "ClusterRole/serin-edit", "ClusterRole/serin-metrics-reader"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("default render %v, want %v", got, want)
	}
	d := deployment(t, objs)
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %d, strategy %q: want 1 and Recreate", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if want := "ghcr.io/serin-dev/serin:" + chartAppVersion(t); c.Image != want || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s (%s), want %s (IfNotPresent)", c.Image, c.ImagePullPolicy, want)
	}
	hasArgs(t, controllerArgs(t, d),
		[]string{"--http-addr=:8080", "--prometheus-url=http://prometheus.istio-system:9090", "--jaeger-url=http://tracing.istio-system:80",
			"--scrape-interval=15s", "--auth=kubernetes", "--secure-cookies", "--log-format=json", "--session-key-file=/etc/serin/session/key"},
		[]string{"--leader-elect", "--leader-election-namespace", "--notify-config", "--no-analysis", "--api-token-file", "--token-audiences", "--namespace"})
	checkLockedDown(t, d)
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" ||
		c.ReadinessProbe.HTTPGet.Port.String() != "http" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("probes %+v %+v on ports %+v: want /readyz and /healthz on http (8080)", c.ReadinessProbe.HTTPGet, c.LivenessProbe.HTTPGet, c.Ports)
	}
	if c.Resources.Limits.Memory().String() != "256Mi" || c.Resources.Requests.Cpu().String() != "50m" {
		t.Errorf("resources %+v: want deploy/'s", c.Resources)
	}
	checkMemoryLimitEnv(t, "the chart", c.Env)
	var kd appsv1.Deployment
	into(t, readObjects(t, filepath.Join(stack.RepoRoot(), "deploy", "deployment.yaml")).must(t, "Deployment", "serin-controller"), &kd)
	checkMemoryLimitEnv(t, "deploy/deployment.yaml", kd.Spec.Template.Spec.Containers[0].Env)
	// extraEnv adds to it.
	extra := deployment(t, render(t, "--set", "extraEnv[0].name=TZ", "--set", "extraEnv[0].value=UTC")).Spec.Template.Spec.Containers[0].Env
	if len(extra) != 2 || extra[1].Name != "TZ" || extra[1].Value != "UTC" {
		t.Errorf("env with extraEnv %+v, want SERIN_MEMORY_LIMIT then TZ=UTC", extra)
	}
	checkMemoryLimitEnv(t, "the chart with extraEnv", extra[:1])
	var svc corev1.Service
	into(t, objs.must(t, "Service", "serin-controller"), &svc)
	if !maps.Equal(svc.Spec.Selector, d.Spec.Template.Labels) || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service selects %v on %v; the pods are labelled %v", svc.Spec.Selector, svc.Spec.Ports, d.Spec.Template.Labels)
	}
}

// checkLockedDown checks the pod and container security contexts.
func checkLockedDown(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	p, c := d.Spec.Template.Spec.SecurityContext, d.Spec.Template.Spec.Containers[0].SecurityContext
	switch {
	case p == nil || c == nil:
		t.Fatalf("security contexts %+v %+v", p, c)
	case p.RunAsNonRoot == nil || !*p.RunAsNonRoot, p.SeccompProfile == nil || p.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", p)
	case c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem, c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation,
		c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}),
		c.SeccompProfile == nil || c.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("container securityContext %+v: want a read-only root, no escalation, ALL dropped, seccomp RuntimeDefault", c)
	}
}

// TestHARender: two replicas elect a leader through a Lease in the
// release's namespace, may read and write it, roll one pod at a time, and
// keep one through voluntary disruptions.
func TestHARender(t *testing.T) {
	objs := render(t, "-f", testdata("ha.yaml"))
	d := deployment(t, objs)
	hasArgs(t, controllerArgs(t, d), []string{"--leader-elect", "--leader-election-namespace=" + releaseNS}, nil)
	if *d.Spec.Replicas != 2 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("replicas %d, strategy %+v: want 2, RollingUpdate with maxUnavailable 0", *d.Spec.Replicas, d.Spec.Strategy)
	}
	var pdb policyv1.PodDisruptionBudget
	into(t, objs.must(t, "PodDisruptionBudget", "serin-controller"), &pdb)
	if pdb.Spec.MinAvailable.IntValue() != 1 || !maps.Equal(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget %+v: want minAvailable 1 of the pods labelled %v", pdb.Spec, d.Spec.Template.Labels)
	}
	role := objs.must(t, "Role", "serin-leader-election")
	if role.GetNamespace() != releaseNS {
		t.Errorf("leader-election Role in %q, want %q", role.GetNamespace(), releaseNS)
	}
	objs.must(t, "RoleBinding", "serin-leader-election")
	if objs.get("Role", "serin-notify-secrets") != nil {
		t.Error("a Role for Secrets without notifications")
	}
}

// TestValues: each setting reaches the controller's flags, mounts or
// objects.
func TestValues(t *testing.T) {
	t.Run("notifications", func(t *testing.T) {
		objs := render(t, "--set", "notifications.existingSecret=team-notify")
		d := deployment(t, objs)
		hasArgs(t, controllerArgs(t, d), []string{"--notify-config=/etc/serin/notify/notify.yaml"}, nil)
		checkSecretMount(t, d, "team-notify", "/etc/serin/notify")
		objs.must(t, "Role", "serin-notify-secrets")
		objs.must(t, "RoleBinding", "serin-notify-secrets")
	})
	t.Run("static auth", func(t *testing.T) {
		d := deployment(t, render(t, "--set", "api.auth=static,api.staticTokens.existingSecret=serin-tokens,api.secureCookies=false"))
		hasArgs(t, controllerArgs(t, d), []string{"--auth=static", "--api-token-file=/etc/serin/api/tokens"}, []string{"--secure-cookies"})
		checkSecretMount(t, d, "serin-tokens", "/etc/serin/api")
	})
	t.Run("api off", func(t *testing.T) {
		d := deployment(t, render(t, "--set", "api.auth=none"))
		hasArgs(t, controllerArgs(t, d), []string{"--auth=none"}, []string{"--secure-cookies"})
	})
	t.Run("analysis off", func(t *testing.T) {
		d := deployment(t, render(t, "--set", "analysis.enabled=false"))
		hasArgs(t, controllerArgs(t, d), []string{"--no-analysis"}, []string{"--prometheus-url", "--jaeger-url", "--scrape-interval"})
	})
	t.Run("no jaeger", func(t *testing.T) {
		d := deployment(t, render(t, "--set", "analysis.jaegerURL=,analysis.scrapeInterval=30s,controller.watchNamespace=shop"))
		hasArgs(t, controllerArgs(t, d), []string{"--scrape-interval=30s", "--namespace=shop"}, []string{"--jaeger-url", "--jaeger-max-traces"})
	})
	t.Run("secure metrics", func(t *testing.T) {
		objs := render(t, "--set", "metrics.secure=true,serviceMonitor.enabled=true")
		d := deployment(t, objs)
		hasArgs(t, controllerArgs(t, d), []string{"--metrics-addr=:8443"}, nil)
		var svc corev1.Service
		into(t, objs.must(t, "Service", "serin-controller"), &svc)
		if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[1].Name != "https-metrics" || svc.Spec.Ports[1].Port != 8443 {
			t.Errorf("Service ports %+v, want http and https-metrics 8443", svc.Spec.Ports)
		}
		sm := objs.must(t, "ServiceMonitor", "serin-controller")
		ep := sm.Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
		if ep["port"] != "https-metrics" || ep["scheme"] != "https" || ep["bearerTokenFile"] == nil {
			t.Errorf("ServiceMonitor endpoint %v, want https-metrics over https with the scraper's token", ep)
		}
		objs.must(t, "ClusterRole", "serin-metrics-reader")
	})
	t.Run("full", func(t *testing.T) { checkFull(t, render(t, "-f", testdata("full.yaml"))) })
}

// checkFull checks the render of testdata/full.yaml.
func checkFull(t *testing.T, objs objects) {
	d := deployment(t, objs)
	spec := d.Spec.Template.Spec
	if c := spec.Containers[0]; c.Image != "ghcr.io/serin-dev/serin:v0.2.0-rc.1" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %s (%s)", c.Image, c.ImagePullPolicy)
	}
	hasArgs(t, controllerArgs(t, d), []string{"--token-audiences=serin,console", "--notify-config=/etc/serin/notify/channels.yaml", "--leader-elect"}, nil)
	if spec.NodeSelector["kubernetes.io/os"] != "linux" || len(spec.Tolerations) != 1 || spec.Tolerations[0].Value != "delivery" ||
		spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		t.Errorf("scheduling: nodeSelector %v, tolerations %v, affinity %+v", spec.NodeSelector, spec.Tolerations, spec.Affinity)
	}
	var ing networkingv1.Ingress
	into(t, objs.must(t, "Ingress", "serin-controller"), &ing)
	b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
	if *ing.Spec.IngressClassName != "nginx" || ing.Spec.Rules[0].Host != "serin.example.org" || b.Name != "serin-controller" || b.Port.Name != "http" ||
		len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "serin-tls" {
		t.Errorf("Ingress %+v", ing.Spec)
	}
	sm := objs.must(t, "ServiceMonitor", "serin-controller")
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor %s with labels %v", sm.GetAPIVersion(), sm.GetLabels())
	}
	ep, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	var svc corev1.Service
	into(t, objs.must(t, "Service", "serin-controller"), &svc)
	if len(ep) != 1 || ep[0].(map[string]any)["port"] != "http" || ep[0].(map[string]any)["path"] != "/metrics" || len(sel) == 0 || !subset(sel, svc.Labels) {
		t.Errorf("ServiceMonitor endpoints %v selecting %v; the Service is labelled %v", ep, sel, svc.Labels)
	}
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkSecretMount checks that secret is a volume mounted read-only at path.
func checkSecretMount(t *testing.T, d *appsv1.Deployment, secret, path string) {
	t.Helper()
	spec := d.Spec.Template.Spec
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == secret })
	if i < 0 {
		t.Fatalf("no volume of Secret %s among %+v", secret, spec.Volumes)
	}
	mounts := spec.Containers[0].VolumeMounts
	if !slices.ContainsFunc(mounts, func(m corev1.VolumeMount) bool {
		return m.Name == spec.Volumes[i].Name && m.MountPath == path && m.ReadOnly
	}) {
		t.Errorf("Secret %s not mounted read-only at %s: %+v", secret, path, mounts)
	}
}

// TestValuesRefused: a value of the wrong type, out of range, not in its
// enum, unknown, or contradicting another is refused by the schema (or the
// template), with the value named, and nothing is rendered.
func TestValuesRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string // in helm's error
	}{
		{"negative replicas", []string{"--set", "replicaCount=-1"}, "at '/replicaCount': minimum"},
		{"replicas as text", []string{"--set-string", "replicaCount=two"}, "at '/replicaCount': got string, want integer"},
		{"unknown key", []string{"--set", "replicas=2"}, "additional properties 'replicas' not allowed"},
		{"unknown nested key", []string{"--set", "analysis.prometheus=http://p:9090"}, "additional properties 'prometheus' not allowed"},
		{"unknown auth", []string{"--set", "api.auth=ldap"}, "at '/api/auth': value must be one of"},
		{"bad log format", []string{"--set", "controller.logFormat=xml"}, "at '/controller/logFormat'"},
		{"bad pull policy", []string{"--set", "image.pullPolicy=Sometimes"}, "at '/image/pullPolicy'"},
		{"bad scrape interval", []string{"--set", "analysis.scrapeInterval=fifteen"}, "at '/analysis/scrapeInterval'"},
		{"bad prometheus URL", []string{"--set", "analysis.prometheusURL=prometheus:9090"}, "at '/analysis/prometheusURL'"},
		{"analysis without prometheus", []string{"--set", "analysis.prometheusURL="}, "at '/analysis/prometheusURL': minLength"},
		{"static auth without tokens", []string{"--set", "api.auth=static"}, "at '/api/staticTokens/existingSecret'"},
		{"audiences without kubernetes auth", []string{"--set", "api.auth=none,api.tokenAudiences[0]=serin"}, "at '/api/tokenAudiences'"},
		{"port out of range", []string{"--set", "controller.port=70000"}, "at '/controller/port'"},
		{"ingress without API", []string{"--set", "ingress.enabled=true,api.auth=none"}, "ingress.enabled needs the REST API and console"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, err := runHelm(append([]string{"template", releaseName, chartDir(), "--namespace", releaseNS}, c.args...)...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want it refused", c.args)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("helm template %v: error\n%s\nlacks %q", c.args, stderr, c.want)
			}
			if strings.TrimSpace(out) != "" {
				t.Errorf("helm template %v rendered despite the refusal:\n%s", c.args, out)
			}
		})
	}
}

// TestDashboards: each JSON file in the chart's dashboards/ becomes a
// ConfigMap for Grafana's sidecar, and the chart's dashboards/ holds the
// same files as deploy/grafana (none while neither exists).
func TestDashboards(t *testing.T) {
	src, _ := filepath.Glob(filepath.Join(stack.RepoRoot(), "deploy", "grafana", "*.json"))
	inChart, _ := filepath.Glob(filepath.Join(chartDir(), "dashboards", "*.json"))
	if !slices.Equal(baseNames(src), baseNames(inChart)) {
		t.Errorf("deploy/grafana holds %v, the chart's dashboards/ %v: copy them (cp deploy/grafana/*.json deploy/helm/serin/dashboards/)",
			baseNames(src), baseNames(inChart))
	}
	for _, f := range src {
		sameFile(t, f, filepath.Join(chartDir(), "dashboards", filepath.Base(f)))
	}
	if cms := render(t).ofKind("ConfigMap"); len(cms) != len(inChart) {
		t.Errorf("%d dashboard ConfigMaps for %d dashboards", len(cms), len(inChart))
	}

	// A copy of the chart with a dashboard: one labelled ConfigMap.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(chartDir())); err != nil {
		t.Fatal(err)
	}
	dash := `{"title": "serin rollouts", "panels": []}`
	if err := os.MkdirAll(filepath.Join(dir, "dashboards"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dashboards", "Serin_Rollouts.json"), []byte(dash), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runHelm("template", releaseName, dir, "--namespace", releaseNS)
	if err != nil {
		t.Fatalf("helm template with a dashboard: %v\n%s", err, stderr)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	cm := objs.must(t, "ConfigMap", "serin-dashboard-serin-rollouts")
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if data["Serin_Rollouts.json"] != dash || cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap data %v labels %v", data, cm.GetLabels())
	}
}

// baseNames returns the files' base names.
func baseNames(paths []string) []string {
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return names
}

// checkMemoryLimitEnv checks that a container is told its memory limit
// (SERIN_MEMORY_LIMIT from the downward API), which sets Go's soft limit.
func checkMemoryLimitEnv(t *testing.T, where string, env []corev1.EnvVar) {
	t.Helper()
	for _, e := range env {
		if e.Name == "SERIN_MEMORY_LIMIT" {
			if e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil || e.ValueFrom.ResourceFieldRef.Resource != "limits.memory" {
				t.Errorf("%s: SERIN_MEMORY_LIMIT %+v, want it from resourceFieldRef limits.memory", where, e)
			}
			return
		}
	}
	t.Errorf("%s: env %+v has no SERIN_MEMORY_LIMIT", where, env)
}
