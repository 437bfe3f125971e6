package payment

import (
	"context"
	"fmt"

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
// next request uses a new key.
func (a Attempt) Failed(ctx context.Context, q *db.Queries) error {
	err := q.StripeRequestAttemptAdvance(ctx, db.StripeRequestAttemptAdvanceParams{Operation: a.Operation, NextAttempt: a.Number + 1})
	if err != nil {
		return fmt.Errorf("advance attempt of %s: %w", a.Operation, err)
	}
	return nil
}
