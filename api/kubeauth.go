package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// DefaultTokenCacheTTL is how long KubeAuth trusts a TokenReview that
// said yes, when KubeAuthOptions.CacheTTL is 0.
const DefaultTokenCacheTTL = 10 * time.Second

// DefaultFailedTokenTTL is how long KubeAuth remembers a token that a
// TokenReview refused, when KubeAuthOptions.FailedTTL is 0: a client that
// repeats a bad token costs one review per TTL, not one per request. It
// is short because a refusal may be a token used a moment before its
// ServiceAccount reached the API server's cache.
const DefaultFailedTokenTTL = 5 * time.Second

// maxCachedTokens bounds the token cache; beyond it, new tokens are
// reviewed every time until expired entries are pruned. maxFailedTokens
// bounds the cache of refused tokens; beyond it, some are forgotten.
const (
	maxCachedTokens = 4096
	maxFailedTokens = 4096
)

// KubeAuthOptions configure KubeAuth.
type KubeAuthOptions struct {
	// Client creates the reviews. Its identity needs create on
	// tokenreviews.authentication.k8s.io and
	// subjectaccessreviews.authorization.k8s.io, and its scheme must
	// include authentication/v1 and authorization/v1 (client-go's does).
	// Required.
	Client client.Client
	// CacheTTL is how long a positive TokenReview is reused; 0 means
	// DefaultTokenCacheTTL, negative disables the cache.
	CacheTTL time.Duration
	// FailedTTL is how long a token a TokenReview refused is refused
	// without another review; 0 means DefaultFailedTokenTTL, negative
	// disables this cache. A review that could not run is not cached.
	FailedTTL time.Duration
	// Audiences, when set, are sent with each TokenReview, and a token is
	// accepted only when the review's status.audiences names one of them
	// (the controller's --token-audiences). Empty sends none: the API
	// server then checks the token against its own audiences
	// (--api-audiences, by default its service-account issuer), so any
	// service-account token of the cluster, and the API server's static
	// and OIDC tokens, are accepted. Setting it refuses those unless they
	// were issued for one of Audiences (kubectl create token --audience).
	Audiences []string
	// Now is the clock of the cache; nil means time.Now.
	Now func() time.Time
}

// KubeAuth is the in-cluster Authenticator and Authorizer: a TokenReview
// checks each bearer token, and a SubjectAccessReview each action, so that
// access is exactly what the cluster's RBAC grants on rollouts.serin.dev.
//
// Actions map to RBAC verbs on the resource "rollouts" of the Action's
// namespace: get (one rollout, its series and its event stream), list
// (lists and the list event stream, cluster-wide without a namespace),
// create, and patch for pause, resume, promote, abort and retry. The operations
// are not mapped to subresources: the CRD has none, and patch on rollouts
// is what doing the same with kubectl needs. A release (POST .../release)
// needs get on the rollout and patch on its Deployment (deployments.apps,
// that name): what kubectl set image needs.
type KubeAuth struct {
	o     KubeAuthOptions
	mu    sync.Mutex
	cache map[[sha256.Size]byte]cachedUser // keyed by the token's digest, never the token
	// failed maps the digests of refused tokens to when they may be
	// reviewed again.
	failed map[[sha256.Size]byte]time.Time
}

type cachedUser struct {
	user    User
	expires time.Time
}

// NewKubeAuth returns a KubeAuth.
func NewKubeAuth(o KubeAuthOptions) (*KubeAuth, error) {
	if o.Client == nil {
		return nil, errors.New("kube auth: missing Client")
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = DefaultTokenCacheTTL
	}
	if o.FailedTTL == 0 {
		o.FailedTTL = DefaultFailedTokenTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &KubeAuth{o: o, cache: map[[sha256.Size]byte]cachedUser{}, failed: map[[sha256.Size]byte]time.Time{}}, nil
}

// Authenticate implements Authenticator with a TokenReview.
func (k *KubeAuth) Authenticate(ctx context.Context, token string) (User, error) {
	if token == "" {
		return User{}, ErrUnauthenticated
	}
	key := sha256.Sum256([]byte(token))
	if u, ok := k.cached(key); ok {
		return u, nil
	}
	if k.refusedRecently(key) {
		return User{}, fmt.Errorf("%w: the token was refused moments ago", ErrUnauthenticated)
	}
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: k.o.Audiences}}
	if err := k.o.Client.Create(ctx, tr); err != nil {
		return User{}, fmt.Errorf("TokenReview: %w", err) // never the token
	}
	if !tr.Status.Authenticated {
		k.refused(key)
		return User{}, fmt.Errorf("%w: %s", ErrUnauthenticated, tr.Status.Error)
	}
	if len(k.o.Audiences) > 0 && !anyOf(tr.Status.Audiences, k.o.Audiences) {
		k.refused(key)
		return User{}, fmt.Errorf("%w: token not meant for this API", ErrUnauthenticated)
	}
	ui := tr.Status.User
	u := User{Name: ui.Username, UID: ui.UID, Groups: ui.Groups}
	if len(ui.Extra) > 0 {
		u.Extra = map[string][]string{}
		for k, v := range ui.Extra {
			u.Extra[k] = v
		}
	}
	k.store(key, u, token)
	return u, nil
}

func anyOf(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

func (k *KubeAuth) cached(key [sha256.Size]byte) (User, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.cache[key]
	if !ok || !k.o.Now().Before(c.expires) {
		return User{}, false
	}
	return c.user, true
}

// store caches u for the token of digest key, for CacheTTL or until the
// token's own expiry when it says one.
func (k *KubeAuth) store(key [sha256.Size]byte, u User, token string) {
	if k.o.CacheTTL < 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.o.Now()
	if len(k.cache) >= maxCachedTokens {
		for d, c := range k.cache {
			if !now.Before(c.expires) {
				delete(k.cache, d)
			}
		}
		if len(k.cache) >= maxCachedTokens {
			return
		}
	}
	expires := now.Add(k.o.CacheTTL)
	if exp, ok := TokenExpiry(token); ok && exp.Before(expires) {
		expires = exp
	}
	k.cache[key] = cachedUser{user: u, expires: expires}
}

// refusedRecently reports whether the token of digest key was refused
// less than FailedTTL ago.
func (k *KubeAuth) refusedRecently(key [sha256.Size]byte) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	exp, ok := k.failed[key]
	return ok && k.o.Now().Before(exp)
}

// refused remembers a refused token's digest for FailedTTL. The cache
// stays bounded: when full, expired entries go first, then any (a
// forgotten token only costs one more review).
func (k *KubeAuth) refused(key [sha256.Size]byte) {
	if k.o.FailedTTL < 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.o.Now()
	if _, dup := k.failed[key]; !dup && len(k.failed) >= maxFailedTokens {
		for d, exp := range k.failed {
			if !now.Before(exp) {
				delete(k.failed, d)
			}
		}
		for d := range k.failed {
			if len(k.failed) < maxFailedTokens {
				break
			}
			delete(k.failed, d)
		}
	}
	k.failed[key] = now.Add(k.o.FailedTTL)
}

// Authorize implements Authorizer with a SubjectAccessReview of a.Verb on
// rollouts.serin.dev in a.Namespace, or on the resource a names (see
// KubeAuth for the mapping).
func (k *KubeAuth) Authorize(ctx context.Context, u User, a Action) (bool, error) {
	extra := map[string]authzv1.ExtraValue{}
	for key, v := range u.Extra {
		extra[key] = v
	}
	group, resource := a.resource()
	attrs := &authzv1.ResourceAttributes{Namespace: a.Namespace, Name: a.Name, Verb: a.Verb, Group: group, Resource: resource}
	if a.Resource == "" {
		attrs.Version = v1alpha1.GroupVersion.Version
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Name, UID: u.UID, Groups: u.Groups, Extra: extra, ResourceAttributes: attrs,
	}}
	if err := k.o.Client.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("SubjectAccessReview for %s %s %s in %q: %w", u.Name, a.Verb, a.ResourceName(), a.Namespace, err)
	}
	return sar.Status.Allowed && !sar.Status.Denied, nil
}
