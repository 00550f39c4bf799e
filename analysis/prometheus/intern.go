package prometheus

import (
	"strings"
	"sync"

	"github.com/prometheus/common/model"
)

// labelSets shares the label sets of the shared answers between answers.
// The same series come back in every answer of a shared query, and the
// cache holds several answers at once (the newest, the one being replaced,
// the ones baselines were read from); decoded apart, each answer would
// hold its own map and strings for every series: hundreds of megabytes
// with a thousand services' latency buckets. A label set already held is
// used in place of the newly decoded one, which is then garbage.
//
// It keeps two generations: once the current one holds max sets it
// becomes the previous one and a new one starts, so a series that is gone
// is forgotten after two turns and the memory stays bounded.
type labelSets struct {
	mu        sync.Mutex
	max       int
	cur, prev map[model.Fingerprint]model.Metric
	// packed holds the label sets of packed answers by their packed
	// value and the labels besides it, in two generations too.
	packed, packedPrev map[model.Fingerprint]model.Metric
}

// maxLabelSets bounds one generation of labelSets: four shared queries of
// a thousand services, with twenty latency buckets each for two versions.
const maxLabelSets = 200_000

func newLabelSets(max int) *labelSets {
	return &labelSets{max: max, cur: map[model.Fingerprint]model.Metric{}, packed: map[model.Fingerprint]model.Metric{}}
}

// share replaces each sample's labels with an equal set already held,
// and holds the ones not seen before.
func (ls *labelSets) share(samples []sample) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for i := range samples {
		m := samples[i].labels
		fp := m.Fingerprint()
		if old, ok := ls.cur[fp]; ok && old.Equal(m) {
			samples[i].labels = old
			continue
		}
		if old, ok := ls.prev[fp]; ok && old.Equal(m) {
			m = old
			samples[i].labels = old
		}
		if len(ls.cur) >= ls.max {
			ls.prev, ls.cur = ls.cur, make(map[model.Fingerprint]model.Metric, len(ls.cur))
		}
		ls.cur[fp] = m
	}
}

// unpack restores the labels of a packed answer (see pack): each sample's
// packLabel becomes the labels names, in order, and the other labels (le)
// stay. A label whose value is empty is left out, as Prometheus leaves
// out a label a series does not have. A set already held is shared: it is
// found by the fingerprint of the packed labels and checked against them,
// so that the sets held cost no key strings. A sample without packLabel
// is left as it is.
func (ls *labelSets) unpack(samples []sample, names []model.LabelName) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for i := range samples {
		m := samples[i].labels
		packed, ok := m[packLabel]
		if !ok {
			continue
		}
		fp := m.Fingerprint()
		if old, ok := ls.packed[fp]; ok && unpacks(old, m, names) {
			samples[i].labels = old
			continue
		}
		out, ok := ls.packedPrev[fp]
		if !ok || !unpacks(out, m, names) {
			out = make(model.Metric, len(m)-1+len(names))
			for name, v := range m {
				if name != packLabel {
					out[name] = v
				}
			}
			for j, v := range strings.SplitN(string(packed), packSep, len(names)) {
				if v != "" {
					out[names[j]] = model.LabelValue(v)
				}
			}
		}
		if len(ls.packed) >= ls.max {
			ls.packedPrev, ls.packed = ls.packed, make(map[model.Fingerprint]model.Metric, len(ls.packed))
		}
		ls.packed[fp] = out
		samples[i].labels = out
	}
}

// unpacks reports whether out is what the packed labels m unpack to,
// without allocating.
func unpacks(out, m model.Metric, names []model.LabelName) bool {
	rest := string(m[packLabel])
	n := len(m) - 1 // the labels besides packLabel
	for j, name := range names {
		v := rest
		if j < len(names)-1 {
			var found bool
			if v, rest, found = strings.Cut(rest, packSep); !found {
				return false
			}
		}
		got, ok := out[name]
		if string(got) != v || ok != (v != "") {
			return false
		}
		if ok {
			n++
		}
	}
	if len(out) != n {
		return false
	}
	for name, v := range m {
		if name != packLabel && out[name] != v {
			return false
		}
	}
	return true
}
