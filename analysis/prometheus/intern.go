package prometheus

import (
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
}

// maxLabelSets bounds one generation of labelSets: four shared queries of
// a thousand services, with twenty latency buckets each for two versions.
const maxLabelSets = 200_000

func newLabelSets(max int) *labelSets {
	return &labelSets{max: max, cur: map[model.Fingerprint]model.Metric{}}
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
