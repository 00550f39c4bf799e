package stack

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// staticUsers are the users of tokens.csv and their groups. admin is a cluster
// admin; alice and bob get no RBAC: tests grant what they need.
var staticUsers = []struct{ name, group string }{
	{"admin", "system:masters"},
	{"alice", "serin:users"},
	{"bob", "serin:users"},
}

// startKube starts etcd and kube-apiserver, writes the admin kubeconfig and
// installs the Istio and serin CRDs.
func (s *Stack) startKube(ctx context.Context) error {
	if err := s.writeTokens(); err != nil {
		return err
	}
	if err := writeServiceAccountKeys(s.Dir); err != nil {
		return err
	}
	var etcdURL string
	err := withPortRetry(func() error {
		var err error
		etcdURL, err = s.startEtcd(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if err := withPortRetry(func() error { return s.startAPIServer(ctx, etcdURL) }); err != nil {
		return err
	}
	certDir := filepath.Join(s.Dir, "apiserver-certs")
	if s.caData, err = os.ReadFile(filepath.Join(certDir, "apiserver.crt")); err != nil {
		return fmt.Errorf("read kube-apiserver certificate: %w", err)
	}
	if err := s.writeKubeconfig(); err != nil {
		return err
	}
	return s.installCRDs(ctx)
}

// writeTokens writes tokens.csv with a fresh random token per static user.
func (s *Stack) writeTokens() error {
	s.tokens = make(map[string]string, len(staticUsers))
	var csv []byte
	for _, u := range staticUsers {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("token for %s: %w", u.name, err)
		}
		tok := hex.EncodeToString(b)
		s.tokens[u.name] = tok
		// token,user,uid,"group1,group2"
		csv = fmt.Appendf(csv, "%s,%s,%s,%q\n", tok, u.name, u.name, u.group)
	}
	path := filepath.Join(s.Dir, "tokens.csv")
	if err := os.WriteFile(path, csv, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeServiceAccountKeys generates the RSA key pair that signs and verifies
// service-account tokens: dir/sa.key and dir/sa.pub.
func writeServiceAccountKeys(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("marshal service-account public key: %w", err)
	}
	files := map[string]*pem.Block{
		"sa.key": {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)},
		"sa.pub": {Type: "PUBLIC KEY", Bytes: pub},
	}
	for name, block := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// startEtcd starts etcd on two free ports and waits for /health. It returns
// the client URL.
func (s *Stack) startEtcd(ctx context.Context) (string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return "", err
	}
	client := "http://" + hostPort(ports[0])
	peer := "http://" + hostPort(ports[1])
	s.logf("starting etcd on %s", hostPort(ports[0]))
	p, err := StartProcess(s.Dir, "etcd", systemBin("etcd"),
		"--name=default", "--logger=zap",
		"--data-dir="+filepath.Join(s.Dir, "etcd-data"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer,
	)
	if err != nil {
		return "", err
	}
	s.track(p, &s.etcd)
	if err := waitReady(ctx, p, 30*time.Second, HTTPReady(http.DefaultClient, client+"/health", nil)); err != nil {
		return "", err
	}
	return client, nil
}

// startAPIServer starts kube-apiserver on a free port and waits for /readyz.
func (s *Stack) startAPIServer(ctx context.Context, etcdURL string) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	s.logf("starting kube-apiserver on %s", hostPort(ports[0]))
	p, err := StartProcess(s.Dir, "kube-apiserver", filepath.Join(BinDir(), "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--cert-dir="+filepath.Join(s.Dir, "apiserver-certs"),
		"--secure-port="+strconv.Itoa(ports[0]),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// A /16, not a /24: every e2e test creates its simulated Services
		// (CreateWorkloads) and nothing deletes a namespace's contents here,
		// so a suite run needs more than 254 ClusterIPs.
		"--service-cluster-ip-range=10.0.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(s.Dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(s.Dir, "sa.key"),
		"--token-auth-file="+filepath.Join(s.Dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		// No nodes and no kubernetes Service endpoints to keep: a loopback
		// address is not a valid endpoint, and reconciling it only logs errors.
		"--endpoint-reconciler-type=none",
	)
	if err != nil {
		return err
	}
	s.track(p, &s.apiserver)
	s.APIServerURL = "https://" + hostPort(ports[0])
	// The serving certificate does not exist until the server writes it, so
	// readiness is polled without verifying it; clients then use its CA.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	auth := http.Header{"Authorization": {"Bearer " + s.tokens["admin"]}}
	return waitReady(ctx, p, 90*time.Second, HTTPReady(insecure, s.APIServerURL+"/readyz", auth))
}

// writeKubeconfig writes Dir/kubeconfig for admin.
func (s *Stack) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["serin-stack"] = &clientcmdapi.Cluster{Server: s.APIServerURL, CertificateAuthorityData: s.caData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: s.tokens["admin"]}
	cfg.Contexts["serin-stack"] = &clientcmdapi.Context{Cluster: "serin-stack", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "serin-stack"
	s.Kubeconfig = filepath.Join(s.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, s.Kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", s.Kubeconfig, err)
	}
	return nil
}

// Token returns the bearer token of a static user (admin, alice or bob), or
// "" for an unknown user.
func (s *Stack) Token(user string) string { return s.tokens[user] }

// RESTConfig returns a client config for admin (group system:masters).
func (s *Stack) RESTConfig() *rest.Config { return s.RESTConfigFor("admin") }

// RESTConfigFor returns a client config for a static user by name (admin,
// alice or bob). An unknown user gets a config without a token, which the
// API server treats as anonymous.
func (s *Stack) RESTConfigFor(user string) *rest.Config {
	return &rest.Config{
		Host:            s.APIServerURL,
		BearerToken:     s.tokens[user],
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), s.caData...)},
		QPS:             200,
		Burst:           400,
		UserAgent:       "serin-stack/" + user,
	}
}
