package rollout

import (
	"cmp"
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// RolloutSeries holds the series labelled by namespace and rollout
// (serin_rollout_info, _phase, _canary_weight, _step,
// _last_analysis_timestamp_seconds and serin_analysis_check_verdict) as
// a few values per rollout, and builds their metric families when
// scraped. It is a prometheus.Gatherer, not collectors in a registry:
// at a thousand rollouts these are some 50,000 series, and a registry's
// Gather sorts and checks every one of them on each scrape (0.7 s of CPU
// for 50,000) and keeps a map entry and label strings for each (about
// 30 MB). Here a scrape costs one sort of the rollouts, and the series
// exist only while it is encoded.
//
// GatherNames builds only the families asked for, so that a caller
// reading one family often (?name[]= on /metrics) costs only that one.
type RolloutSeries struct {
	mu    sync.Mutex
	byKey map[types.NamespacedName]*rolloutState
}

// rolloutState is what one rollout's series say.
type rolloutState struct {
	// observed is set once the Rollout was seen as stored: the info,
	// phase, weight and step series exist from then on.
	observed bool
	info     infoLabels
	phase    v1alpha1.Phase
	weight   float64
	step     float64
	// ticked is set while the rollout is analysed: lastTick is the time
	// of its latest tick, as a Unix time.
	ticked   bool
	lastTick float64
	// checks are the verdicts of the latest tick, sorted by key. The
	// slice is replaced, never changed in place, so that a scrape may
	// read a copy of it without the lock.
	checks []checkVerdict
}

// infoLabels are serin_rollout_info's labels besides namespace and
// rollout.
type infoLabels struct{ mode, virtualService, workload string }

// checkVerdict is one check's verdict in the latest tick.
type checkVerdict struct {
	key     checkKey
	verdict analysis.Verdict
}

func newRolloutSeries() *RolloutSeries {
	return &RolloutSeries{byKey: map[types.NamespacedName]*rolloutState{}}
}

// update calls f with the rollout's state, adding it; f runs under the
// lock.
func (s *RolloutSeries) update(ns, name string, f func(*rolloutState)) {
	key := types.NamespacedName{Namespace: ns, Name: name}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.byKey[key]
	if !ok {
		st = &rolloutState{}
		s.byKey[key] = st
	}
	f(st)
}

// forget drops every series of a rollout.
func (s *RolloutSeries) forget(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byKey, types.NamespacedName{Namespace: ns, Name: name})
}

// sortedChecks returns the verdicts of res's checks, one per key (the
// last one wins, as a map would have it), sorted by key.
func sortedChecks(res analysis.Result) []checkVerdict {
	out := make([]checkVerdict, 0, len(res.Checks))
	for _, c := range res.Checks {
		out = append(out, checkVerdict{checkKey{c.Check, c.Hop, c.Source}, c.Verdict})
	}
	slices.SortStableFunc(out, func(a, b checkVerdict) int { return compareCheckKeys(a.key, b.key) })
	// Keep the last of equal keys.
	w := 0
	for i := range out {
		if i+1 < len(out) && out[i+1].key == out[i].key {
			continue
		}
		out[w] = out[i]
		w++
	}
	return out[:w]
}

func compareCheckKeys(a, b checkKey) int {
	return cmp.Or(cmp.Compare(a.check, b.check), cmp.Compare(a.hop, b.hop), cmp.Compare(a.source, b.source))
}

// The families RolloutSeries builds, with their help texts, sorted by
// name as a registry's Gather sorts them.
const (
	verdictFamily  = "serin_analysis_check_verdict"
	weightFamily   = "serin_rollout_canary_weight"
	infoFamily     = "serin_rollout_info"
	lastTickFamily = "serin_rollout_last_analysis_timestamp_seconds"
	phaseFamily    = "serin_rollout_phase"
	stepFamily     = "serin_rollout_step"
)

var seriesHelp = map[string]string{
	verdictFamily:  "1 for the verdict of each check in a rollout's latest analysis tick, 0 for the other verdicts; gone with the check, the Rollout, or the end of the rollout unless it rolled back.",
	weightFamily:   "The canary weight, in percent, last confirmed on each Rollout's route.",
	infoFamily:     "Always 1: what each Rollout shifts (mode subset, host or workload; its VirtualService; the delivered Deployment, if any).",
	lastTickFamily: "When each rollout in progress was last analysed, as a Unix time.",
	phaseFamily:    "1 for each Rollout's current phase, 0 for every other phase (kube-state-metrics' convention).",
	stepFamily:     "The index into spec.steps of each Rollout's current step; -1 before the first.",
}

var seriesFamilies = []string{verdictFamily, weightFamily, infoFamily, lastTickFamily, phaseFamily, stepFamily}

// Label names, shared by every label pair built; a pair's name is only
// read.
var (
	lnCheck, lnHop, lnMode, lnNamespace, lnPhase = "check", "hop", "mode", "namespace", "phase"
	lnRollout, lnSource, lnVerdict, lnVS, lnWL   = "rollout", "source", "verdict", "virtual_service", "workload"
)

// Gather builds every family; it satisfies prometheus.Gatherer.
func (s *RolloutSeries) Gather() ([]*dto.MetricFamily, error) { return s.GatherNames(nil), nil }

// GatherNames builds the families named, or all of them for none; a
// family without series is left out, as a registry leaves it out. Within
// a family the series are sorted by namespace, rollout, then the other
// labels.
func (s *RolloutSeries) GatherNames(names []string) []*dto.MetricFamily {
	want := seriesFamilies
	if len(names) > 0 {
		want = nil
		for _, f := range seriesFamilies {
			if slices.Contains(names, f) {
				want = append(want, f)
			}
		}
		if len(want) == 0 {
			return nil
		}
	}
	type entry struct {
		key types.NamespacedName
		st  rolloutState
	}
	s.mu.Lock()
	entries := make([]entry, 0, len(s.byKey))
	for k, st := range s.byKey {
		entries = append(entries, entry{k, *st}) // checks is never changed in place
	}
	s.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].key, entries[j].key
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})

	fams := make([]*dto.MetricFamily, 0, len(want))
	for _, name := range want {
		help := seriesHelp[name]
		fam := &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum()}
		for i := range entries {
			e := &entries[i]
			ns, ro := pair(&lnNamespace, e.key.Namespace), pair(&lnRollout, e.key.Name)
			st := &e.st
			switch name {
			case verdictFamily:
				for _, c := range st.checks {
					check, hop, source := pair(&lnCheck, c.key.check), pair(&lnHop, c.key.hop), pair(&lnSource, c.key.source)
					for _, v := range allVerdicts {
						fam.Metric = append(fam.Metric, gaugeOf(b2f(v == c.verdict), check, hop, ns, ro, source, pair(&lnVerdict, string(v))))
					}
				}
			case weightFamily:
				if st.observed {
					fam.Metric = append(fam.Metric, gaugeOf(st.weight, ns, ro))
				}
			case infoFamily:
				if st.observed {
					fam.Metric = append(fam.Metric, gaugeOf(1, pair(&lnMode, st.info.mode), ns, ro,
						pair(&lnVS, st.info.virtualService), pair(&lnWL, st.info.workload)))
				}
			case lastTickFamily:
				if st.ticked {
					fam.Metric = append(fam.Metric, gaugeOf(st.lastTick, ns, ro))
				}
			case phaseFamily:
				if st.observed {
					for _, p := range allPhases {
						fam.Metric = append(fam.Metric, gaugeOf(b2f(p == st.phase), ns, pair(&lnPhase, string(p)), ro))
					}
				}
			case stepFamily:
				if st.observed {
					fam.Metric = append(fam.Metric, gaugeOf(st.step, ns, ro))
				}
			}
		}
		if len(fam.Metric) > 0 {
			fams = append(fams, fam)
		}
	}
	return fams
}

// pair is a label pair; its name is shared, never written.
func pair(name *string, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: name, Value: &value}
}

// gaugeOf is a gauge sample with labels sorted by name.
func gaugeOf(v float64, labels ...*dto.LabelPair) *dto.Metric {
	return &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: &v}}
}

var _ prometheus.Gatherer = (*RolloutSeries)(nil)
