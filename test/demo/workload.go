package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

// The demo's stories: what it sets up and what its banner tells.
const (
	// storyWorkload, the default: serin delivers the team's Deployment
	// checkout, and every change of its pod template is a release.
	storyWorkload = "workload"
	// storySubsets: the user applies a Rollout between the subsets v1 and
	// v2 of deploy/demo/mesh.yaml; the simulator's static workloads serve.
	storySubsets = "subsets"
)

const (
	// demoNamespace is the demo's mesh namespace.
	demoNamespace = "shop"
	// workloadName is the team's Deployment and the Rollout delivering it.
	workloadName = "checkout"
	// workloadReadyTimeout bounds the wait for the team's Deployment to be
	// ready (the simulator's pods start in about 2 s).
	workloadReadyTimeout = time.Minute
	// adoptionTimeout bounds the wait for serin to adopt the Deployment.
	adoptionTimeout = 2 * time.Minute
)

// demoManifest is the path of a file in deploy/demo.
func demoManifest(name string) string {
	return filepath.Join(stack.RepoRoot(), "deploy", "demo", name)
}

// kubeClient returns a client of the stack that knows serin's types.
func (d *demo) kubeClient() (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(d.st.RESTConfig(), client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("client of the local stack: %w", err)
	}
	return c, nil
}

// startTeamDeployment applies deploy/demo/deployment-checkout.yaml, as the
// team would, and waits until the simulator has made its pods ready, so
// that serin adopts a Deployment that serves.
func (d *demo) startTeamDeployment(ctx context.Context, c client.Client) error {
	path := demoManifest("deployment-checkout.yaml")
	d.progress("applying %s (the team's Deployment checkout: 2 replicas of shop/checkout:1)", relToRepo(path))
	if err := d.st.ApplyYAML(ctx, path); err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: demoNamespace, Name: workloadName}
	return poll(ctx, workloadReadyTimeout, "deployment shop/checkout ready", func() (bool, string, error) {
		var dep appsv1.Deployment
		if err := c.Get(ctx, key, &dep); err != nil {
			return false, "", fmt.Errorf("get deployment %s: %w", key, err)
		}
		want := int32(1)
		if dep.Spec.Replicas != nil {
			want = *dep.Spec.Replicas
		}
		return dep.Status.ReadyReplicas == want, fmt.Sprintf("%d of %d ready", dep.Status.ReadyReplicas, want), nil
	})
}

// deliverWorkload creates the Rollout of deploy/demo/rollout-workload.yaml
// (with Options.StepInterval if set) and waits until serin has adopted the
// Deployment: its copy checkout-stable serves the route and the team's
// Deployment is scaled to zero.
func (d *demo) deliverWorkload(ctx context.Context, c client.Client) error {
	path := demoManifest("rollout-workload.yaml")
	ro, err := readRollout(path)
	if err != nil {
		return err
	}
	if d.opts.StepInterval > 0 {
		ro.Spec.StepInterval = &metav1.Duration{Duration: d.opts.StepInterval}
	}
	d.progress("creating the Rollout of %s (serin delivers deployment/checkout; stepInterval %v)",
		relToRepo(path), ro.Spec.StepInterval.Duration)
	if err := c.Create(ctx, ro); err != nil {
		return fmt.Errorf("create rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	key := client.ObjectKeyFromObject(ro)
	return poll(ctx, adoptionTimeout, "serin to adopt deployment shop/checkout", func() (bool, string, error) {
		var got v1alpha1.Rollout
		if err := c.Get(ctx, key, &got); err != nil {
			return false, "", fmt.Errorf("get rollout %s: %w", key, err)
		}
		var dep appsv1.Deployment
		if err := c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: ro.Spec.Workload.Deployment}, &dep); err != nil {
			return false, "", fmt.Errorf("get deployment %s/%s: %w", key.Namespace, ro.Spec.Workload.Deployment, err)
		}
		w := got.Status.Workload
		adopted := w != nil && w.AdoptedAt != nil && dep.Spec.Replicas != nil && *dep.Spec.Replicas == 0
		return adopted, fmt.Sprintf("phase %q: %s", got.Status.Phase, got.Status.Message), nil
	})
}

// readRollout reads a Rollout manifest strictly: an unknown field is an
// error, never silently dropped.
func readRollout(path string) (*v1alpha1.Rollout, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", relToRepo(path), err)
	}
	ro := &v1alpha1.Rollout{}
	if err := yaml.UnmarshalStrict(b, ro); err != nil {
		return nil, fmt.Errorf("read %s: %w", relToRepo(path), err)
	}
	if ro.Spec.Workload == nil || ro.Namespace == "" || ro.Name == "" {
		return nil, fmt.Errorf("read %s: want a named Rollout in a namespace with spec.workload", relToRepo(path))
	}
	if ro.Spec.StepInterval == nil {
		ro.Spec.StepInterval = &metav1.Duration{Duration: v1alpha1.DefaultStepInterval}
	}
	return ro, nil
}

// poll calls cond every 200 ms until it holds, fails, ctx ends or timeout
// passes; the error then names what and cond's last state.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, state, err := cond()
		switch {
		case err != nil:
			return fmt.Errorf("waiting for %s: %w", what, err)
		case ok:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("waiting for %s: not after %v (last: %s)", what, timeout, state)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, errors.Join(ctx.Err(), errors.New("last: "+state)))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
