package api

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	th := NewFailureThrottle(func() time.Time { return now })
	for range failureBurst {
		if d := th.Wait("10.0.0.1"); d != 0 {
			t.Fatalf("wait before the burst is spent = %v", d)
		}
		th.Failed("10.0.0.1")
	}
	if d := th.Wait("10.0.0.1"); d <= 0 || d > failureRefill {
		t.Errorf("wait after %d failures = %v, want (0, %v]", failureBurst, d, failureRefill)
	}
	if d := th.Wait("10.0.0.2"); d != 0 {
		t.Errorf("another client waits %v", d)
	}
	now = now.Add(failureRefill)
	if d := th.Wait("10.0.0.1"); d != 0 {
		t.Errorf("wait one refill later = %v, want 0", d)
	}
	th.Failed("10.0.0.1")
	if d := th.Wait("10.0.0.1"); d <= 0 {
		t.Error("the refilled attempt was not spent by the failure")
	}

	// The table stays bounded: clients whose bucket is full are forgotten.
	now = now.Add(time.Hour)
	for i := range maxThrottled + 5 {
		th.Failed(fmt.Sprintf("192.0.2.%d/%d", i%250, i))
	}
	if n := len(th.by); n > maxThrottled {
		t.Errorf("%d clients remembered, want at most %d", n, maxThrottled)
	}
}
