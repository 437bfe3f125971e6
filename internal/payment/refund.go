package payment

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
)

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
