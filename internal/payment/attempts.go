package payment

import (
	"context"
	"fmt"
	"time"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/database"
)

// Stripe stores the first answer to an idempotency key for 24 hours, a 5xx
// included (SPEC §2.2), so a key whose request failed can only replay that
// failure. Each POST slotpay repeats (a refund, a session's expiry) is an
// operation with an attempt counter in stripe_request_attempts: its key is
// slotpay-<operation>-<attempt>. After a failure the counter moves on; the
// caller reads the outcome back from Stripe before it sends the next attempt,
// so a request that did take effect is never made twice.

// Attempt is one try of an operation.
type Attempt struct {
	Operation string
	Number    int32
}

// Key is the idempotency key of this attempt.
func (a Attempt) Key() string { return fmt.Sprintf("slotpay-%s-%d", a.Operation, a.Number) }

// Retry reports whether an earlier attempt failed or left its outcome
// unknown: the outcome must be read back before this one is sent.
func (a Attempt) Retry() bool { return a.Number > 1 }

// NextAttempt returns the attempt the next request of operation makes.
func NextAttempt(ctx context.Context, q *db.Queries, operation string) (Attempt, error) {
	n, err := q.StripeRequestAttemptGet(ctx, operation)
	if database.IsNotFound(err) {
		return Attempt{Operation: operation, Number: 1}, nil
	}
	if err != nil {
		return Attempt{}, fmt.Errorf("read attempt of %s: %w", operation, err)
	}
	return Attempt{Operation: operation, Number: n}, nil
}

// Failed records that attempt a failed or left its outcome unknown, so the
// next request uses a new key. A key whose request failed can only replay
// that failure, for a day: if this note were lost, every later request of the
// operation would fail with it (a lapsed hold whose session can never be
// expired holds its slot). So it is written even when the caller's context
// has ended (the customer went away while Stripe answered), and tried again
// on another connection when one fails (a connection PostgreSQL killed).
func (a Attempt) Failed(ctx context.Context, q *db.Queries) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	for try := 0; try < failedTries; try++ {
		tryCtx, cancel := context.WithTimeout(ctx, failedTimeout)
		err = q.StripeRequestAttemptAdvance(tryCtx, db.StripeRequestAttemptAdvanceParams{Operation: a.Operation, NextAttempt: a.Number + 1})
		cancel()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("advance attempt of %s: %w", a.Operation, err)
}

// failedTries and failedTimeout bound Failed's writes: a pool hands out
// another connection on each try.
const (
	failedTries   = 3
	failedTimeout = 10 * time.Second
)
