package prometheus

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/common/model"
)

// table is the answer of one shared query: its samples and, built on
// first use and then shared by every rollout that reads the same answer,
// an index of them by the value of a label. A shared answer holds every
// workload of the namespaces under analysis (tens of thousands of series
// with a thousand rollouts); scanning it once per rollout would make a
// round of ticks cost N² label comparisons. Through the index each rollout
// reads the series of its own service only.
type table struct {
	rows []sample
	at   time.Time // the evaluation time of the answer

	// by holds an index for each of selective, built once, on first
	// use; once built it is read without a lock, by every analysis at
	// once (a single lock had dozens of them queued behind each other).
	by []lazyIndex
}

// lazyIndex is the index of a table by one label.
type lazyIndex struct {
	once sync.Once
	by   map[model.LabelValue][]sample
}

// newTable wraps the samples of one answer. It indexes nothing yet.
func newTable(rows []sample) *table { return &table{rows: rows, by: make([]lazyIndex, len(selective))} }

// all returns every sample of the answer; nil for a nil table.
func (t *table) all() []sample {
	if t == nil {
		return nil
	}
	return t.rows
}

// where returns the samples whose label name has exactly value, building
// the index on name the first time it is asked for; a name that is not
// one of selective is not indexed, and its samples are looked for one by
// one. The answer is shared: the caller must not change it.
func (t *table) where(name model.LabelName, value string) []sample {
	if t == nil {
		return nil
	}
	i := slices.Index(selective, name)
	if i < 0 {
		var out []sample
		for _, s := range t.rows {
			if string(s.labels.get(name)) == value {
				out = append(out, s)
			}
		}
		return out
	}
	idx := &t.by[i]
	idx.once.Do(func() {
		idx.by = map[model.LabelValue][]sample{}
		for _, s := range t.rows {
			v := s.labels.get(name)
			idx.by[v] = append(idx.by[v], s)
		}
	})
	return idx.by[model.LabelValue(value)]
}

// selective are the labels worth indexing, most selective first: each
// names one service or workload, and every matcher serin builds names at
// least one of them.
var selective = []model.LabelName{
	"destination_service", "destination_service_name", "destination_canonical_service", "destination_workload",
	"source_canonical_service", "source_workload",
}

// candidates returns the samples that may match m: those that have the
// value of the most selective label m names, or every sample when m names
// none of them (a hand-written match on other labels). The caller still
// tests each candidate against all of m.
func (t *table) candidates(m map[string]string) []sample {
	for _, name := range selective {
		if v, ok := m[string(name)]; ok {
			return t.where(name, v)
		}
	}
	return t.all()
}
