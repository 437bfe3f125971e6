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
// transaction. A failed attempt is retried by River with backoff; the
// idempotency key makes every attempt the same request to Stripe.
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
	b, err := database.New(w.processor.pool).BookingGetByID(ctx, job.Args.BookingID)
	if err != nil {
		return fmt.Errorf("load booking %s: %w", job.Args.BookingID, err)
	}
	if booking.Status(b.Status) != booking.RefundPending || b.RefundRequestedAt != nil {
		return nil // refunded or requested meanwhile: nothing left to ask
	}
	err = w.processor.RequestRefund(ctx, job.Args.BookingID, job.Args.PaymentIntentID)
	if se, ok := errors.AsType[*stripe.Error](err); ok && se.Code == stripe.ErrorCodeChargeAlreadyRefunded {
		// Refunded by other means (the Dashboard): no retry can succeed,
		// the refund the booking needs exists, and charge.refunded moves
		// the booking on. Noted, so that the reconciler's net leaves it.
		w.processor.logger.LogAttrs(ctx, slog.LevelWarn, "refund not needed: the charge is already refunded",
			slog.String("booking_id", job.Args.BookingID.String()))
		if err := database.New(w.processor.pool).BookingMarkRefundRequested(ctx, job.Args.BookingID); err != nil {
			return fmt.Errorf("note refund requested for booking %s: %w", job.Args.BookingID, err)
		}
		return nil
	}
	return err
}

// RequestRefund asks Stripe for a full refund of the booking's payment and
// notes that Stripe accepted it. The idempotency key is derived from the
// booking, so every attempt, whoever makes it (the refund job's retries, an
// operator's refund), is one refund at Stripe; charge.refunded then makes
// the booking refunded.
func (p *Processor) RequestRefund(ctx context.Context, bookingID uuid.UUID, paymentIntentID string) error {
	if _, err := p.stripe.Refunds.New(refundParams(ctx, bookingID, paymentIntentID)); err != nil {
		return fmt.Errorf("request refund for booking %s: %w", bookingID, err)
	}
	if err := database.New(p.pool).BookingMarkRefundRequested(ctx, bookingID); err != nil {
		return fmt.Errorf("note refund requested for booking %s: %w", bookingID, err)
	}
	p.logger.LogAttrs(ctx, slog.LevelInfo, "refund requested", slog.String("booking_id", bookingID.String()))
	return nil
}

// refundParams is the full refund of a booking's payment. The idempotency
// key is derived from the booking alone, so that a booking is refunded at
// most once whoever asks (an operator, the late-payment rule, the
// reconciler) and however often.
func refundParams(ctx context.Context, bookingID uuid.UUID, paymentIntentID string) *stripe.RefundParams {
	params := &stripe.RefundParams{PaymentIntent: stripe.String(paymentIntentID)}
	params.Context = ctx
	params.SetIdempotencyKey("slotpay-refund-" + bookingID.String())
	params.AddMetadata("booking_id", bookingID.String())
	return params
}

// RefundByOperator asks Stripe to refund a paid booking in full for an
// operator (SPEC §3), if booking.Refundable allows it. Nothing changes here
// but the note that Stripe accepted, written with the audit row in one
// transaction after Stripe answered (never a transaction across the call):
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
	if _, err := p.stripe.Refunds.New(refundParams(ctx, b.ID, *b.PaymentIntentID)); err != nil {
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
