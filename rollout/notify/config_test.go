package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/serin-dev/serin/rollout"
)

// kube is a SecretReader on a fake clientset holding ops/hooks.
func kube() SecretReader {
	cs := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "hooks"},
		Data: map[string][]byte{
			"slack": []byte("https://hooks.slack.example/services/" + secretToken + "\n"),
			"hmac":  []byte("k3y"),
			"ftp":   []byte("ftp://files.example/x"),
		},
	})
	return KubeSecrets{Client: cs.CoreV1()}
}

func TestLoadGood(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "teams-url")
	if err := os.WriteFile(urlFile, []byte("https://prod.workflows.example/x?sig="+secretToken), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SERIN_TEST_DISCORD", "https://discord.example/api/webhooks/1/"+secretToken)
	cfgFile := filepath.Join(dir, "notify.yaml")
	yml := fmt.Sprintf(`
consoleURL: https://serin.example/
jaegerURL: https://jaeger.example
channels:
- name: team-slack
  type: slack
  url: {secretKeyRef: {namespace: ops, name: hooks, key: slack}}
- name: teams
  type: teams
  events: [RolledBack, Failed]
  url: {file: %s}
- name: discord
  type: discord
  url: {env: SERIN_TEST_DISCORD}
- name: audit
  type: webhook
  url: {env: SERIN_TEST_DISCORD}
  secret: {secretKeyRef: {namespace: ops, name: hooks, key: hmac}}
`, urlFile)
	if err := os.WriteFile(cfgFile, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(context.Background(), cfgFile, kube())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConsoleURL != "https://serin.example" || len(cfg.Channels) != 4 {
		t.Fatalf("config = %+v", cfg)
	}
	slack := cfg.Channels[0]
	if slack.URL.Reveal() != "https://hooks.slack.example/services/"+secretToken {
		t.Errorf("slack url not resolved and trimmed")
	}
	if len(slack.Events) != len(DefaultEvents) || !cfg.Channels[1].Events[rollout.EventRolledBack] || cfg.Channels[1].Events[rollout.EventStarted] {
		t.Errorf("events: %v / %v", slack.Events, cfg.Channels[1].Events)
	}
	if cfg.Channels[3].Key.Reveal() != "k3y" {
		t.Errorf("webhook key not resolved")
	}
	// Nothing prints a secret: fmt, JSON, slog.
	var logBuf strings.Builder
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("cfg", "cfg", cfg, "url", slack.URL)
	js, _ := json.Marshal(cfg)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s %d %x %q", cfg, cfg, cfg, slack.URL, slack.URL, slack.URL, slack.URL), string(js), logBuf.String()} {
		if strings.Contains(s, secretToken) || strings.Contains(s, "k3y") {
			t.Errorf("secret printed: %s", s)
		}
		if !strings.Contains(s, redacted) {
			t.Errorf("want %s in %s", redacted, s)
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	t.Setenv("SERIN_TEST_EMPTY", "")
	const good = "https://hooks.example/" + secretToken
	t.Setenv("SERIN_TEST_URL", good)
	t.Setenv("SERIN_TEST_FTP", "ftp://hooks.example/"+secretToken)
	t.Setenv("SERIN_TEST_NOHOST", "https:///"+secretToken)
	t.Setenv("SERIN_TEST_BAD", "https://hooks.example/%zz"+secretToken)
	ch := func(body string) string { return "channels:\n- " + body }
	cases := []struct{ name, yaml, want string }{
		{"not yaml", "channels: [", "does not parse"},
		{"channel not an object", "channels: [slack]", "channels[0]: does not parse"},
		{"wrong field type", ch("{name: a, type: slack, events: RolledBack, url: {env: SERIN_TEST_URL}}"), "channels[0]: does not parse"},
		{"unknown top-level field", "chanels: []", `unknown field "chanels"`},
		{"unknown channel field", ch("{name: a, type: slack, url: {env: SERIN_TEST_URL}, colour: red}"), `channels[0]: does not parse: json: unknown field "colour"`},
		{"bad consoleURL", "consoleURL: serin.local", "consoleURL: \"serin.local\" is not an absolute http(s) URL"},
		{"bad jaegerURL", "jaegerURL: ftp://j", "jaegerURL:"},
		{"no name", ch("{type: slack, url: {env: SERIN_TEST_URL}}"), "channels[0]: name: is required"},
		{"name with comma", ch("{name: 'a,b', type: slack, url: {env: SERIN_TEST_URL}}"), "name: \"a,b\" must not contain"},
		{"duplicate name", ch("{name: a, type: slack, url: {env: SERIN_TEST_URL}}\n- {name: a, type: teams, url: {env: SERIN_TEST_URL}}"), `channels[1] (a): name: duplicate channel name "a"`},
		{"no type", ch("{name: a, url: {env: SERIN_TEST_URL}}"), "channels[0] (a): type: is required"},
		{"unknown type", ch("{name: a, type: msteams, url: {env: SERIN_TEST_URL}}"), `channels[0] (a): type: unknown type "msteams"`},
		{"unknown event", ch("{name: a, type: slack, events: [RolledBack, Exploded], url: {env: SERIN_TEST_URL}}"), `channels[0] (a): events: unknown event "Exploded"`},
		{"no url", ch("{name: a, type: slack}"), "channels[0] (a): url: one of secretKeyRef, file or env is required"},
		{"empty url ref", ch("{name: a, type: slack, url: {}}"), "url: one of secretKeyRef, file or env is required"},
		{"two url sources", ch("{name: a, type: slack, url: {env: SERIN_TEST_URL, file: /x}}"), "url: set only one of"},
		{"env unset", ch("{name: a, type: slack, url: {env: SERIN_TEST_NOPE}}"), "url: env: variable SERIN_TEST_NOPE is not set"},
		{"env empty", ch("{name: a, type: slack, url: {env: SERIN_TEST_EMPTY}}"), "url: the referenced value is empty"},
		{"file missing", ch("{name: a, type: slack, url: {file: /nonexistent/serin}}"), "url: file:"},
		{"secret missing", ch("{name: a, type: slack, url: {secretKeyRef: {namespace: ops, name: nope, key: slack}}}"), "url: secretKeyRef: get Secret ops/nope"},
		{"secret key missing", ch("{name: a, type: slack, url: {secretKeyRef: {namespace: ops, name: hooks, key: teams}}}"), `has no key "teams"`},
		{"secretKeyRef no namespace", ch("{name: a, type: slack, url: {secretKeyRef: {name: hooks, key: slack}}}"), "url: secretKeyRef.namespace is required"},
		{"secretKeyRef no key", ch("{name: a, type: slack, url: {secretKeyRef: {namespace: ops, name: hooks}}}"), "url: secretKeyRef.key is required"},
		{"bad scheme", ch("{name: a, type: slack, url: {env: SERIN_TEST_FTP}}"), "channels[0] (a): url: scheme must be https or http"},
		{"bad scheme from Secret", ch("{name: a, type: slack, url: {secretKeyRef: {namespace: ops, name: hooks, key: ftp}}}"), "url: scheme must be"},
		{"no host", ch("{name: a, type: slack, url: {env: SERIN_TEST_NOHOST}}"), "url: has no host"},
		{"unparsable url", ch("{name: a, type: slack, url: {env: SERIN_TEST_BAD}}"), "url: is not a valid URL"},
		{"webhook without secret", ch("{name: a, type: webhook, url: {env: SERIN_TEST_URL}}"), "channels[0] (a): secret: is required for type webhook"},
		{"secret on slack", ch("{name: a, type: slack, url: {env: SERIN_TEST_URL}, secret: {env: SERIN_TEST_URL}}"), "secret: only type webhook"},
		{"webhook secret unset", ch("{name: a, type: webhook, url: {env: SERIN_TEST_URL}, secret: {env: SERIN_TEST_NOPE}}"), "secret: env: variable SERIN_TEST_NOPE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(context.Background(), []byte(tc.yaml), kube())
			if err == nil {
				t.Fatalf("accepted: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("config returned with the error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secretToken) {
				t.Errorf("error quotes the secret: %q", err)
			}
		})
	}
}

func TestLoadNoSecretReader(t *testing.T) {
	_, err := Parse(context.Background(), []byte("channels:\n- {name: a, type: slack, url: {secretKeyRef: {namespace: ops, name: hooks, key: slack}}}"), nil)
	if err == nil || !strings.Contains(err.Error(), "no Kubernetes Secret reader") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(context.Background(), filepath.Join(t.TempDir(), "none.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "notification config") {
		t.Fatalf("err = %v", err)
	}
}
