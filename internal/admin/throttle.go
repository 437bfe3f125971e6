package admin

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
)

// Sign-in throttling (SPEC §3). Failures within ThrottleWindow:
// MaxPairFailures for one e-mail from one client address refuse that
// address for that e-mail; MaxIPFailures from one address refuse the
// address; MaxEmailFailures for one e-mail from all addresses refuse the
// e-mail everywhere. So a stranger cannot lock an operator out with a
// handful of requests from their own address: they lock out themselves.
const (
	MaxPairFailures  = 5
	MaxIPFailures    = 20
	MaxEmailFailures = 100
	ThrottleWindow   = 15 * time.Minute
)

// Throttled is the cause of a rate_limited sign-in refusal.
type Throttled struct{ Wait time.Duration }

func (t *Throttled) Error() string { return fmt.Sprintf("login throttled for %s", t.Wait) }

// RetryAfter is how long the client should wait.
func (t *Throttled) RetryAfter() time.Duration { return t.Wait }

// reserveAttempt is the cheap check that comes before any hashing: under
// locks on the e-mail and the address (always taken in that order), it
// checks the throttle and records the attempt as a failure, in one short
// transaction. Concurrent attempts on any instance are counted as they
// arrive, so no more of them reach the password hash than the throttle
// allows. A refused attempt is not recorded: it must not keep the window
// open.
func reserveAttempt(ctx context.Context, tx pgx.Tx, email string, ip netip.Addr) (int64, error) {
	q := database.New(tx)
	if err := q.AdvisoryLockXact(ctx, "slotpay-login-email:"+email); err != nil {
		return 0, fmt.Errorf("lock login email: %w", err)
	}
	if err := q.AdvisoryLockXact(ctx, "slotpay-login-ip:"+ip.String()); err != nil {
		return 0, fmt.Errorf("lock login address: %w", err)
	}
	seconds, err := q.LoginAttemptWait(ctx, db.LoginAttemptWaitParams{
		Email: email, Ip: ip,
		Span:     pgtype.Interval{Microseconds: ThrottleWindow.Microseconds(), Valid: true},
		PairMax:  MaxPairFailures,
		IpMax:    MaxIPFailures,
		EmailMax: MaxEmailFailures,
	})
	if err != nil {
		return 0, fmt.Errorf("check login throttle: %w", err)
	}
	if seconds > 0 {
		return 0, apperr.Wrap(&Throttled{Wait: time.Duration(seconds) * time.Second}, apperr.RateLimited,
			"too many failed sign-in attempts; try again later")
	}
	id, err := q.LoginAttemptReserve(ctx, db.LoginAttemptReserveParams{Email: email, Ip: ip})
	if err != nil {
		return 0, fmt.Errorf("record login attempt: %w", err)
	}
	return id, nil
}

// Hashing is bounded (SPEC §3): argon2id needs argonMemory (19 MiB) for as
// long as it runs, so at most 2 × GOMAXPROCS verifications run at a time,
// which is also all the CPU can do at once. A flood waits for a slot at most
// hashWait, with at most hashWaitersPerSlot waiting per slot; beyond either,
// it is refused with rate_limited. Memory stays bounded whatever arrives.
const (
	hashWait           = 3 * time.Second
	hashWaitersPerSlot = 16
)

// errHashBusy asks the client to come back in a second: the server is busy
// checking other passwords.
var errHashBusy = apperr.Wrap(&Throttled{Wait: time.Second}, apperr.RateLimited,
	"too many sign-ins at once; try again in a moment")

// hashGate is a counting semaphore with a bounded, time-limited queue.
type hashGate struct {
	slots      chan struct{}
	wait       time.Duration
	waiting    atomic.Int64
	maxWaiting int64
}

func newHashGate(slots int, wait time.Duration) *hashGate {
	return &hashGate{slots: make(chan struct{}, slots), wait: wait, maxWaiting: int64(slots * hashWaitersPerSlot)}
}

func defaultHashSlots() int { return 2 * runtime.GOMAXPROCS(0) }

// acquire takes a slot, or refuses with errHashBusy; release gives it back.
func (g *hashGate) acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.waiting.Add(1) > g.maxWaiting {
		g.waiting.Add(-1)
		return errHashBusy
	}
	defer g.waiting.Add(-1)
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return errHashBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *hashGate) release() { <-g.slots }
