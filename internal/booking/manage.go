package booking

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
)

// This file is what a customer may do with a paid booking (SPEC §3.1): the
// cancellation policy that says what a cancel refunds, and the reschedule.

// Policy is a resource's cancellation policy: a cancel at least FullHours
// before the start refunds everything, at least PartialHours before it
// PartialPercent, later nothing.
type Policy struct {
	FullHours, PartialHours, PartialPercent int
}

// DefaultPolicy: a full refund up to 24 hours before the start, none after.
var DefaultPolicy = Policy{FullHours: 24}

// PolicyOf is a resource's policy.
func PolicyOf(r db.Resource) Policy {
	return Policy{
		FullHours: int(r.FullRefundHoursBefore), PartialHours: int(r.PartialRefundHoursBefore),
		PartialPercent: int(r.PartialRefundPercent),
	}
}

// Validate refuses a policy whose windows could not work. Messages are safe
// for clients.
func (p Policy) Validate() error {
	const maxHours = 17520 // two years, the longest horizon
	switch {
	case p.FullHours < 0 || p.FullHours > maxHours:
		return apperr.New(apperr.InvalidRequest, "cancellation_policy.full_refund_hours_before must be between 0 and %d", maxHours)
	case p.PartialHours < 0 || p.PartialHours > p.FullHours:
		return apperr.New(apperr.InvalidRequest, "cancellation_policy.partial_refund_hours_before must be between 0 and full_refund_hours_before")
	case p.PartialPercent < 0 || p.PartialPercent > 100:
		return apperr.New(apperr.InvalidRequest, "cancellation_policy.partial_refund_percent must be between 0 and 100")
	}
	return nil
}

// FullRefundCutoff is the last moment a cancel refunds everything and a
// reschedule is allowed.
func (p Policy) FullRefundCutoff(startsAt time.Time) time.Time {
	return startsAt.Add(-time.Duration(p.FullHours) * time.Hour)
}

// Refund is what a cancel at at refunds of a booking of amount starting at
// startsAt: never more than amount, never negative, rounded down to the
// minor unit.
func (p Policy) Refund(amount int64, startsAt, at time.Time) int64 {
	switch {
	case !at.After(p.FullRefundCutoff(startsAt)):
		return amount
	case p.PartialPercent > 0 && !at.After(startsAt.Add(-time.Duration(p.PartialHours)*time.Hour)):
		return amount * int64(p.PartialPercent) / 100
	}
	return 0
}

// CancelRefund is what a customer cancel of b at at would refund: the
// policy's amount, or nothing for a booking without a payment to refund (a
// confirmed booking that needed none, or one that is not confirmed).
func CancelRefund(b db.Booking, r db.Resource, at time.Time) int64 {
	if Status(b.Status) != Confirmed || b.PaymentIntentID == nil || !at.Before(b.StartsAt) {
		return 0
	}
	return PolicyOf(r).Refund(b.AmountTotal, b.StartsAt, at)
}

// Reschedule moves a confirmed booking to slot on its resource (SPEC §3.1):
// before the full-refund cutoff, under every slot rule of a new booking, at
// the same price (another is invalid_state), in one transaction whose
// exclusion constraint has the last word (slot_unavailable). The history
// records the old and the new slot.
func Reschedule(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID, slot Slot) (db.Booking, error) {
	var moved db.Booking
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		b, err := Get(ctx, q, id)
		if err != nil {
			return err
		}
		// The resource's lock before the booking's, as a new hold takes it.
		if err := q.ResourceLockForBooking(ctx, b.ResourceID); err != nil {
			return fmt.Errorf("lock resource: %w", err)
		}
		if b, err = q.BookingGetByIDForUpdate(ctx, id); err != nil {
			return fmt.Errorf("lock booking %s: %w", id, err)
		}
		now := time.Now()
		d := Decide(Of(b), Fact{Kind: CustomerReschedule, At: now})
		if d.Outcome != Applied {
			return apperr.New(apperr.InvalidState, "the booking is %s; %s", b.Status, d.Reason)
		}
		resource, err := ActiveResource(ctx, q, b.ResourceID)
		if err != nil {
			return err
		}
		if cutoff := PolicyOf(resource).FullRefundCutoff(b.StartsAt); now.After(cutoff) {
			return apperr.New(apperr.InvalidState, "a booking can be rescheduled only until %s, the full-refund cutoff", stamp(cutoff))
		}
		rules, err := RulesOf(resource)
		if err != nil {
			return err
		}
		if err := rules.Validate(slot, now); err != nil {
			return err
		}
		if price := rules.Price(slot); price != b.AmountTotal || resource.Currency != b.Currency {
			return apperr.New(apperr.InvalidState, "the new slot costs %d %s, the booking %d %s: choose a slot of the same price",
				price, resource.Currency, b.AmountTotal, b.Currency)
		}
		// Lapsed unpaid holds in the way are released, as for a new hold.
		if _, err := releaseLapsedIn(ctx, q, b.ResourceID, slot, now); err != nil {
			return err
		}
		moved, err = TransitionWith(ctx, q, b, Confirmed, Cause{Name: CauseRescheduled}, Change{Slot: &slot})
		return err
	})
	if database.IsOverlap(err) {
		return db.Booking{}, apperr.Wrap(err, apperr.SlotUnavailable, "the new slot overlaps another booking")
	}
	if err != nil {
		return db.Booking{}, fmt.Errorf("reschedule booking %s: %w", id, err)
	}
	return moved, nil
}
