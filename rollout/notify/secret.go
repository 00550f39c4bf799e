package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

const redacted = "[redacted]"

// Secret holds a webhook URL or a signing key. Every way of printing it
// (fmt verbs, slog, JSON) shows "[redacted]"; only Reveal returns the
// value, at the one place that needs it.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (Secret) GoString() string { return redacted }

// Format prints "[redacted]" for every verb, so that %d or %x cannot
// reach the value through reflection.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON returns "[redacted]" as a JSON string.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue returns "[redacted]" for log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// SecretReader reads one key of a Kubernetes Secret.
type SecretReader interface {
	// Secret returns the value of key in the Secret namespace/name. It
	// fails when the Secret or the key does not exist.
	Secret(ctx context.Context, namespace, name, key string) ([]byte, error)
}

// KubeSecrets is the client-go SecretReader. It needs "get" on secrets in
// the namespaces that the configuration names.
type KubeSecrets struct {
	// Client is typically kubernetes.Interface.CoreV1().
	Client corev1client.SecretsGetter
}

// Secret reads key from the Secret namespace/name with one GET.
func (k KubeSecrets) Secret(ctx context.Context, namespace, name, key string) ([]byte, error) {
	s, err := k.Client.Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get Secret %s/%s: %w", namespace, name, err)
	}
	v, ok := s.Data[key]
	if !ok {
		return nil, fmt.Errorf("Secret %s/%s has no key %q", namespace, name, key)
	}
	return v, nil
}

// SecretRef says where a secret value lives: exactly one of a key of a
// Kubernetes Secret, a file (a mounted Secret, say) or an environment
// variable.
type SecretRef struct {
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
	File         string        `json:"file,omitempty"`
	Env          string        `json:"env,omitempty"`
}

// SecretKeyRef names a key of a Kubernetes Secret.
type SecretKeyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// errEmptyRef is returned for a reference with no source set.
var errEmptyRef = errors.New("one of secretKeyRef, file or env is required")

// resolve reads the value that r points to. Surrounding whitespace is
// trimmed: Secrets made with "echo" end in a newline. Errors name the
// source, never the value.
func (r *SecretRef) resolve(ctx context.Context, sr SecretReader) (Secret, error) {
	if r == nil {
		return Secret{}, errEmptyRef
	}
	var v []byte
	var err error
	switch n := r.sources(); {
	case n == 0:
		return Secret{}, errEmptyRef
	case n > 1:
		return Secret{}, errors.New("set only one of secretKeyRef, file or env")
	case r.SecretKeyRef != nil:
		v, err = r.readSecret(ctx, sr)
	case r.File != "":
		v, err = os.ReadFile(r.File)
		if err != nil {
			err = fmt.Errorf("file: %w", err)
		}
	default:
		s, ok := os.LookupEnv(r.Env)
		if !ok {
			err = fmt.Errorf("env: variable %s is not set", r.Env)
		}
		v = []byte(s)
	}
	if err != nil {
		return Secret{}, err
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return Secret{}, errors.New("the referenced value is empty")
	}
	return NewSecret(string(v)), nil
}

func (r *SecretRef) sources() int {
	n := 0
	for _, set := range []bool{r.SecretKeyRef != nil, r.File != "", r.Env != ""} {
		if set {
			n++
		}
	}
	return n
}

func (r *SecretRef) readSecret(ctx context.Context, sr SecretReader) ([]byte, error) {
	k := r.SecretKeyRef
	switch {
	case k.Namespace == "":
		return nil, errors.New("secretKeyRef.namespace is required")
	case k.Name == "":
		return nil, errors.New("secretKeyRef.name is required")
	case k.Key == "":
		return nil, errors.New("secretKeyRef.key is required")
	case sr == nil:
		return nil, errors.New("secretKeyRef: no Kubernetes Secret reader configured")
	}
	v, err := sr.Secret(ctx, k.Namespace, k.Name, k.Key)
	if err != nil {
		return nil, fmt.Errorf("secretKeyRef: %w", err)
	}
	return v, nil
}
