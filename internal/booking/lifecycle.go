package booking

import (
	"fmt"
	"time"

	"github.com/slotpay/slotpay/internal/apperr"
)

// This file is slotpay's state machine (SPEC §2.1), in one place: Decide says,
// for a booking's current status and a verified fact, what happens. It is pure:
// the payment and booking code apply its Decision under the booking's row lock.

// Status is a booking's lifecycle status.
type Status string

const (
	PendingPayment Status = "pending_payment"
	Processing     Status = "processing" // an async payment method is still settling
	Confirmed      Status = "confirmed"
	NeedsReview    Status = "needs_review"   // paid, but not as expected: an operator decides
	RefundPending  Status = "refund_pending" // paid, but the slot cannot be honoured
	Expired        Status = "expired"
	PaymentFailed  Status = "payment_failed"
	Cancelled      Status = "cancelled"
	Refunded       Status = "refunded"
)

// Statuses lists every status, in the order of SPEC §2.1.
var Statuses = []Status{
	PendingPayment, Processing, Confirmed, NeedsReview, RefundPending, Expired, PaymentFailed, Cancelled, Refunded,
}

// HoldsSlot reports whether a booking in this status keeps its slot from
// others. It is SQL's booking_holds_slot (migration 00006), which the
// bookings_no_overlap constraint uses; a test holds the two equal.
func (s Status) HoldsSlot() bool {
	switch s {
	case PendingPayment, Processing, Confirmed, NeedsReview:
		return true
	}
	return false
}

// FactKind names something that happened, as Stripe or the customer says.
type FactKind string

const (
	// SessionPaid: checkout.session.completed with payment_status paid or
	// no_payment_required, or checkout.session.async_payment_succeeded.
	SessionPaid FactKind = "session_paid"
	// SessionUnpaid: checkout.session.completed with payment_status unpaid;
	// the payment method settles later.
	SessionUnpaid      FactKind = "session_unpaid"
	AsyncPaymentFailed FactKind = "async_payment_failed"
	SessionExpired     FactKind = "session_expired"
	ChargeRefunded     FactKind = "charge_refunded"
	DisputeCreated     FactKind = "dispute_created"
	// HoldLapsed: the hold ran out with no Checkout Session to pay it.
	HoldLapsed     FactKind = "hold_lapsed"
	CustomerCancel FactKind = "customer_cancel"
	OperatorCancel FactKind = "operator_cancel"
)

// Fact is a verified statement about one booking's payment.
type Fact struct {
	Kind FactKind
	// AmountTotal and Currency are what Stripe charged (SessionPaid).
	AmountTotal int64
	Currency    string
	// FullRefund is true when the charge is refunded in full (ChargeRefunded).
	FullRefund bool
	// At is when the fact holds (HoldLapsed: the moment the hold is judged).
	At time.Time
}

// Outcome is how the payment ledger records an event's effect.
type Outcome string

const (
	Applied   Outcome = "applied"
	Ignored   Outcome = "ignored"
	Unmatched Outcome = "unmatched"
	Review    Outcome = "review"
)

// Decision is what a fact does to a booking.
type Decision struct {
	// To is the new status; equal to the current one when nothing changes.
	To      Status
	Outcome Outcome
	Reason  string
	// IfSlotTaken is the status to take instead of To when To would hold a
	// slot that another booking holds by now (a late payment).
	IfSlotTaken Status
	// MarkDisputed sets the booking's disputed flag.
	MarkDisputed bool
}

// Booking is the part of a booking Decide reads.
type Booking struct {
	Status        Status
	AmountTotal   int64
	Currency      string
	HoldExpiresAt time.Time
	// HasSession is true once a Checkout Session exists for the booking.
	HasSession bool
	// HasPaymentIntent is true once Stripe named the payment.
	HasPaymentIntent bool
}

// HoldLapsed reports whether the booking is a hold that ran out at at with
// no Checkout Session: nobody can pay it, so it can be expired and its slot
// released. It is SQL's booking_hold_lapsed (migration 00006); a test holds
// the two equal.
func (b Booking) HoldLapsed(at time.Time) bool {
	return b.Status == PendingPayment && !b.HasSession && !b.HoldExpiresAt.After(at)
}

// SessionLapsed reports whether the booking is a hold that ran out at at
// while its Checkout Session may still be paid: Stripe must expire the
// session before the slot is released. It is SQL's booking_session_lapsed.
func (b Booking) SessionLapsed(at time.Time) bool {
	return b.Status == PendingPayment && b.HasSession && !b.HoldExpiresAt.After(at)
}

// Refundable says whether an operator may refund the booking in full now
// (SPEC §3): it is paid, through a payment intent, and no refund is under
// way. A refund_pending booking is refunded automatically; a refunded one
// has nothing left.
func Refundable(b Booking) error {
	switch b.Status {
	case Confirmed, NeedsReview:
	default:
		return apperr.New(apperr.InvalidState, "the booking is %s; only a confirmed or needs_review booking can be refunded", b.Status)
	}
	if !b.HasPaymentIntent {
		return apperr.New(apperr.InvalidState, "the booking has no payment to refund")
	}
	return nil
}

// Decide applies SPEC §2.1 to one booking and one fact.
func Decide(b Booking, f Fact) Decision {
	stay := func(outcome Outcome, reason string) Decision {
		return Decision{To: b.Status, Outcome: outcome, Reason: reason}
	}
	move := func(to Status, outcome Outcome, reason string) Decision {
		d := Decision{To: to, Outcome: outcome, Reason: reason}
		if to.HoldsSlot() && !b.Status.HoldsSlot() {
			d.IfSlotTaken = RefundPending
		}
		return d
	}

	switch f.Kind {
	case SessionPaid:
		paidAsExpected := f.AmountTotal == b.AmountTotal && f.Currency == b.Currency
		switch b.Status {
		case PendingPayment, Processing, Expired, Cancelled:
			late := ""
			if b.Status == Expired || b.Status == Cancelled {
				late = "late payment: "
			}
			if paidAsExpected {
				return move(Confirmed, Applied, late+"paid as expected")
			}
			return move(NeedsReview, Review, fmt.Sprintf("%spaid %d %s, but the booking is %d %s",
				late, f.AmountTotal, f.Currency, b.AmountTotal, b.Currency))
		case Confirmed, NeedsReview, RefundPending, Refunded:
			return stay(Ignored, "payment already recorded")
		case PaymentFailed:
			// A session whose async payment failed cannot be paid again, so
			// this contradicts what Stripe said before: an operator decides.
			return stay(Review, "paid after the payment was reported failed")
		}

	case SessionUnpaid:
		if b.Status == PendingPayment {
			return move(Processing, Applied, "payment is settling")
		}
		return stay(Ignored, "completion without payment does not apply to a "+string(b.Status)+" booking")

	case AsyncPaymentFailed:
		// From pending_payment too: the failure can overtake the completion
		// that would have moved the booking to processing.
		if b.Status == Processing || b.Status == PendingPayment {
			return move(PaymentFailed, Applied, "async payment failed")
		}
		return stay(Ignored, "payment failure does not apply to a "+string(b.Status)+" booking")

	case SessionExpired:
		if b.Status == PendingPayment {
			return move(Expired, Applied, "checkout session expired")
		}
		return stay(Ignored, "session expiry does not apply to a "+string(b.Status)+" booking")

	case ChargeRefunded:
		if !f.FullRefund {
			return stay(Applied, "partial refund recorded; status unchanged")
		}
		switch b.Status {
		case Confirmed, NeedsReview, RefundPending:
			return move(Refunded, Applied, "charge fully refunded")
		}
		return stay(Ignored, "full refund does not apply to a "+string(b.Status)+" booking")

	case DisputeCreated:
		d := stay(Applied, "dispute opened")
		d.MarkDisputed = true
		return d

	case HoldLapsed:
		switch {
		case b.HoldLapsed(f.At):
			return move(Expired, Applied, "hold lapsed")
		case b.Status != PendingPayment:
			return stay(Ignored, "hold lapse does not apply to a "+string(b.Status)+" booking")
		case b.HasSession:
			return stay(Ignored, "the hold has a checkout session: Stripe must expire it first")
		}
		return stay(Ignored, "the hold runs until "+b.HoldExpiresAt.UTC().Format(time.RFC3339))

	case CustomerCancel, OperatorCancel:
		if b.Status == PendingPayment {
			by := "the customer"
			if f.Kind == OperatorCancel {
				by = "an operator"
			}
			return move(Cancelled, Applied, "cancelled by "+by)
		}
		return stay(Ignored, "only a pending_payment booking can be cancelled")
	}
	return stay(Ignored, "unknown fact "+string(f.Kind))
}
