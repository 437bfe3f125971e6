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
	// RefundFailed: a refund failed or was cancelled after it was created
	// (refund.failed, refund.updated or charge.refund.updated with status
	// failed or canceled); RefundChanged: any other refund update.
	RefundFailed  FactKind = "refund_failed"
	RefundChanged FactKind = "refund_changed"
	// DisputeChanged: any charge.dispute.* event, with the dispute's status.
	DisputeChanged FactKind = "dispute_changed"
	// HoldLapsed: the hold ran out with no Checkout Session to pay it.
	HoldLapsed     FactKind = "hold_lapsed"
	CustomerCancel FactKind = "customer_cancel"
	OperatorCancel FactKind = "operator_cancel"
	// CustomerCancelPaid: the customer, with the manage_token, cancels a
	// confirmed booking (SPEC §3.1); CustomerReschedule moves it.
	CustomerCancelPaid FactKind = "customer_cancel_paid"
	CustomerReschedule FactKind = "customer_reschedule"
)

// Fact is a verified statement about one booking's payment.
type Fact struct {
	Kind FactKind
	// AmountTotal and Currency are what Stripe charged (SessionPaid).
	AmountTotal int64
	Currency    string
	// FullRefund is true when the charge is refunded in full (ChargeRefunded).
	FullRefund bool
	// RefundStatus is the refund's status (RefundFailed, RefundChanged);
	// DisputeStatus the dispute's (DisputeChanged).
	RefundStatus  string
	DisputeStatus string
	// RefundsNow, when set, is what Stripe's refunds of the payment say
	// now, read back because the event's time ties with a recorded refund
	// fact (Decision.ReadBack).
	RefundsNow *RefundsNow
	// At is when the fact holds: for a Stripe event, the time Stripe
	// created it (events arrive in any order, so facts about refunds and
	// disputes are judged by it); for HoldLapsed, the moment the hold is
	// judged.
	At time.Time
}

// RefundsNow is a payment's refunds as read back from Stripe: Charged is the
// amount received, Live the sum of its refunds that did not fail and were
// not cancelled.
type RefundsNow struct {
	Charged, Live int64
}

// Full reports whether live refunds cover the whole payment.
func (r RefundsNow) Full() bool { return r.Charged > 0 && r.Live >= r.Charged }

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
	// Disputed sets the booking's disputed flag; DisputeStatus, when set,
	// is the dispute's status to record (newer than the one recorded).
	Disputed      bool
	DisputeStatus string
	// RefundFailedAt and RefundedSeenAt, when set, are the times of a refund
	// failure and of a full-refund charge snapshot to remember
	// (bookings.refund_failed_at, refunded_seen_at).
	RefundFailedAt, RefundedSeenAt *time.Time
	// ReadBack: the fact cannot be ordered against a recorded refund fact
	// (Stripe's event times are whole seconds, and both have the same
	// one), so nothing is decided: the caller reads the payment's refunds
	// back from Stripe (outside any transaction) and decides again with
	// Fact.RefundsNow.
	ReadBack bool
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
	// RefundFailedAt is the Stripe time of the latest refund failure,
	// RefundedSeenAt of the latest charge.refunded showing a full refund.
	RefundFailedAt, RefundedSeenAt *time.Time
	// DisputeStatus is the dispute's status recorded at DisputeStatusAt.
	DisputeStatus   string
	DisputeStatusAt *time.Time
	// CancelledAfterPayment: a customer cancelled the booking once it was
	// paid (bookings.cancelled_after_payment).
	CancelledAfterPayment bool
	StartsAt              time.Time
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
// way. A refund_pending booking is refunded automatically, unless its refund
// failed at Stripe: then only an operator asks again. A refunded one has
// nothing left.
//
// A booking the customer cancelled after paying can be refunded too: its
// policy may have refunded part or nothing, or its refund failed. Stripe
// refunds what remains of the charge, never more (Processor.refund sends no
// amount for an operator).
func Refundable(b Booking) error {
	switch {
	case b.Status == Confirmed, b.Status == NeedsReview:
	case b.Status == RefundPending && b.RefundFailedAt != nil:
	case b.Status == Cancelled && b.CancelledAfterPayment:
	default:
		return apperr.New(apperr.InvalidState, "the booking is %s; only a confirmed or needs_review booking, or one cancelled after payment, can be refunded", b.Status)
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
		if b.Status == Cancelled && b.CancelledAfterPayment {
			// Its payment was recorded before the customer cancelled: this
			// is a replay or a read-back of that payment, not a late one.
			return stay(Ignored, "payment already recorded; the customer cancelled the booking after paying")
		}
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
		// charge.refunded is sent when a refund is created; a refund that
		// failed since makes an older snapshot of the charge stale. Within
		// the same second the order is unknown (a refund that failed and a
		// new one that covers the charge): Stripe's refunds, read back,
		// decide.
		if b.RefundFailedAt != nil && f.At.Before(*b.RefundFailedAt) {
			return stay(Ignored, "full refund reported before the refund failure of "+stamp(*b.RefundFailedAt)+", which supersedes it")
		}
		if b.RefundFailedAt != nil && f.At.Equal(*b.RefundFailedAt) {
			if f.RefundsNow == nil {
				return Decision{To: b.Status, Outcome: Ignored, Reason: "reported in the second of a refund failure", ReadBack: true}
			}
			if !f.RefundsNow.Full() {
				return stay(Ignored, fmt.Sprintf("full refund reported in the second of a refund failure, and Stripe's refunds read back cover %d of %d: the failure stands", f.RefundsNow.Live, f.RefundsNow.Charged))
			}
		}
		d := stay(Ignored, "full refund does not apply to a "+string(b.Status)+" booking")
		switch b.Status {
		case Confirmed, NeedsReview, RefundPending, Cancelled:
			d = move(Refunded, Applied, "charge fully refunded")
		case Processing:
			// The async payment settled at Stripe and was refunded in full
			// (in the Dashboard) before its success event reached us: the
			// money is gone, so the booking must not be confirmed by that
			// event later (SessionPaid on refunded is ignored).
			d = move(Refunded, Applied, "charge fully refunded while its payment was settling")
		}
		d.RefundedSeenAt = &f.At
		return d

	case RefundFailed:
		if b.RefundedSeenAt != nil && f.At.Before(*b.RefundedSeenAt) {
			return stay(Ignored, "refund "+f.RefundStatus+" before the charge was reported refunded in full at "+stamp(*b.RefundedSeenAt))
		}
		if b.RefundedSeenAt != nil && f.At.Equal(*b.RefundedSeenAt) {
			if f.RefundsNow == nil {
				return Decision{To: b.Status, Outcome: Ignored, Reason: "refund " + f.RefundStatus + " in the second of a full refund", ReadBack: true}
			}
			if f.RefundsNow.Full() {
				return stay(Ignored, "refund "+f.RefundStatus+" in the second of a full refund, and Stripe's refunds read back still cover the charge")
			}
		}
		// Never requested again automatically (RefundFailedAt keeps the
		// reconciler away): why it failed is for an operator to find out.
		d := stay(Review, "a refund "+f.RefundStatus+" on a "+string(b.Status)+" booking: an operator checks what the customer is owed")
		if b.Status == Refunded {
			d = move(RefundPending, Review, "the refund "+f.RefundStatus+": the customer is owed the money again; an operator acts (never retried automatically)")
		}
		d.RefundFailedAt = &f.At
		return d

	case RefundChanged:
		return stay(Ignored, "refund is "+f.RefundStatus+"; only a failed or canceled refund changes a booking")

	case DisputeChanged:
		d := stay(Applied, "dispute "+f.DisputeStatus)
		d.Disputed = true
		if newerDispute(b, f) {
			d.DisputeStatus = f.DisputeStatus
		} else {
			d.Reason += "; older than the recorded status " + b.DisputeStatus + ", which stays"
		}
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

	case CustomerCancelPaid:
		switch {
		case b.Status != Confirmed:
			return stay(Ignored, "only a confirmed booking can be cancelled with its manage_token")
		case !f.At.Before(b.StartsAt):
			return stay(Ignored, "the booking has started")
		}
		return move(Cancelled, Applied, "cancelled by the customer after paying")

	case CustomerReschedule:
		// The status stays: the caller records the move (cause
		// rescheduled) when the outcome is Applied.
		switch {
		case b.Status != Confirmed:
			return stay(Ignored, "only a confirmed booking can be rescheduled")
		case !f.At.Before(b.StartsAt):
			return stay(Ignored, "the booking has started")
		}
		return stay(Applied, "rescheduled by the customer")
	}
	return stay(Ignored, "unknown fact "+string(f.Kind))
}

// newerDispute reports whether f's dispute status supersedes the recorded
// one. A charge has at most one dispute, and it only moves forward (needs a
// response, under review, closed), so a later stage wins whatever the event
// times; within a stage, the later event. An inquiry (warning_*) comes
// before any formal dispute: one that escalates, as the same dispute object
// or (after warning_closed) as a new one on the charge, moves to the formal
// statuses, so every formal status outranks every inquiry status — else a
// closed inquiry would hide the chargeback that followed it.
func newerDispute(b Booking, f Fact) bool {
	if f.DisputeStatus == "" {
		return false
	}
	if b.DisputeStatusAt == nil {
		return true
	}
	rb, rf := disputeStage(b.DisputeStatus), disputeStage(f.DisputeStatus)
	if rf != rb {
		return rf > rb
	}
	return !f.At.Before(*b.DisputeStatusAt)
}

func disputeStage(status string) int {
	switch status {
	case "warning_needs_response":
		return 1
	case "warning_under_review":
		return 2
	case "warning_closed":
		return 3
	case "needs_response":
		return 4
	case "under_review":
		return 5
	case "won", "lost", "prevented":
		return 6
	}
	return 0
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
