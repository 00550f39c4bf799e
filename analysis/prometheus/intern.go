package prometheus

import (
	"bytes"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
)

// labelSets shares the label sets of the shared answers between answers.
// The same series come back in every answer of a shared query, and the
// cache holds several answers at once (the newest, the one being replaced,
// the ones baselines were read from); decoded apart, each answer would
// hold its own map and strings for every series: hundreds of megabytes
// with a thousand services' latency buckets. The decoder (decodeVector)
// looks each series up by a hash of its labels as they arrived, packed or
// not, and checks the set found against them without allocating, so that
// the sets held cost no key strings; only a series not held yet is built.
//
// It keeps two generations: once the current one holds max sets it
// becomes the previous one and a new one starts, so a series that is gone
// is forgotten after two turns and the memory stays bounded.
type labelSets struct {
	mu        sync.Mutex
	max       int
	seed      maphash.Seed
	cur, prev map[uint64]labelSet
}

// labelSet is the labels of one series, sorted by name. A series has a
// handful of labels, found as fast by a scan as by a map's hash, in less
// than half a map's memory; the label sets held for a thousand services'
// answers were the largest part of the controller's heap as maps.
type labelSet []labelPair

type labelPair struct {
	name  model.LabelName
	value model.LabelValue
}

// get returns the value of name, "" when the series has no such label.
func (l labelSet) get(name model.LabelName) model.LabelValue {
	v, _ := l.lookup(name)
	return v
}

// lookup returns the value of name and whether the series has it.
func (l labelSet) lookup(name model.LabelName) (model.LabelValue, bool) {
	for _, p := range l {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

// metric returns the labels as a model.Metric, for messages and tests.
func (l labelSet) metric() model.Metric {
	m := make(model.Metric, len(l))
	for _, p := range l {
		m[p.name] = p.value
	}
	return m
}

// maxLabelSets bounds one generation of labelSets: four shared queries of
// a thousand services, with twenty latency buckets each for two versions.
const maxLabelSets = 200_000

func newLabelSets(max int) *labelSets {
	return &labelSets{max: max, seed: maphash.MakeSeed(), cur: map[uint64]labelSet{}}
}

// of returns the label set of a series whose labels arrived as pairs: a
// set held already when there is one, otherwise a new one, held from now
// on. With names (a packed answer, see pack), the value of packLabel
// becomes the labels names, in order, and the other labels (le) stay; a
// label whose value is empty is left out, as Prometheus leaves out a
// label a series does not have. A pair whose name repeats keeps its last
// value, as a JSON decoder would.
func (ls *labelSets) of(pairs []rawPair, names []model.LabelName) labelSet {
	var h maphash.Hash
	h.SetSeed(ls.seed)
	h.WriteByte(byte(len(names)))
	for _, p := range pairs {
		h.Write(p.name)
		h.WriteByte(0xff)
		h.Write(p.value)
		h.WriteByte(0xff)
	}
	key := h.Sum64()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if m, ok := ls.cur[key]; ok && holds(m, pairs, names) {
		return m
	}
	m, ok := ls.prev[key]
	if !ok || !holds(m, pairs, names) {
		m = build(pairs, names)
	}
	if len(ls.cur) >= ls.max {
		ls.prev, ls.cur = ls.cur, make(map[uint64]labelSet, len(ls.cur))
	}
	ls.cur[key] = m
	return m
}

// build makes the label set of pairs (see labelSets.of).
func build(pairs []rawPair, names []model.LabelName) labelSet {
	m := make(model.Metric, len(pairs)+len(names))
	for _, p := range pairs {
		if names != nil && string(p.name) == packLabel {
			continue
		}
		m[model.LabelName(p.name)] = model.LabelValue(p.value)
	}
	if packed, ok := lastValue(pairs, packLabel); ok && names != nil {
		for j, v := range strings.SplitN(packed, packSep, len(names)) {
			if v != "" {
				m[names[j]] = model.LabelValue(v)
			} else {
				delete(m, names[j])
			}
		}
	}
	out := make(labelSet, 0, len(m))
	for name, v := range m {
		out = append(out, labelPair{name, v})
	}
	slices.SortFunc(out, func(a, b labelPair) int { return strings.Compare(string(a.name), string(b.name)) })
	return out
}

// lastValue returns the last value of the label name among pairs.
func lastValue(pairs []rawPair, name string) (string, bool) {
	for i := len(pairs) - 1; i >= 0; i-- {
		if string(pairs[i].name) == name {
			return string(pairs[i].value), true
		}
	}
	return "", false
}

// holds reports whether m is the label set of pairs, without allocating.
// What Prometheus never sends (a label twice, a plain label that a
// packed one would set) is never held, and is built anew each time.
func holds(m labelSet, pairs []rawPair, names []model.LabelName) bool {
	n := 0 // the labels of m that pairs account for
	for _, p := range pairs {
		if names == nil || string(p.name) != packLabel {
			if names != nil && slices.Contains(names, model.LabelName(p.name)) {
				return false
			}
			if v, ok := m.lookup(model.LabelName(p.name)); !ok || string(v) != string(p.value) {
				return false
			}
			n++
			continue
		}
		// As strings.SplitN(value, packSep, len(names)) would split it.
		rest, done := p.value, false
		for j, name := range names {
			var v []byte
			switch {
			case done: // fewer parts than names: the rest are absent
			case j == len(names)-1:
				v = rest
			default:
				var found bool
				v, rest, found = bytes.Cut(rest, []byte(packSep))
				done = !found
			}
			got, ok := m.lookup(name)
			if string(got) != string(v) || ok != (len(v) > 0) {
				return false
			}
			if ok {
				n++
			}
		}
	}
	return len(m) == n
}
