package sequential

import "testing"

// The memo answers as the computation does, and stays within its bound.
func TestProportionIntervalMemo(t *testing.T) {
	for _, c := range [][2]float64{{0, 10}, {1, 10}, {3, 1000}, {500, 1000}, {1000, 1000}} {
		want := proportionInterval(c[0], c[1], 0.01)
		for range 2 { // computed, then remembered
			if got := ProportionInterval(c[0], c[1], 0.01); got != want {
				t.Errorf("ProportionInterval(%v, %v) = %+v, want %+v", c[0], c[1], got, want)
			}
		}
	}
	for n := range maxMemoIntervals + 10 {
		ProportionInterval(1, float64(n+1), 0.05)
	}
	intervals.mu.Lock()
	size := len(intervals.m)
	intervals.mu.Unlock()
	if size > maxMemoIntervals {
		t.Errorf("memo holds %d intervals, want at most %d", size, maxMemoIntervals)
	}
}
