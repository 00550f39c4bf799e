package main

import (
	"net/http"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// memoMapper is controller-runtime's dynamic REST mapper with its
// RESTMapping answers remembered. With --namespace the cache asks for the
// mapping of an object's kind on every Get (to tell whether it is
// namespaced), and each answer of the priority mapper beneath allocates a
// kilobyte or so: at a thousand rollouts, a sixth of all the controller
// allocated, and so much of its garbage collection. A kind's mapping does
// not change while the controller runs (its CRD would have to be deleted
// and made again with another scope); a kind not found yet (a CRD
// installed after the start) is not remembered, and is asked again.
type memoMapper struct {
	meta.RESTMapper
	mu sync.RWMutex
	m  map[string]meta.RESTMapping
}

// newMemoMapper is a manager's MapperProvider.
func newMemoMapper(c *rest.Config, hc *http.Client) (meta.RESTMapper, error) {
	m, err := apiutil.NewDynamicRESTMapper(c, hc)
	if err != nil {
		return nil, err
	}
	return memoize(m), nil
}

func memoize(m meta.RESTMapper) *memoMapper {
	return &memoMapper{RESTMapper: m, m: map[string]meta.RESTMapping{}}
}

// RESTMapping returns the remembered mapping of gk for versions, asking
// the mapper beneath the first time. Each caller gets its own copy.
func (m *memoMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	key := gk.String() + "/" + strings.Join(versions, ",")
	m.mu.RLock()
	r, ok := m.m[key]
	m.mu.RUnlock()
	if ok {
		return &r, nil
	}
	got, err := m.RESTMapper.RESTMapping(gk, versions...)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.m[key] = *got
	m.mu.Unlock()
	cp := *got
	return &cp, nil
}
