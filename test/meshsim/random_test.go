package meshsim

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests check the statistics of the seeded draws without any server.
// Each picks a random seed and logs it, so that a failure can be replayed.

// testSeed returns a random seed and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := randomSeed()
	t.Logf("seed %d", seed)
	return seed
}

// windowCounts counts, over windows of size requests each, how many fail.
func windowCounts(windows, size int, fails func() bool) []float64 {
	out := make([]float64, windows)
	for i := range out {
		for range size {
			if fails() {
				out[i]++
			}
		}
	}
	return out
}

// meanSD returns the mean and the sample standard deviation of xs.
func meanSD(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}

func TestErrorDrawsHaveBinomialSpread(t *testing.T) {
	const (
		rate    = 0.05
		windows = 200
		size    = 200
	)
	cat := newCatalog("shop")
	fs := newFaults(cat, testSeed(t), nil)
	w := cat.workloads["checkout-v2"]
	f := Fault{ErrorRate: rate}
	counts := windowCounts(windows, size, func() bool { failed, _ := fs.fail(w, f); return failed })
	mean, sd := meanSD(counts)
	// Over all 40,000 requests the share has a standard deviation of
	// 0.0011; 0.05±0.005 is more than four of them.
	if share := mean / size; math.Abs(share-rate) > 0.005 {
		t.Errorf("error share over %d requests = %.4f, want %.3f±0.005", windows*size, share, rate)
	}
	// A binomial window of 200 at 0.05 has a standard deviation of 3.08; the
	// sample standard deviation of 200 windows is within 0.16 of it, so
	// (1.5, 5) is about ten of those either way.
	if sd <= 1.5 || sd >= 5 {
		t.Errorf("per-window error counts have standard deviation %.2f, want binomial-like (about 3.1, in (1.5, 5))", sd)
	}
	t.Logf("windows of %d: mean %.2f errors, standard deviation %.2f", size, mean, sd)

	// The low-discrepancy sequence the errors used to follow (and routing
	// still does) holds every window to within one of its share: this is
	// the variance real traffic has and that sequence lacks.
	p := newPicker(newStream(testSeed(t), "routing").float64())
	_, oldSD := meanSD(windowCounts(windows, size, func() bool { return p.next("k") < rate }))
	if oldSD >= 1 {
		t.Errorf("low-discrepancy windows have standard deviation %.2f, want below 1", oldSD)
	}
	if sd < 2*oldSD {
		t.Errorf("random draws spread %.2f, not clearly above the low-discrepancy %.2f", sd, oldSD)
	}
}

func TestSameSeedSameDraws(t *testing.T) {
	seed := testSeed(t)
	draws := func(seed uint64) (errs []bool, lat []time.Duration) {
		cat := newCatalog("shop")
		fs := newFaults(cat, seed, map[string]float64{"checkout-v2": 0.01})
		w := cat.workloads["checkout-v2"]
		r := newStream(seed, "latency/checkout-v2")
		f := Fault{ErrorRate: 0.1, LatencyMs: 100, LatencyJitterMs: 20}
		for range 1000 {
			failed, _ := fs.fail(w, f)
			errs = append(errs, failed)
			lat = append(lat, baseLatency(r)+f.latency(r))
		}
		return errs, lat
	}
	errs1, lat1 := draws(seed)
	errs2, lat2 := draws(seed)
	if !slices.Equal(errs1, errs2) || !slices.Equal(lat1, lat2) {
		t.Errorf("two runs with seed %d drew different errors or latencies", seed)
	}
	errs3, lat3 := draws(seed + 1)
	if slices.Equal(errs1, errs3) || slices.Equal(lat1, lat3) {
		t.Errorf("seeds %d and %d drew the same errors or latencies", seed, seed+1)
	}
}

func TestStreamsAreSafeForConcurrentUse(t *testing.T) {
	cat := newCatalog("shop")
	fs := newFaults(cat, testSeed(t), nil)
	w := cat.workloads["checkout-v1"]
	const goroutines, each = 8, 5000
	failures := make([]int, goroutines)
	done := make(chan struct{})
	for g := range goroutines {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				if failed, _ := fs.fail(w, Fault{ErrorRate: 0.5}); failed {
					failures[g]++
				}
			}
		}()
	}
	for range goroutines {
		<-done
	}
	var total int
	for _, n := range failures {
		total += n
	}
	// 40,000 draws at 0.5: standard deviation 100.
	if total < 19_500 || total > 20_500 {
		t.Errorf("%d of %d concurrent draws failed, want 20000±500", total, goroutines*each)
	}
}

func TestBackgroundErrorsComposeWithFaults(t *testing.T) {
	const n = 20_000
	cat := newCatalog("shop")
	seed := testSeed(t)
	bg, err := backgroundRates(cat, map[string]float64{"checkout/v1": 0.1, "checkout/v2": 0.005, "payments/v1": 0})
	if err != nil {
		t.Fatalf("backgroundRates: %v", err)
	}
	if _, ok := bg["payments-v1"]; ok || len(bg) != 2 {
		t.Errorf("background rates = %v, want checkout-v1 and checkout-v2 only", bg)
	}
	share := func(fs *faults, name string, f Fault) (float64, []bool) {
		var fails []bool
		var k int
		for range n {
			failed, why := fs.fail(cat.workloads[name], f)
			fails = append(fails, failed)
			if failed {
				k++
				if why != "injected fault" && why != "background error" {
					t.Fatalf("failure reason %q", why)
				}
			}
		}
		return float64(k) / n, fails
	}
	for _, tc := range []struct {
		name     string
		workload string
		fault    Fault
		want     float64
	}{
		{"background alone", "checkout-v1", Fault{}, 0.1},
		{"realistic background", "checkout-v2", Fault{}, 0.005},
		{"fault on top of background", "checkout-v1", Fault{ErrorRate: 0.2}, 1 - 0.8*0.9},
		{"no background", "payments-v1", Fault{ErrorRate: 0.2}, 0.2},
		{"nothing", "frontend-v1", Fault{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := share(newFaults(cat, seed, bg), tc.workload, tc.fault)
			tol := 4*math.Sqrt(tc.want*(1-tc.want)/n) + 1e-9
			if math.Abs(got-tc.want) > tol {
				t.Errorf("error share %.4f, want %.4f±%.4f", got, tc.want, tol)
			}
		})
	}
	// The background draws are independent of the fault: with the same
	// seed, every request that failed in the background alone still fails
	// once a fault is added.
	_, alone := share(newFaults(cat, seed, bg), "checkout-v1", Fault{})
	_, both := share(newFaults(cat, seed, bg), "checkout-v1", Fault{ErrorRate: 0.3})
	for i := range alone {
		if alone[i] && !both[i] {
			t.Fatalf("request %d failed in the background but not once a fault was added", i)
		}
	}
}

func TestBaseLatencyIsLogNormal(t *testing.T) {
	r := newStream(testSeed(t), "latency/checkout-v1")
	ms := make([]float64, 20_000)
	for i := range ms {
		ms[i] = float64(baseLatency(r)) / float64(time.Millisecond)
	}
	slices.Sort(ms)
	mean, sd := meanSD(ms)
	median, p99 := ms[len(ms)/2], ms[len(ms)*99/100]
	t.Logf("base latency: mean %.2f ms, sd %.2f, median %.2f, p99 %.2f, max %.2f", mean, sd, median, p99, ms[len(ms)-1])
	// Close to the 1–3 ms of the uniform draw it replaced (mean 2 ms), with
	// the right tail that a log-normal has and a uniform lacks.
	if mean < 1.7 || mean > 2.2 || median < 1.7 || median > 1.9 {
		t.Errorf("mean %.2f ms, median %.2f ms; want about 1.9 and 1.8", mean, median)
	}
	if p99 < 3.5 || p99 > 5 {
		t.Errorf("p99 %.2f ms, want about 4", p99)
	}
	if ms[0] <= 0 || ms[len(ms)-1] > baseLatencyMaxMs {
		t.Errorf("draws span [%.2f, %.2f] ms, want in (0, %d]", ms[0], ms[len(ms)-1], baseLatencyMaxMs)
	}
}

func TestParseErrorRates(t *testing.T) {
	got, err := ParseErrorRates(" checkout/v1=0.005, checkout/v2=0.01 ")
	if err != nil || len(got) != 2 || got["checkout/v1"] != 0.005 || got["checkout/v2"] != 0.01 {
		t.Errorf("ParseErrorRates = %v, %v; want checkout/v1 0.005 and checkout/v2 0.01", got, err)
	}
	if got, err := ParseErrorRates(""); err != nil || len(got) != 0 {
		t.Errorf(`ParseErrorRates("") = %v, %v; want no rates`, got, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"checkout/v1", "want service/version=rate"},
		{"checkout/v1=", "want service/version=rate"},
		{"checkout=0.1", `"checkout" is not service/version`},
		{"checkout/v1/x=0.1", "is not service/version"},
		{"checkout/v1=lots", `invalid syntax`},
		{"checkout/v1=1.5", "1.5 is not a fraction in [0,1]"},
		{"checkout/v1=-0.1", "is not a fraction"},
		{"checkout/v1=NaN", "is not a fraction"},
		{"checkout/v1=0.1,checkout/v1=0.2", "checkout/v1 is given twice"},
		{"checkout/v1=0.1,", "want service/version=rate"},
	} {
		if got, err := ParseErrorRates(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseErrorRates(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.want)
		}
	}
}

func TestStartRefusesBadBackgroundErrorRates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rates map[string]float64
		is    error
		want  string
	}{
		{"unknown version", map[string]float64{"checkout/v3": 0.01}, ErrUnknownWorkload, "checkout/v3"},
		{"not service/version", map[string]float64{"checkout": 0.01}, ErrUnknownWorkload, `"checkout"`},
		{"rate above 1", map[string]float64{"checkout/v2": 1.5}, ErrInvalidFault, "1.5 is not in [0,1]"},
		{"NaN rate", map[string]float64{"checkout/v1": math.NaN()}, ErrInvalidFault, "checkout/v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(t.Context(), Options{BackgroundErrorRate: tc.rates})
			if err == nil {
				_ = s.Close()
				t.Fatal("Start succeeded, want an error")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start = %v, want an error wrapping %v that names %s", err, tc.is, tc.want)
			}
		})
	}
}

func TestSeedIsReportedAndKept(t *testing.T) {
	s := startLocal(t, Options{Seed: 42})
	if s.Seed() != 42 {
		t.Errorf("Seed() = %d, want the 42 of Options", s.Seed())
	}
	if s := startLocal(t, Options{}); s.Seed() == 0 {
		t.Error("Seed() = 0 with Options.Seed 0, want the seed picked at random")
	}
}
