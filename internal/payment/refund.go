package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
)

// RefundArgs is a River job asking Stripe for the full refund of a late
// payment whose slot is gone (SPEC §2.1). It is inserted by EnqueueRefund in
// the transaction that decides the refund, so it exists if and only if that
// decision committed.
type RefundArgs struct {
	BookingID       uuid.UUID `json:"booking_id" river:"unique"`
	PaymentIntentID string    `json:"payment_intent_id"`
}

func (RefundArgs) Kind() string { return "refund" }

// InsertOpts makes the job unique per booking: a second decision for the
// same booking (a replayed event, the reconciler's net) while one is queued,
// running, retrying or completed adds nothing.
func (RefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// EnqueueRefund inserts the refund job in tx.
func EnqueueRefund(ctx context.Context, jobs *river.Client[pgx.Tx], tx pgx.Tx, bookingID uuid.UUID, paymentIntentID string) error {
	if _, err := jobs.InsertTx(ctx, tx, RefundArgs{BookingID: bookingID, PaymentIntentID: paymentIntentID}, nil); err != nil {
		return fmt.Errorf("enqueue refund for booking %s: %w", bookingID, err)
	}
	return nil
}

// RefundWorker requests the refunds of RefundArgs jobs, outside any
// transaction. A failed attempt is retried by River with backoff; every
// retry reads the outcome back before it sends a new Stripe request (see
// Processor.refund), so retries never refund twice.
type RefundWorker struct {
	river.WorkerDefaults[RefundArgs]
	processor *Processor
}

// NewRefundWorker returns the worker for RefundArgs jobs.
func NewRefundWorker(p *Processor) *RefundWorker { return &RefundWorker{processor: p} }

// Timeout bounds one attempt: stripe-go's own retries included, a refund
// request takes seconds, and River rescues a job only after its timeout.
func (*RefundWorker) Timeout(*river.Job[RefundArgs]) time.Duration { return time.Minute }

func (w *RefundWorker) Work(ctx context.Context, job *river.Job[RefundArgs]) error {
	return w.processor.RequestRefund(ctx, job.Args.BookingID, job.Args.PaymentIntentID)
}

// RequestRefund asks Stripe for the full refund of a paid booking whose slot
// cannot be honoured (refund_pending) and notes that Stripe accepted it;
// charge.refunded then makes the booking refunded. It is safe to call again
// after any failure (River retries the job): see refund, which also treats
// a charge refunded by other means (the Dashboard) as done. A booking no
// longer refund_pending, or whose refund was noted already, needs nothing;
// one whose refund failed or was cancelled at Stripe is left to an
// operator, never requested again automatically (SPEC §2.1).
func (p *Processor) RequestRefund(ctx context.Context, bookingID uuid.UUID, paymentIntentID string) error {
	b, err := booking.Get(ctx, database.New(p.pool), bookingID)
	if err != nil {
		return err
	}
	switch {
	case booking.Status(b.Status) != booking.RefundPending:
		return nil // refunded or decided otherwise meanwhile
	case b.RefundFailedAt != nil:
		p.logger.LogAttrs(ctx, slog.LevelWarn, "a refund of this booking failed at Stripe; not requested again automatically",
			slog.String("booking_id", bookingID.String()))
		return nil
	case b.RefundRequestedAt != nil:
		return nil
	}
	if err := p.refund(ctx, bookingID, paymentIntentID); err != nil {
		return fmt.Errorf("request refund for booking %s: %w", bookingID, err)
	}
	if err := database.New(p.pool).BookingMarkRefundRequested(ctx, bookingID); err != nil {
		return fmt.Errorf("note refund requested for booking %s: %w", bookingID, err)
	}
	p.logger.LogAttrs(ctx, slog.LevelInfo, "refund requested", slog.String("booking_id", bookingID.String()))
	return nil
}

// refund makes sure Stripe has a full refund of the booking's payment, so
// that it can be repeated after any failure without refunding twice (SPEC
// §2.2). Each attempt has its own idempotency key, because Stripe replays a
// stored 5xx to the same key for a day; before a new attempt, the refunds
// of the payment intent are read back, and one slotpay made for the booking
// (named in its metadata) means the earlier attempt did take effect.
// charge_already_refunded is success when the read-back shows the charge
// refunded indeed (by anyone: a refund in Stripe's Dashboard, say).
func (p *Processor) refund(ctx context.Context, bookingID uuid.UUID, paymentIntentID string) error {
	q := database.New(p.pool)
	attempt, err := NextAttempt(ctx, q, refundOperation(bookingID))
	if err != nil {
		return err
	}
	if attempt.Retry() {
		done, err := p.refunded(ctx, bookingID, paymentIntentID, false)
		if err != nil {
			return fmt.Errorf("read back the refunds of %s before attempt %d: %w", paymentIntentID, attempt.Number, err)
		}
		if done {
			return nil
		}
	}
	_, err = p.stripe.Refunds.New(refundParams(ctx, bookingID, paymentIntentID, attempt))
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*stripe.Error](err); ok && se.Code == stripe.ErrorCodeChargeAlreadyRefunded {
		if done, readErr := p.refunded(ctx, bookingID, paymentIntentID, true); readErr == nil && done {
			return nil
		}
	}
	if failErr := attempt.Failed(ctx, q); failErr != nil {
		err = fmt.Errorf("%w (and %v)", err, failErr)
	}
	return err
}

// refunded reads the refunds of a payment intent back and reports whether
// one that did not fail or get cancelled exists: one slotpay made for the
// booking, or, with anyone, any.
func (p *Processor) refunded(ctx context.Context, bookingID uuid.UUID, paymentIntentID string, anyone bool) (bool, error) {
	params := &stripe.RefundListParams{PaymentIntent: stripe.String(paymentIntentID)}
	params.Context = ctx
	it := p.stripe.Refunds.List(params)
	for it.Next() {
		r := it.Refund()
		if r.Status == stripe.RefundStatusFailed || r.Status == stripe.RefundStatusCanceled {
			continue
		}
		if anyone || r.Metadata["booking_id"] == bookingID.String() {
			return true, nil
		}
	}
	return false, it.Err()
}

// refundOperation names the full refund of a booking in
// stripe_request_attempts.
func refundOperation(bookingID uuid.UUID) string { return "refund-" + bookingID.String() }

// refundParams is the full refund of a booking's payment under the key of
// one attempt; metadata.booking_id is how a read-back recognises it.
func refundParams(ctx context.Context, bookingID uuid.UUID, paymentIntentID string, attempt Attempt) *stripe.RefundParams {
	params := &stripe.RefundParams{PaymentIntent: stripe.String(paymentIntentID)}
	params.Context = ctx
	params.SetIdempotencyKey(attempt.Key())
	params.AddMetadata("booking_id", bookingID.String())
	return params
}

// RefundByOperator asks Stripe to refund a paid booking in full for an
// operator (SPEC §3), if booking.Refundable allows it, as safely repeatable
// as RequestRefund. Nothing changes here but the note that Stripe accepted,
// written with the audit row in one transaction after Stripe answered (never
// a transaction across the call):
// the booking becomes refunded when charge.refunded arrives. A refusal by
// Stripe is payment_provider_error and leaves no audit row.
func (p *Processor) RefundByOperator(ctx context.Context, bookingID uuid.UUID, by audit.Actor) (db.Booking, error) {
	b, err := booking.Get(ctx, database.New(p.pool), bookingID)
	if err != nil {
		return db.Booking{}, err
	}
	if err := booking.Refundable(booking.Of(b)); err != nil {
		return db.Booking{}, err
	}
	if err := p.refund(ctx, b.ID, *b.PaymentIntentID); err != nil {
		return db.Booking{}, apperr.Wrap(err, apperr.PaymentProvider, "the payment provider did not accept the refund; try again")
	}
	// Not decided again: charge.refunded for this very refund may have
	// made the booking refunded by now, and the refund happened either way.
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		if err := q.BookingMarkRefundRequested(ctx, b.ID); err != nil {
			return fmt.Errorf("note refund requested for booking %s: %w", b.ID, err)
		}
		if err := audit.Record(ctx, q, by, audit.BookingRefund, b.ID); err != nil {
			return err
		}
		b, err = q.BookingGetByID(ctx, b.ID)
		return err
	})
	if err != nil {
		return db.Booking{}, err
	}
	p.logger.LogAttrs(ctx, slog.LevelInfo, "refund requested by an operator", slog.String("booking_id", b.ID.String()))
	return b, nil
}
