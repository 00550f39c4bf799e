// Package readmodel is the API's in-memory view of the Rollouts: a
// go-memdb database that an informer keeps up to date, indexed by id
// (namespace/name), by VirtualService, and in the list order (active
// rollouts first, then by namespace and name) overall, per namespace, per
// phase and per both. Each row holds the Rollout and its
// Summary, computed and encoded once when the version arrives, so that a
// list is a walk over an index. The REST API and the console read from
// it; they write through the Kubernetes API and see their writes arrive
// here through the informer.
package readmodel

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-memdb"
	"k8s.io/apimachinery/pkg/util/resourceversion"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// The table and index names of the memdb schema.
const (
	table   = "rollouts"
	indexID = "id"
	indexVS = "virtualService"
	// The list order, and the same order within a namespace, a phase, or
	// both: every filter of a list is a prefix of one of them.
	indexOrder        = "order"
	indexNsOrder      = "namespaceOrder"
	indexPhaseOrder   = "phaseOrder"
	indexNsPhaseOrder = "namespacePhaseOrder"
)

// record is one row: the Rollout plus the flattened keys memdb indexes.
// The Rollout is a deep copy owned by the store and never mutated; readers
// get their own copies.
type record struct {
	ID string // namespace/name
	// Live says the Rollout's status is the controller's latest tick,
	// from memory (Store.Live), newer than the stored one at the same
	// resourceVersion.
	Live           bool
	VirtualService string // namespace/virtualService
	Rollout        *v1alpha1.Rollout
	Row            *Row // shared and immutable

	// Keys of the order indexes: the prefix of the index's filter (see
	// prefixOf), then the Row's order key.
	Order, NsOrder, PhaseOrder, NsPhaseOrder string
}

func newRecord(r *v1alpha1.Rollout) *record {
	row := newRow(Summarize(r))
	ns, phase := r.Namespace, row.Summary.Phase
	return &record{
		ID:             id(r.Namespace, r.Name),
		VirtualService: id(r.Namespace, r.Spec.VirtualService),
		Rollout:        r,
		Row:            row,
		Order:          row.order,
		NsOrder:        prefixOf(Filter{Namespace: ns}) + row.order,
		PhaseOrder:     prefixOf(Filter{Phase: phase}) + row.order,
		NsPhaseOrder:   prefixOf(Filter{Namespace: ns, Phase: phase}) + row.order,
	}
}

// orderIndex returns the order index that serves f and the prefix of f's
// keys in it.
func orderIndex(f Filter) (index, prefix string) {
	switch {
	case f.Namespace != "" && f.Phase != "":
		return indexNsPhaseOrder, prefixOf(f)
	case f.Namespace != "":
		return indexNsOrder, prefixOf(f)
	case f.Phase != "":
		return indexPhaseOrder, prefixOf(f)
	}
	return indexOrder, ""
}

// prefixOf is the key prefix of f's rows in its order index.
func prefixOf(f Filter) string {
	p := ""
	if f.Namespace != "" {
		p += f.Namespace + "\x00"
	}
	if f.Phase != "" {
		p += string(f.Phase) + "\x00"
	}
	return p
}

// orderKeyIn returns rec's key in the order index.
func (rec *record) orderKeyIn(index string) string {
	switch index {
	case indexNsOrder:
		return rec.NsOrder
	case indexPhaseOrder:
		return rec.PhaseOrder
	case indexNsPhaseOrder:
		return rec.NsPhaseOrder
	}
	return rec.Order
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		table: {
			Name: table,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:           {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				indexVS:           {Name: indexVS, Indexer: &memdb.StringFieldIndex{Field: "VirtualService"}},
				indexOrder:        {Name: indexOrder, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Order"}},
				indexNsOrder:      {Name: indexNsOrder, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "NsOrder"}},
				indexPhaseOrder:   {Name: indexPhaseOrder, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "PhaseOrder"}},
				indexNsPhaseOrder: {Name: indexNsPhaseOrder, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "NsPhaseOrder"}},
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

// Upsert stores a copy of r, replacing any earlier version, computes its
// Summary (and the Summary's JSON) once, records a new analysis tick in
// the rollout's series, and notifies subscribers. The copy drops
// metadata.managedFields, which no reader needs.
func (s *Store) Upsert(r *v1alpha1.Rollout) error {
	r = r.DeepCopy()
	r.ManagedFields = nil
	rec := newRecord(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.Txn(true)
	if cur := current(txn, rec.ID); cur != nil && cur.Live && sameVersion(cur.Rollout, r) {
		// A resync of the version whose latest tick the store already
		// shows from memory: that tick stays.
		txn.Abort()
		return nil
	}
	if err := txn.Insert(table, rec); err != nil {
		txn.Abort()
		return fmt.Errorf("read model: store Rollout %s: %w", rec.ID, err)
	}
	txn.Commit()
	s.hub.publish(Event{Type: EventUpsert, Rollout: r, Row: rec.Row, Point: s.record(r)})
	return nil
}

// Live shows r's status, the controller's latest tick kept in memory
// (rollout.LiveStatus), in place of the stored one: only while the store
// holds r at the same uid and resourceVersion, and only if the tick is
// newer than the one shown. It records the tick in the series and
// notifies subscribers, as Upsert does. The status written next, or any
// other version, replaces it.
func (s *Store) Live(r *v1alpha1.Rollout) {
	r = r.DeepCopy()
	r.ManagedFields = nil
	rec := newRecord(r)
	rec.Live = true
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.db.Txn(true)
	cur := current(txn, rec.ID)
	if cur == nil || !sameVersion(cur.Rollout, r) || !tickAfter(r, cur.Rollout) {
		txn.Abort()
		return
	}
	if err := txn.Insert(table, rec); err != nil {
		txn.Abort()
		return
	}
	txn.Commit()
	s.hub.publish(Event{Type: EventUpsert, Rollout: r, Row: rec.Row, Point: s.record(r)})
}

// current is the record of id in txn, or nil.
func current(txn *memdb.Txn, id string) *record {
	raw, err := txn.First(table, indexID, id)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*record)
}

// sameVersion says a and b are the same stored version of one Rollout.
func sameVersion(a, b *v1alpha1.Rollout) bool {
	return a.UID == b.UID && a.ResourceVersion == b.ResourceVersion
}

// tickAfter says r's latest tick is later than was's.
func tickAfter(r, was *v1alpha1.Rollout) bool {
	t, w := r.Status.Analysis.LastTickAt, was.Status.Analysis.LastTickAt
	return t != nil && (w == nil || t.After(w.Time))
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
	s.hub.publish(Event{Type: EventDelete, Rollout: raw.(*record).Rollout, Row: raw.(*record).Row})
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

// Filter selects the rows of Page and Summaries. Empty fields match
// everything.
type Filter struct {
	Namespace string
	// Phase matches the Summary's phase: status.phase, or Pending for a
	// Rollout the controller has not picked up yet.
	Phase v1alpha1.Phase
}

// Page returns the rows that match f in the list order (active rollouts
// first, then by namespace and name), starting just after the position
// after (nil: at the start), at most limit of them (limit < 1: all), and
// whether more follow. The rows are shared: they must not be modified.
//
// A position is not a snapshot: a rollout that changes between two pages
// (it ends, so it moves behind the active ones) may be seen twice or not
// at all, as with a Kubernetes list's continue token; one that stays put
// is seen exactly once.
func (s *Store) Page(f Filter, after *Cursor, limit int) (rows []*Row, more bool, err error) {
	index, prefix := orderIndex(f)
	start := prefix
	if after != nil {
		start += cursorKey(*after)
	}
	it, err := s.db.Txn(false).LowerBound(table, index, start)
	if err != nil {
		return nil, false, fmt.Errorf("read model: list Rollouts: %w", err)
	}
	rows = []*Row{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		rec := raw.(*record)
		key := rec.orderKeyIn(index)
		if !strings.HasPrefix(key, prefix) {
			break
		}
		if after != nil && key == start {
			continue // the row the cursor was made from
		}
		if limit > 0 && len(rows) == limit {
			return rows, true, nil
		}
		rows = append(rows, rec.Row)
	}
	return rows, false, nil
}

// Summaries returns every row that matches f, in the list order.
func (s *Store) Summaries(f Filter) ([]*Row, error) {
	rows, _, err := s.Page(f, nil, 0)
	return rows, err
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
