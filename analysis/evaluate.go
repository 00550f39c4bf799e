package analysis

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/serin-dev/serin/analysis/sequential"
)

// displayAlpha is the level of the intervals shown to people: each side's
// 95% confidence sequence.
const displayAlpha = 0.05

// maxEvidence caps the e-values shown: past it, more digits say nothing.
const maxEvidence = 1e12

// Evaluate judges a tick's measurements. It is pure. A check fails when its
// sequential test has rejected (its evidence reached 1/α_k) and the effect
// is larger than the limit tolerates; it passes when both sides have their
// minimum sample and it has not failed; it is inconclusive otherwise. The
// rollout's verdict is Fail when any acting check fails, else Inconclusive
// when any acting check is inconclusive or none passed, else Pass. DryRun
// checks are judged and reported but never change the verdict.
func Evaluate(ms []Measurement, cfg Config) Result {
	res := Result{Verdict: Pass}
	var fails, inconc []CheckResult
	passed := 0
	for _, m := range ms {
		cr := judge(m, cfg)
		res.Checks = append(res.Checks, cr)
		if cr.StableAboveLimit && !cr.DryRun {
			res.StableAboveSLO = true
		}
		if cr.DryRun {
			continue
		}
		switch cr.Verdict {
		case Fail:
			fails = append(fails, cr)
		case Inconclusive:
			inconc = append(inconc, cr)
			res.NoData = res.NoData || cr.NoData
		case Pass:
			passed++
		}
	}
	switch {
	case len(fails) > 0:
		res.Verdict, res.Reason = Fail, joinReasons(fails)
	case len(inconc) > 0:
		res.Verdict, res.Reason = Inconclusive, joinReasons(inconc)
	case passed == 0:
		res.Verdict, res.Reason, res.NoData = Inconclusive, "no check could be evaluated", true
	default:
		res.Reason = fmt.Sprintf("all %d checks passed", passed)
	}
	return res
}

func joinReasons(crs []CheckResult) string {
	parts := make([]string, len(crs))
	for i, c := range crs {
		parts[i] = c.Reason
	}
	return strings.Join(parts, "; ")
}

func judge(m Measurement, cfg Config) CheckResult {
	cr := CheckResult{Check: m.Check, Kind: m.Kind, Hop: m.Hop, Source: m.Source, DryRun: m.Limit.DryRun || m.Custom.DryRun,
		TraceID: m.TraceID, CanaryRequests: m.Pair.Canary.Requests, StableRequests: m.Pair.Stable.Requests,
		Evidence: math.Min(finiteOr(m.Evidence, maxEvidence), maxEvidence)}
	if m.Alpha > 0 {
		cr.Threshold = 1 / m.Alpha
	}
	if m.EvidenceAt >= 0 && m.Alpha > 0 {
		cr.EvidenceAtSeconds = math.Max(m.EvidenceAt.Seconds(), 0.001)
	}
	where := describe(m)
	if m.Err != nil {
		cr.Verdict, cr.NoData = Inconclusive, true
		switch {
		case errors.Is(m.Err, ErrNotJudged):
			cr.Verdict, cr.NoData = Skipped, false
			cr.Reason = fmt.Sprintf("%s: not judged (%v)", where, m.Err)
		case errors.Is(m.Err, ErrUnavailable):
			cr.Reason = fmt.Sprintf("%s: %s data source unavailable (%v)", where, m.Source, m.Err)
		default:
			cr.Reason = fmt.Sprintf("%s: no data (%v)", where, m.Err)
		}
		return cr
	}
	switch m.Kind {
	case KindCustom:
		return judgeCustom(cr, m, where)
	case KindErrorRate:
		return judgeErrorRate(cr, m, cfg, where)
	case KindLatency:
		return judgeLatency(cr, m, cfg, where)
	case KindCallRate:
		return judgeCallRate(cr, m, cfg, where)
	default:
		return judgeSLO(cr, m, cfg, where)
	}
}

func describe(m Measurement) string {
	s := m.Check
	if m.Hop != "" {
		s += " on " + m.Hop
	} else if m.Kind != KindCustom {
		s += " (inbound)"
	}
	if m.Source == "jaeger" {
		s += " from traces"
	}
	return s
}

// sample checks that both sides (or only the canary, for an absolute
// limit) have a sample worth judging a pass on. A hop the canary rarely
// calls is Skipped; a side with no data at all marks the result NoData,
// which is what the inconclusive limit bounds; a sample still growing only
// waits. A failure needs no minimum sample: the sequential test decides
// when the evidence suffices.
func sample(cr *CheckResult, m Measurement, cfg Config, where string, needStable bool) bool {
	c, s := m.Pair.Canary.Requests, m.Pair.Stable.Requests
	need := cfg.MinRequests
	switch {
	case c >= need && (!needStable || s >= need):
		return true
	case m.Hop != "":
		cr.Verdict = Skipped
		if c >= need {
			cr.Reason = fmt.Sprintf("%s: stable made only %.0f of these calls, need %.0f to compare", where, s, need)
			return false
		}
	default:
		cr.Verdict = Inconclusive
		cr.NoData = c == 0 || (needStable && s == 0)
	}
	if needStable {
		cr.Reason = fmt.Sprintf("%s: %.0f canary and %.0f stable requests so far, need %.0f of each", where, c, s, need)
	} else {
		cr.Reason = fmt.Sprintf("%s: %.0f canary requests so far, need %.0f", where, c, need)
	}
	return false
}

// both reports whether each side has some traffic to estimate from; when
// not, cr says why through sample.
func both(cr *CheckResult, m Measurement, cfg Config, where string) bool {
	if m.Pair.Canary.Requests > 0 && m.Pair.Stable.Requests > 0 {
		return true
	}
	sample(cr, m, cfg, where, true)
	return false
}

// rejected reports whether the sequential test has rejected.
func rejected(m Measurement) bool { return m.EvidenceAt >= 0 && m.Alpha > 0 }

// evidence describes the test's state for people.
func evidence(m Measurement) string {
	if rejected(m) {
		return fmt.Sprintf("evidence 1/α reached at %s", seconds(m.EvidenceAt))
	}
	return fmt.Sprintf("evidence %s of the %s needed", sig3(math.Min(finiteOr(m.Evidence, maxEvidence), maxEvidence)), sig3(1/m.Alpha))
}

func judgeErrorRate(cr CheckResult, m Measurement, cfg Config, where string) CheckResult {
	cr.Unit = "%"
	if !both(&cr, m, cfg, where) {
		return cr
	}
	c, s := m.Pair.Canary, m.Pair.Stable
	ci, si := sequential.ProportionInterval(c.Errors, c.Requests, displayAlpha), sequential.ProportionInterval(s.Errors, s.Requests, displayAlpha)
	pc, ps := c.Errors/c.Requests, s.Errors/s.Requests
	limit := m.Limit.relative(ps)
	cr.Canary, cr.CanaryLow, cr.CanaryHigh = 100*pc, 100*ci.Low, 100*ci.High
	cr.Stable, cr.StableLow, cr.StableHigh = 100*ps, 100*si.Low, 100*si.High
	cr.Limit = 100 * limit
	vs := fmt.Sprintf("error rate canary %s [%s–%s] vs stable %s [%s–%s]",
		pctOf(pc), sig3(100*ci.Low), pctOf(ci.High), pctOf(ps), sig3(100*si.Low), pctOf(si.High))
	return decide(cr, m, cfg, where, vs, pc > limit, fmt.Sprintf("within the %s tolerated", pctOf(limit)))
}

func judgeLatency(cr CheckResult, m Measurement, cfg Config, where string) CheckResult {
	cr.Unit = "ms"
	if !both(&cr, m, cfg, where) {
		return cr
	}
	c, s := m.Pair.Canary.p99(), m.Pair.Stable.p99()
	cr.Canary, cr.Stable = zeroNaN(c), zeroNaN(s)
	limit := m.Limit.relative(s)
	cr.Limit = zeroNaN(limit)
	ivc, ivs := m.Pair.Canary.p99Interval(), m.Pair.Stable.p99Interval()
	cr.CanaryLow, cr.CanaryHigh, cr.StableLow, cr.StableHigh = ivc.Low, zeroNaN(ivc.High), ivs.Low, zeroNaN(ivs.High)
	vs := fmt.Sprintf("p99 canary %s [%s–%s] vs stable %s [%s–%s]",
		msOf(c), sig3(ivc.Low), msOf(ivc.High), msOf(s), sig3(ivs.Low), msOf(ivs.High))
	return decide(cr, m, cfg, where, vs, c > limit, "within the "+msOf(limit)+" tolerated")
}

func judgeCallRate(cr CheckResult, m Measurement, cfg Config, where string) CheckResult {
	cr.Unit = "calls/req"
	if !both(&cr, m, cfg, where) {
		return cr
	}
	in := m.Inbound
	if in.Canary.Requests <= 0 || in.Stable.Requests <= 0 {
		cr.Verdict, cr.Reason = Skipped, where+": no inbound requests to count calls against yet"
		return cr
	}
	rc, rs := m.Pair.Canary.Requests/in.Canary.Requests, m.Pair.Stable.Requests/in.Stable.Requests
	cr.Canary, cr.Stable = rc, rs
	limit := m.Limit.Factor * rs
	cr.Limit = limit
	// The interval of the canary's share of the calls, turned into calls
	// per request with stable's rate and the inbound split held fixed.
	iv := sequential.ProportionInterval(m.Pair.Canary.Requests, m.Pair.Canary.Requests+m.Pair.Stable.Requests, displayAlpha)
	toRate := func(th float64) float64 {
		if th >= 1 {
			return math.Inf(1)
		}
		return th / (1 - th) * m.Pair.Stable.Requests / in.Canary.Requests
	}
	cr.CanaryLow, cr.CanaryHigh = finiteOr(toRate(iv.Low), 0), finiteOr(toRate(iv.High), 0)
	vs := fmt.Sprintf("%s calls per request [%s–%s] vs %s on stable (×%s)",
		sig3(rc), sig3(cr.CanaryLow), sig3(cr.CanaryHigh), sig3(rs), sig3(rc/rs))
	return decide(cr, m, cfg, where, vs, rc > limit, fmt.Sprintf("within the ×%s tolerated", sig3(m.Limit.Factor)))
}

// decide turns a comparison's evidence into a verdict: Fail only when the
// test has rejected and the estimate is over the limit; Pass once both
// sides have their minimum sample.
func decide(cr CheckResult, m Measurement, cfg Config, where, vs string, over bool, within string) CheckResult {
	switch {
	case rejected(m) && over:
		cr.Verdict, cr.Reason = Fail, fmt.Sprintf("%s failed: %s, %s", where, vs, evidence(m))
	case !sample(&cr, m, cfg, where, true):
	case rejected(m):
		cr.Verdict, cr.Reason = Pass, fmt.Sprintf("%s: %s, worse but %s", where, vs, within)
	default:
		cr.Verdict, cr.Reason = Pass, fmt.Sprintf("%s: %s, %s", where, vs, evidence(m))
	}
	return cr
}

// judgeSLO holds the canary to an absolute limit. When stable is above the
// same limit, the canary is not to blame: the result says so, and the
// rollout's policy for it applies (Result.StableAboveSLO).
func judgeSLO(cr CheckResult, m Measurement, cfg Config, where string) CheckResult {
	if !sample(&cr, m, cfg, where, false) {
		return cr
	}
	c, s := m.Pair.Canary, m.Pair.Stable
	var cv, sv, limit float64
	var vs, sloName string
	var over, stableOver bool
	if m.Kind == KindErrorSLO {
		cr.Unit = "%"
		ci, si := sequential.ProportionInterval(c.Errors, c.Requests, displayAlpha), sequential.ProportionInterval(s.Errors, s.Requests, displayAlpha)
		cv, sv, limit = c.Errors/c.Requests, zeroNaN(s.ErrorRate()), m.Limit.Max
		cr.Canary, cr.CanaryLow, cr.CanaryHigh = 100*cv, 100*ci.Low, 100*ci.High
		cr.Stable, cr.StableLow, cr.StableHigh = 100*sv, 100*si.Low, 100*si.High
		cr.Limit = 100 * limit
		vs = fmt.Sprintf("canary %s [%s–%s]", pctOf(cv), sig3(100*ci.Low), pctOf(ci.High))
		over, stableOver = cv > limit, s.Requests >= cfg.MinRequests && sv > limit
		sloName = pctOf(limit) + " SLO"
		if stableOver {
			sloName += fmt.Sprintf(": %s [%s–%s]", pctOf(sv), sig3(100*si.Low), pctOf(si.High))
		}
	} else {
		cr.Unit = "ms"
		cv, sv, limit = m.Pair.Canary.p99(), m.Pair.Stable.p99(), m.Limit.Max
		cr.Canary, cr.Stable, cr.Limit = zeroNaN(cv), zeroNaN(sv), limit
		ivc := m.Pair.Canary.p99Interval()
		cr.CanaryLow, cr.CanaryHigh = ivc.Low, zeroNaN(ivc.High)
		vs = fmt.Sprintf("canary p99 %s [%s–%s]", msOf(cv), sig3(ivc.Low), msOf(ivc.High))
		over, stableOver = cv > limit, s.Requests >= cfg.MinRequests && sv > limit
		sloName = msOf(limit) + " SLO"
		if stableOver {
			sloName += ": p99 " + msOf(sv)
		}
	}
	stableRejected := m.Alpha > 0 && m.StableEvidence >= 1/m.Alpha
	switch {
	case rejected(m) && over && (stableRejected || stableOver):
		cr.Verdict, cr.StableAboveLimit = Inconclusive, true
		cr.Reason = fmt.Sprintf("%s: %s is above the %s, but stable is also above the %s", where, vs, limitName(m), sloName)
	case rejected(m) && over:
		cr.Verdict = Fail
		cr.Reason = fmt.Sprintf("%s failed: %s is above the %s, %s", where, vs, sloName, evidence(m))
	case stableRejected:
		cr.Verdict, cr.StableAboveLimit = Pass, true
		cr.Reason = fmt.Sprintf("%s: %s; stable is above the %s", where, vs, sloName)
	default:
		cr.Verdict = Pass
		cr.Reason = fmt.Sprintf("%s: %s within the %s, %s", where, vs, sloName, evidence(m))
	}
	return cr
}

func limitName(m Measurement) string {
	if m.Kind == KindErrorSLO {
		return pctOf(m.Limit.Max) + " SLO"
	}
	return msOf(m.Limit.Max) + " SLO"
}

// p99 is the 99th percentile of a side's buckets, interpolated inside
// the bucket that holds it as histogram_quantile does; NaN without
// buckets. It is a displayed figure: the tests use the bucket counts.
func (s Stats) p99() float64 {
	if len(s.Buckets) == 0 || s.histTotal() <= 0 {
		return s.P99Ms
	}
	return bucketQuantile(0.99, s.Buckets, s.histTotal())
}

// p99Interval is a 95% interval for the p99 at the histogram's
// resolution: the bounds between which the share of slower requests is
// compatible with 1%. The share above a bound falls as the bound grows, so
// each end is found by binary search over the buckets.
func (s Stats) p99Interval() sequential.Interval {
	bs := s.Buckets
	for len(bs) > 0 && math.IsInf(bs[len(bs)-1].UpperMs, 1) {
		bs = bs[:len(bs)-1]
	}
	total := s.histTotal()
	above := func(i int) sequential.Interval {
		return sequential.ProportionInterval(total-bs[i].Count, total, displayAlpha)
	}
	iv := sequential.Interval{Low: 0, High: math.NaN()}
	// Certainly more than 1% slower than every bound below lo.
	if lo := sort.Search(len(bs), func(i int) bool { return above(i).Low <= slowShare }); lo > 0 {
		iv.Low = bs[lo-1].UpperMs
	}
	if hi := sort.Search(len(bs), func(i int) bool { return above(i).High < slowShare }); hi < len(bs) {
		iv.High = bs[hi].UpperMs
	}
	return iv
}

// bucketQuantile interpolates the q-quantile in cumulative buckets.
func bucketQuantile(q float64, bs []Bucket, total float64) float64 {
	rank := q * total
	prevUpper, prevCount := 0.0, 0.0
	for _, b := range bs {
		if b.Count >= rank {
			if math.IsInf(b.UpperMs, 1) {
				return prevUpper
			}
			if b.Count == prevCount {
				return b.UpperMs
			}
			return prevUpper + (b.UpperMs-prevUpper)*(rank-prevCount)/(b.Count-prevCount)
		}
		prevUpper, prevCount = b.UpperMs, b.Count
	}
	return prevUpper
}

// relative is the limit relative to stable's value: Factor × stable +
// Slack, or +Inf when stable's value is unknown (then only the absolute
// check can judge).
func (l Limit) relative(stable float64) float64 {
	if math.IsNaN(stable) || l.Factor <= 0 {
		return math.Inf(1)
	}
	return l.Factor*stable + l.Slack
}

func finiteOr(v, or float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	if math.IsInf(v, 0) {
		return or
	}
	return v
}

func seconds(d time.Duration) string { return sig3(d.Seconds()) + " s" }

func pctOf(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return sig3(100*v) + "%"
}

func msOf(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return sig3(v) + " ms"
}
