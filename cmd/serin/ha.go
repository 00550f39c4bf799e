package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/serin-dev/serin/web"
)

// haOptions are the flags for running more than one replica: how fast
// leadership passes to another replica, and the console's session key,
// which every replica must share.
type haOptions struct {
	// LeaseDuration is how long a candidate waits, after it last saw the
	// leader renew the Lease, before it takes the lead.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before it
	// gives up the lead (and the process stops). It must be shorter than
	// LeaseDuration, so that the old leader has stopped before a candidate
	// may take over.
	RenewDeadline time.Duration
	// RetryPeriod is how often the leader renews and candidates look.
	RetryPeriod time.Duration
	// SessionKeyFile holds the console's session key (web.ReadSessionKey).
	SessionKeyFile string
}

// Leader election defaults. A leader killed with SIGKILL is replaced
// after at most about LeaseDuration + 4.4 RetryPeriod (a candidate sees
// the last renewal up to 2.2 RetryPeriods late, with client-go's jitter
// of 1.2, and looks again up to 2.2 RetryPeriods after the lease ran
// out): 12.4 s, and the next tick follows within a second, inside the
// 15 s that failover is allowed. BenchmarkFailover (test/e2e) measured
// 9.7 to 11.4 s from the leader's SIGKILL to the next tick. Controller-runtime's defaults
// (15 s, 10 s, 2 s) would take up to 24 s. A leader that stops cleanly
// releases the Lease, and the next one takes over within a RetryPeriod or
// two.
const (
	defaultLeaseDuration = 8 * time.Second
	defaultRenewDeadline = 5 * time.Second
	defaultRetryPeriod   = time.Second
)

// leaderElectionJitter is client-go's leaderelection.JitterFactor: the
// retry period stretches by up to this factor, and the renew deadline
// must exceed it.
const leaderElectionJitter = 1.2

func (h *haOptions) addFlags(fs *flag.FlagSet) {
	fs.DurationVar(&h.LeaseDuration, "leader-elect-lease-duration", defaultLeaseDuration,
		"with --leader-elect: how long a standby replica waits, after it last saw the leader renew, before it takes the lead; bounds the failover after a crash")
	fs.DurationVar(&h.RenewDeadline, "leader-elect-renew-deadline", defaultRenewDeadline,
		"with --leader-elect: how long the leader keeps trying to renew before it gives up the lead and stops; shorter than the lease duration")
	fs.DurationVar(&h.RetryPeriod, "leader-elect-retry-period", defaultRetryPeriod,
		"with --leader-elect: how often the leader renews and standby replicas look")
	fs.StringVar(&h.SessionKeyFile, "session-key-file", "",
		"a file of at least 32 random bytes (e.g. mounted from a Secret) from which the console's session and login form keys are derived; give every replica the same one, so that sessions span replicas and survive restarts. Empty uses a random key per process")
}

// validate refuses timings that would let two leaders act at once or
// never renew, and a session key without a console.
func (h haOptions) validate(auth string) error {
	switch {
	case h.RetryPeriod <= 0:
		return fmt.Errorf("--leader-elect-retry-period %v: must be positive", h.RetryPeriod)
	case float64(h.RenewDeadline) <= leaderElectionJitter*float64(h.RetryPeriod):
		return fmt.Errorf("--leader-elect-renew-deadline %v: must be more than %v times --leader-elect-retry-period %v",
			h.RenewDeadline, leaderElectionJitter, h.RetryPeriod)
	case h.LeaseDuration <= h.RenewDeadline:
		return fmt.Errorf("--leader-elect-lease-duration %v: must be longer than --leader-elect-renew-deadline %v, so that a leader that cannot renew stops before another takes over",
			h.LeaseDuration, h.RenewDeadline)
	case h.SessionKeyFile != "" && auth == "none":
		return errors.New("--session-key-file is only used by the console (--auth static or kubernetes)")
	}
	return nil
}

// sessionKey reads --session-key-file; nil without one (the console then
// makes a random key and says so). A missing or short file is an error.
func (h haOptions) sessionKey() ([]byte, error) {
	if h.SessionKeyFile == "" {
		return nil, nil
	}
	k, err := web.ReadSessionKey(h.SessionKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--session-key-file: %w", err)
	}
	return k, nil
}
