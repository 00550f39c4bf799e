package meshsim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// ParseErrorRates reads background error rates written as
// "service/version=rate" pairs separated by commas, for example
// "checkout/v1=0.005,checkout/v2=0.005", into the map that
// Options.BackgroundErrorRate takes. A rate is a fraction in [0,1]. The
// empty string is no rates. It returns an error naming the first pair that
// does not parse, or a key given twice; whether the workloads exist is
// checked by Start.
func ParseErrorRates(s string) (map[string]float64, error) {
	out := map[string]float64{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		key, val, ok := strings.Cut(pair, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" || val == "" {
			return nil, fmt.Errorf("error rate %q: want service/version=rate, e.g. checkout/v1=0.005", pair)
		}
		if _, _, ok := splitWorkloadKey(key); !ok {
			return nil, fmt.Errorf("error rate %q: %q is not service/version", pair, key)
		}
		rate, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("error rate %q: %w", pair, err)
		}
		if !validRate(rate) {
			return nil, fmt.Errorf("error rate %q: %v is not a fraction in [0,1]", pair, rate)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("error rate %q: %s is given twice", pair, key)
		}
		out[key] = rate
	}
	return out, nil
}

// backgroundRates checks the Options.BackgroundErrorRate m against the
// workloads of cat and returns the rates by workload name, leaving out
// zeros. A key that names no workload is refused with ErrUnknownWorkload, a
// rate outside [0,1] with ErrInvalidFault.
func backgroundRates(cat *catalog, m map[string]float64) (map[string]float64, error) {
	out := map[string]float64{}
	for _, key := range slices.Sorted(maps.Keys(m)) { // the first bad key is always the same one
		rate := m[key]
		service, version, ok := splitWorkloadKey(key)
		if !ok {
			return nil, fmt.Errorf("background error rate for %q: %w: want service/version", key, ErrUnknownWorkload)
		}
		w, err := cat.workloadFor(service, version)
		if err != nil {
			return nil, fmt.Errorf("background error rate for %q: %w: %w", key, ErrUnknownWorkload, err)
		}
		if !validRate(rate) {
			return nil, fmt.Errorf("background error rate for %q: %w: %v is not in [0,1]", key, ErrInvalidFault, rate)
		}
		if rate > 0 {
			out[w.name()] = rate
		}
	}
	return out, nil
}

// splitWorkloadKey splits "service/version", the key of Faults and of
// Options.BackgroundErrorRate.
func splitWorkloadKey(key string) (service, version string, ok bool) {
	service, version, ok = strings.Cut(key, "/")
	if !ok || service == "" || version == "" || strings.Contains(version, "/") {
		return "", "", false
	}
	return service, version, true
}

// validRate reports whether r is a probability: in [0,1] and not NaN.
func validRate(r float64) bool { return r >= 0 && r <= 1 }
