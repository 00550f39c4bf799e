// Package readmodel is the API's in-memory view of the Rollouts: a
// go-memdb database that an informer keeps up to date, indexed by id
// (namespace/name), namespace, phase and VirtualService. The REST API and
// the console read from it; they write through the Kubernetes API and
// see their writes arrive here through the informer.
package readmodel

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/go-memdb"
	"k8s.io/apimachinery/pkg/util/resourceversion"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// The table and index names of the memdb schema.
const (
	table          = "rollouts"
	indexID        = "id"
	indexNamespace = "namespace"
	indexPhase     = "phase"
	indexVS        = "virtualService"
)

// record is one row: the Rollout plus the flattened keys memdb indexes.
// The Rollout is a deep copy owned by the store and never mutated; readers
// get their own copies.
type record struct {
	ID             string // namespace/name
	Namespace      string
	Phase          string // may be empty: a Rollout the controller has not seen yet
	VirtualService string // namespace/virtualService
	Rollout        *v1alpha1.Rollout
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		table: {
			Name: table,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:        {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				indexNamespace: {Name: indexNamespace, Indexer: &memdb.StringFieldIndex{Field: "Namespace"}},
				indexPhase:     {Name: indexPhase, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Phase"}},
				indexVS:        {Name: indexVS, Indexer: &memdb.StringFieldIndex{Field: "VirtualService"}},
			},
		},
	}}
}

// Store is the read model. Its methods are safe for concurrent use.
type Store struct {
	db  *memdb.MemDB
	hub *hub

	mu     sync.Mutex // serializes writers, so change events keep the writes' order
	synced bool
	series map[string]*ring // id -> analysis ticks; guarded by mu
}

// New returns an empty store.
func New() (*Store, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("read model schema: %w", err)
	}
	return &Store{db: db, hub: newHub(), series: map[string]*ring{}}, nil
}

func id(namespace, name string) string { return namespace + "/" + name }

// Upsert stores a copy of r, replacing any earlier version, records a new
// analysis tick in the rollout's series, and notifies subscribers.
func (s *Store) Upsert(r *v1alpha1.Rollout) error {
	r = r.DeepCopy()
	rec := &record{
		ID:             id(r.Namespace, r.Name),
		Namespace:      r.Namespace,
		Phase:          string(r.Status.Phase),
		VirtualService: id(r.Namespace, r.Spec.VirtualService),
		Rollout:        r,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.Txn(true)
	if err := txn.Insert(table, rec); err != nil {
		txn.Abort()
		return fmt.Errorf("read model: store Rollout %s: %w", rec.ID, err)
	}
	txn.Commit()
	s.hub.publish(Event{Type: EventUpsert, Rollout: r, Point: s.record(r)})
	return nil
}

// Delete removes the Rollout namespace/name and its series, if present,
// and notifies subscribers.
func (s *Store) Delete(namespace, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.Txn(true)
	raw, err := txn.First(table, indexID, id(namespace, name))
	if err != nil || raw == nil {
		txn.Abort()
		if err != nil {
			return fmt.Errorf("read model: find Rollout %s/%s: %w", namespace, name, err)
		}
		return nil
	}
	if err := txn.Delete(table, raw); err != nil {
		txn.Abort()
		return fmt.Errorf("read model: delete Rollout %s/%s: %w", namespace, name, err)
	}
	txn.Commit()
	delete(s.series, id(namespace, name))
	s.hub.publish(Event{Type: EventDelete, Rollout: raw.(*record).Rollout})
	return nil
}

// Get returns a copy of the Rollout namespace/name, or false when the read
// model does not hold it.
func (s *Store) Get(namespace, name string) (*v1alpha1.Rollout, bool) {
	raw, err := s.db.Txn(false).First(table, indexID, id(namespace, name))
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*record).Rollout.DeepCopy(), true
}

// Filter selects Rollouts in List. Empty fields match everything.
type Filter struct {
	Namespace string
	// Phase matches status.phase exactly; a Rollout the controller has
	// not picked up yet has no phase and matches only an empty filter.
	Phase v1alpha1.Phase
}

// List returns copies of the Rollouts that match f, sorted by namespace
// and name.
func (s *Store) List(f Filter) ([]*v1alpha1.Rollout, error) {
	txn := s.db.Txn(false)
	var (
		it  memdb.ResultIterator
		err error
	)
	switch {
	case f.Namespace != "":
		it, err = txn.Get(table, indexNamespace, f.Namespace)
	case f.Phase != "":
		it, err = txn.Get(table, indexPhase, string(f.Phase))
	default:
		it, err = txn.Get(table, indexID)
	}
	if err != nil {
		return nil, fmt.Errorf("read model: list Rollouts: %w", err)
	}
	out := []*v1alpha1.Rollout{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		rec := raw.(*record)
		if f.Phase != "" && rec.Phase != string(f.Phase) {
			continue
		}
		out = append(out, rec.Rollout.DeepCopy())
	}
	return out, nil
}

// ByVirtualService returns copies of the Rollouts in namespace that target
// the VirtualService vs, whatever their phase, sorted by name.
func (s *Store) ByVirtualService(namespace, vs string) ([]*v1alpha1.Rollout, error) {
	it, err := s.db.Txn(false).Get(table, indexVS, id(namespace, vs))
	if err != nil {
		return nil, fmt.Errorf("read model: Rollouts of VirtualService %s/%s: %w", namespace, vs, err)
	}
	out := []*v1alpha1.Rollout{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*record).Rollout.DeepCopy())
	}
	return out, nil
}

// Synced reports whether the informer feeding the store has delivered its
// initial list, so that an empty answer means "none" rather than "not yet".
func (s *Store) Synced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

func (s *Store) setSynced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.synced = true
}

// Subscribe returns a channel of the changes made after the call, for live
// views such as SSE. The channel holds at most buffer events; a subscriber
// that falls that far behind is dropped: its channel is closed, and it
// should re-read the state with Get or List and subscribe again. cancel
// unsubscribes and closes the channel; it is safe to call more than once.
func (s *Store) Subscribe(buffer int) (events <-chan Event, cancel func()) {
	return s.hub.subscribe(buffer)
}

// WaitFor blocks until the store holds namespace/name at resourceVersion
// or a later one, so that a client that has just written through the
// Kubernetes API reads its own write here. It returns false when ctx ends
// first. Resource versions are compared as the API server defines them
// (k8s.io/apimachinery resourceversion); one that does not parse counts
// only when it matches exactly.
func (s *Store) WaitFor(ctx context.Context, namespace, name, resourceVersion string) bool {
	for {
		ws := memdb.NewWatchSet()
		ch, raw, err := s.db.Txn(false).FirstWatch(table, indexID, id(namespace, name))
		if err == nil && raw != nil && atOrAfter(raw.(*record).Rollout.ResourceVersion, resourceVersion) {
			return true
		}
		ws.Add(ch)
		if ws.WatchCtx(ctx) != nil {
			return false
		}
	}
}

// atOrAfter reports whether the stored resource version have is the same
// as want or newer.
func atOrAfter(have, want string) bool {
	if have == want {
		return true
	}
	c, err := resourceversion.CompareResourceVersion(have, want)
	return err == nil && c >= 0
}
