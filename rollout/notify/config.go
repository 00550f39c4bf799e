// Package notify delivers rollout events to Slack, Discord, Mattermost,
// Microsoft Teams (Workflows) and signed generic JSON webhooks. Load reads
// the channel configuration, New builds a rollout.Notifier from it, and the
// engine's queue (rollout.NotifyQueue) hands it events off the reconcile
// path; each channel then has its own queue and worker.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/rollout"
)

// Type is a channel type: the format of the payload.
type Type string

// The channel types.
const (
	TypeSlack      Type = "slack"
	TypeDiscord    Type = "discord"
	TypeMattermost Type = "mattermost"
	TypeTeams      Type = "teams"
	TypeWebhook    Type = "webhook"
)

// DefaultEvents are the events a channel gets when it lists none. A retry
// is among them: it starts a rollout that a channel saw end, by a
// person's request.
var DefaultEvents = []rollout.EventKind{
	rollout.EventStarted, rollout.EventStepAdvanced, rollout.EventPaused,
	rollout.EventSucceeded, rollout.EventRolledBack, rollout.EventAborted, rollout.EventFailed,
	rollout.EventRetried,
}

// optInEvents may be listed but are not sent by default: Resumed follows
// every Paused, and Warning is for mesh and API hiccups.
var optInEvents = []rollout.EventKind{rollout.EventResumed, rollout.EventWarning}

// FileConfig is the configuration file as written (YAML or JSON).
type FileConfig struct {
	// ConsoleURL is the console's base URL; rollback messages link to
	// ConsoleURL/rollouts/{namespace}/{name}. Optional.
	ConsoleURL string `json:"consoleURL,omitempty"`
	// JaegerURL is the Jaeger UI's base URL; messages link to
	// JaegerURL/trace/{id} for a failed check's example trace. Optional.
	JaegerURL string        `json:"jaegerURL,omitempty"`
	Channels  []FileChannel `json:"channels"`
}

// FileChannel is one channel as written.
type FileChannel struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
	// Events lists the event kinds wanted; empty means DefaultEvents.
	Events []rollout.EventKind `json:"events,omitempty"`
	// URL points to the webhook URL, which is a credential.
	URL *SecretRef `json:"url"`
	// Secret points to the HMAC key (type webhook only; required there).
	Secret *SecretRef `json:"secret,omitempty"`
}

// Config is a validated configuration with its secrets resolved.
type Config struct {
	ConsoleURL string
	JaegerURL  string
	Channels   []Channel
}

// Channel is one validated channel.
type Channel struct {
	Name   string
	Type   Type
	Events map[rollout.EventKind]bool
	URL    Secret
	// Key is the HMAC-SHA256 key of a webhook channel.
	Key Secret
}

// Load reads the configuration file at path, checks it and resolves its
// secret references; sr may be nil when no channel uses secretKeyRef.
// Anything unknown, missing or malformed is refused with the channel and
// field named. Secrets are read once: a rotated URL takes a restart.
func Load(ctx context.Context, path string, sr SecretReader) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("notification config: %w", err)
	}
	cfg, err := Parse(ctx, data, sr)
	if err != nil {
		return nil, fmt.Errorf("notification config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load on bytes.
func Parse(ctx context.Context, data []byte, sr SecretReader) (*Config, error) {
	fc, err := decode(data)
	if err != nil {
		return nil, err
	}
	cfg := &Config{}
	if cfg.ConsoleURL, err = baseURL(fc.ConsoleURL); err != nil {
		return nil, fmt.Errorf("consoleURL: %w", err)
	}
	if cfg.JaegerURL, err = baseURL(fc.JaegerURL); err != nil {
		return nil, fmt.Errorf("jaegerURL: %w", err)
	}
	seen := map[string]bool{}
	for i, c := range fc.Channels {
		where := fmt.Sprintf("channels[%d]", i)
		if c.Name != "" {
			where += fmt.Sprintf(" (%s)", c.Name)
		}
		if seen[c.Name] && c.Name != "" {
			return nil, fmt.Errorf("%s: name: duplicate channel name %q", where, c.Name)
		}
		seen[c.Name] = true
		ch, err := c.validate(ctx, sr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		cfg.Channels = append(cfg.Channels, ch)
	}
	return cfg, nil
}

// decode parses data strictly: an unknown field is an error, and one in a
// channel names the channel.
func decode(data []byte) (FileConfig, error) {
	var raw struct {
		FileConfig
		Channels []json.RawMessage `json:"channels"`
	}
	js, err := yaml.YAMLToJSON(data)
	if err == nil {
		err = strictJSON(js, &raw)
	}
	if err != nil {
		return FileConfig{}, fmt.Errorf("does not parse: %w", err)
	}
	fc := raw.FileConfig
	for i, c := range raw.Channels {
		var ch FileChannel
		if err := strictJSON(c, &ch); err != nil {
			return FileConfig{}, fmt.Errorf("channels[%d]: does not parse: %w", i, err)
		}
		fc.Channels = append(fc.Channels, ch)
	}
	return fc, nil
}

func strictJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// validate checks one channel and resolves its secrets.
func (c FileChannel) validate(ctx context.Context, sr SecretReader) (Channel, error) {
	ch := Channel{Name: c.Name, Type: c.Type}
	switch {
	case c.Name == "":
		return ch, errors.New("name: is required")
	case strings.ContainsAny(c.Name, " \t\n,"):
		return ch, fmt.Errorf("name: %q must not contain spaces or commas", c.Name)
	}
	switch c.Type {
	case TypeSlack, TypeDiscord, TypeMattermost, TypeTeams, TypeWebhook:
	case "":
		return ch, errors.New("type: is required (slack, discord, mattermost, teams or webhook)")
	default:
		return ch, fmt.Errorf("type: unknown type %q (want slack, discord, mattermost, teams or webhook)", c.Type)
	}
	var err error
	if ch.Events, err = eventSet(c.Events); err != nil {
		return ch, fmt.Errorf("events: %w", err)
	}
	if ch.URL, err = c.URL.resolve(ctx, sr); err != nil {
		return ch, fmt.Errorf("url: %w", err)
	}
	if err := checkWebhookURL(ch.URL.Reveal()); err != nil {
		return ch, fmt.Errorf("url: %w", err)
	}
	switch {
	case c.Type == TypeWebhook && c.Secret == nil:
		return ch, errors.New("secret: is required for type webhook (the HMAC signing key)")
	case c.Type != TypeWebhook && c.Secret != nil:
		return ch, fmt.Errorf("secret: only type webhook signs its payload, not %s", c.Type)
	case c.Secret != nil:
		if ch.Key, err = c.Secret.resolve(ctx, sr); err != nil {
			return ch, fmt.Errorf("secret: %w", err)
		}
	}
	return ch, nil
}

func eventSet(kinds []rollout.EventKind) (map[rollout.EventKind]bool, error) {
	if len(kinds) == 0 {
		kinds = DefaultEvents
	}
	set := map[rollout.EventKind]bool{}
	for _, k := range kinds {
		if !knownEvent(k) {
			return nil, fmt.Errorf("unknown event %q (want %s)", k, eventNames())
		}
		set[k] = true
	}
	return set, nil
}

func knownEvent(k rollout.EventKind) bool {
	for _, e := range slices.Concat(DefaultEvents, optInEvents) {
		if e == k {
			return true
		}
	}
	return false
}

func eventNames() string {
	var s []string
	for _, e := range slices.Concat(DefaultEvents, optInEvents) {
		s = append(s, string(e))
	}
	return strings.Join(s, ", ")
}

// checkWebhookURL refuses a URL that is not absolute http(s). The error
// never quotes the URL: it is a credential.
func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a valid URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("scheme must be https or http")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// baseURL checks an optional base URL and trims its trailing slash.
func baseURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}
