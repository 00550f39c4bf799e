package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// ErrUnauthenticated is returned by an Authenticator for a missing,
// unknown or expired token.
var ErrUnauthenticated = errors.New("unauthenticated")

// User is an authenticated caller.
type User struct {
	Name   string
	Groups []string
	// UID and Extra come from a TokenReview and are passed on to the
	// SubjectAccessReview; other authenticators leave them empty.
	UID   string
	Extra map[string][]string
}

// Authenticator turns a bearer token into a User.
type Authenticator interface {
	// Authenticate returns the token's user, ErrUnauthenticated (possibly
	// wrapped) when the token is not valid, or another error when the
	// check itself failed (for example a TokenReview that could not run).
	Authenticate(ctx context.Context, token string) (User, error)
}

// Action is what a request wants to do, in Kubernetes RBAC terms so that a
// SubjectAccessReview can check it: Verb on rollouts.serin.dev (with
// Subresource, when set) in Namespace, or on Group's Resource when
// Resource is set.
type Action struct {
	Verb        string // get, list, watch, create or patch
	Namespace   string // empty for a list across namespaces
	Name        string // empty for list and create
	Subresource string // the API operation for patches: pause, resume, promote, abort or retry
	// Group and Resource name another resource than rollouts.serin.dev:
	// a release is a patch of the delivered Deployment (Group "apps",
	// Resource "deployments"), authorized as kubectl set image would be.
	// Both empty mean rollouts.serin.dev.
	Group    string
	Resource string
}

// resource returns a's API group and resource, rollouts.serin.dev unless
// a names another.
func (a Action) resource() (group, resource string) {
	if a.Resource == "" {
		return v1alpha1.GroupVersion.Group, "rollouts"
	}
	return a.Group, a.Resource
}

// ResourceName names a's resource as kubectl does: "rollouts.serin.dev",
// "deployments.apps", or "pods" for the core group.
func (a Action) ResourceName() string {
	g, r := a.resource()
	if g == "" {
		return r
	}
	return r + "." + g
}

// Mutating reports whether the action changes anything.
func (a Action) Mutating() bool {
	switch a.Verb {
	case "get", "list", "watch":
		return false
	}
	return true
}

// Authorizer decides whether a user may perform an action.
type Authorizer interface {
	// Authorize returns whether u may do a, and an error only when the
	// decision could not be made.
	Authorize(ctx context.Context, u User, a Action) (bool, error)
}

// Roles of the static token file.
const (
	RoleViewer   = "viewer"   // reads only
	RoleOperator = "operator" // reads and mutations
)

// StaticTokens is an Authenticator and Authorizer for the demo and tests:
// a fixed set of tokens, each with a user name and a role. Tokens are held
// as SHA-256 digests so that a lookup does not compare secrets byte by
// byte.
type StaticTokens struct {
	byDigest map[[sha256.Size]byte]User
	roles    map[string]string // user name -> role
}

// LoadStaticTokens reads a token file. Each non-empty line that does not
// start with '#' is "token,user,role", role being viewer or operator.
// Anything else is refused with its line number; the error never contains
// a token.
func LoadStaticTokens(path string) (*StaticTokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	st, err := ParseStaticTokens(f)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return st, nil
}

// ParseStaticTokens parses the token file format of LoadStaticTokens.
func ParseStaticTokens(r io.Reader) (*StaticTokens, error) {
	st := &StaticTokens{byDigest: map[[sha256.Size]byte]User{}, roles: map[string]string{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := st.add(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(st.byDigest) == 0 {
		return nil, errors.New("no tokens")
	}
	return st, nil
}

func (st *StaticTokens) add(line string) error {
	fields := strings.Split(line, ",")
	if len(fields) != 3 {
		return fmt.Errorf("want token,user,role; got %d fields", len(fields))
	}
	tok, user, role := strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1]), strings.TrimSpace(fields[2])
	switch {
	case tok == "":
		return errors.New("empty token")
	case user == "":
		return errors.New("empty user")
	case role != RoleViewer && role != RoleOperator:
		return fmt.Errorf("unknown role %q (want %s or %s)", role, RoleViewer, RoleOperator)
	}
	d := sha256.Sum256([]byte(tok))
	if _, dup := st.byDigest[d]; dup {
		return errors.New("duplicate token")
	}
	if prev, ok := st.roles[user]; ok && prev != role {
		return fmt.Errorf("user %q already has role %s", user, prev)
	}
	st.byDigest[d] = User{Name: user, Groups: []string{"serin:" + role}}
	st.roles[user] = role
	return nil
}

// Authenticate implements Authenticator.
func (st *StaticTokens) Authenticate(_ context.Context, token string) (User, error) {
	u, ok := st.byDigest[sha256.Sum256([]byte(token))]
	if !ok || token == "" {
		return User{}, ErrUnauthenticated
	}
	return u, nil
}

// Authorize implements Authorizer: viewers may read, operators may also
// mutate.
func (st *StaticTokens) Authorize(_ context.Context, u User, a Action) (bool, error) {
	switch st.roles[u.Name] {
	case RoleOperator:
		return true, nil
	case RoleViewer:
		return !a.Mutating(), nil
	}
	return false, nil
}
