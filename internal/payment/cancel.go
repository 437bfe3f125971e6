package payment

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
)

// CancelPaid cancels a confirmed booking at its customer's request (SPEC
// §3.1, the caller checked the manage_token): the slot is released and the
// refund the resource's cancellation_policy gives now is noted on the
// booking (refund_amount, 0 inside the no-refund window) and, when above
// 0, requested at Stripe by a RefundArgs job inserted in this very
// transaction. So the refund exists exactly when the cancel committed, and
// is asked for once, after commit, outside any transaction. The booking
// remembers it was paid (cancelled_after_payment): a later payment fact for
// it is ignored, never a late payment that re-confirms it.
func (p *Processor) CancelPaid(ctx context.Context, bookingID uuid.UUID) (db.Booking, error) {
	var cancelled db.Booking
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		b, err := q.BookingGetByIDForUpdate(ctx, bookingID)
		if database.IsNotFound(err) {
			return apperr.New(apperr.NotFound, "booking not found")
		}
		if err != nil {
			return fmt.Errorf("lock booking %s: %w", bookingID, err)
		}
		resource, err := q.ResourceGetByID(ctx, b.ResourceID)
		if err != nil {
			return fmt.Errorf("load resource %s: %w", b.ResourceID, err)
		}
		now := time.Now()
		d := booking.Decide(booking.Of(b), booking.Fact{Kind: booking.CustomerCancelPaid, At: now})
		if d.To == booking.Status(b.Status) {
			return apperr.New(apperr.InvalidState, "the booking is %s; %s", b.Status, d.Reason)
		}
		amount := booking.CancelRefund(b, resource, now)
		cancelled, err = booking.TransitionWith(ctx, q, b, d.To, booking.Cause{Name: booking.CauseCustomerCancelPaid},
			booking.Change{RefundAmount: &amount, CancelledAfterPayment: true})
		if err != nil || amount == 0 {
			return err
		}
		return enqueueRefund(ctx, p.jobs, tx, RefundArgs{BookingID: b.ID, PaymentIntentID: *b.PaymentIntentID, Amount: amount})
	})
	if err != nil {
		return db.Booking{}, err
	}
	p.metrics.Transition(string(booking.Confirmed), cancelled.Status)
	return cancelled, nil
}
