package scale

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/test/stack"
)

var (
	saOnce       sync.Once
	saKubeconfig string
	saErr        error
)

// controllerKubeconfig returns a kubeconfig for the serin-controller
// ServiceAccount with exactly the RBAC of deploy/rbac.yaml, as the e2e
// harness does, so that the controller measured is the one deployed.
func controllerKubeconfig(t testing.TB) string {
	t.Helper()
	saOnce.Do(func() { saKubeconfig, saErr = makeSAKubeconfig() })
	must(t, saErr)
	return saKubeconfig
}

func makeSAKubeconfig() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	if err != nil {
		return "", err
	}
	_, err = kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serin-system"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create namespace serin-system: %w", err)
	}
	if err := st.ApplyYAML(ctx, filepath.Join(stack.RepoRoot(), "deploy", "rbac.yaml")); err != nil {
		return "", fmt.Errorf("apply deploy/rbac.yaml: %w", err)
	}
	tr, err := kc.CoreV1().ServiceAccounts("serin-system").CreateToken(ctx, "serin-controller",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](4 * 3600)}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for serin-system/serin-controller: %w", err)
	}
	cfg, err := clientcmd.LoadFromFile(st.Kubeconfig)
	if err != nil {
		return "", fmt.Errorf("load %s: %w", st.Kubeconfig, err)
	}
	for _, a := range cfg.AuthInfos {
		a.Token = tr.Status.Token
	}
	path := filepath.Join(st.Dir, "serin-controller.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}
