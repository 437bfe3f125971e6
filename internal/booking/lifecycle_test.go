package booking_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/booking"
)

// TestDecide walks SPEC §2.1 row by row. Each subtest is named after its row;
// the HTTP and webhook tests prove the same rows against PostgreSQL.
func TestDecide(t *testing.T) {
	t.Parallel()

	const amount, currency = 9000, "eur"
	paid := booking.Fact{Kind: booking.SessionPaid, AmountTotal: amount, Currency: currency}
	at := func(s booking.Status) booking.Booking {
		return booking.Booking{Status: s, AmountTotal: amount, Currency: currency}
	}

	type row struct {
		name        string
		from        booking.Status
		fact        booking.Fact
		to          booking.Status
		outcome     booking.Outcome
		ifSlotTaken booking.Status
		disputed    bool
	}
	rows := []row{
		{"CompletedPaid_PendingPayment_Confirmed", booking.PendingPayment, paid, booking.Confirmed, booking.Applied, "", false},
		{"CompletedPaid_Processing_Confirmed", booking.Processing, paid, booking.Confirmed, booking.Applied, "", false},
		{"CompletedPaid_AmountDiffers_NeedsReview", booking.PendingPayment,
			booking.Fact{Kind: booking.SessionPaid, AmountTotal: amount - 1, Currency: currency}, booking.NeedsReview, booking.Review, "", false},
		{"CompletedPaid_CurrencyDiffers_NeedsReview", booking.Processing,
			booking.Fact{Kind: booking.SessionPaid, AmountTotal: amount, Currency: "usd"}, booking.NeedsReview, booking.Review, "", false},
		{"LatePayment_Expired_ConfirmedIfFreeElseRefundPending", booking.Expired, paid, booking.Confirmed, booking.Applied, booking.RefundPending, false},
		{"LatePayment_Cancelled_ConfirmedIfFreeElseRefundPending", booking.Cancelled, paid, booking.Confirmed, booking.Applied, booking.RefundPending, false},
		{"CompletedUnpaid_PendingPayment_Processing", booking.PendingPayment, booking.Fact{Kind: booking.SessionUnpaid}, booking.Processing, booking.Applied, "", false},
		{"AsyncSucceeded_Processing_Confirmed", booking.Processing, paid, booking.Confirmed, booking.Applied, "", false},
		{"AsyncFailed_Processing_PaymentFailed", booking.Processing, booking.Fact{Kind: booking.AsyncPaymentFailed}, booking.PaymentFailed, booking.Applied, "", false},
		{"SessionExpired_PendingPayment_Expired", booking.PendingPayment, booking.Fact{Kind: booking.SessionExpired}, booking.Expired, booking.Applied, "", false},
		{"ChargeRefundedFull_Confirmed_Refunded", booking.Confirmed, booking.Fact{Kind: booking.ChargeRefunded, FullRefund: true}, booking.Refunded, booking.Applied, "", false},
		{"ChargeRefundedFull_NeedsReview_Refunded", booking.NeedsReview, booking.Fact{Kind: booking.ChargeRefunded, FullRefund: true}, booking.Refunded, booking.Applied, "", false},
		{"ChargeRefundedFull_RefundPending_Refunded", booking.RefundPending, booking.Fact{Kind: booking.ChargeRefunded, FullRefund: true}, booking.Refunded, booking.Applied, "", false},
		{"ChargeRefundedFull_Processing_Refunded", booking.Processing, booking.Fact{Kind: booking.ChargeRefunded, FullRefund: true}, booking.Refunded, booking.Applied, "", false},
		{"AsyncSucceeded_AfterFullRefund_Ignored", booking.Refunded, paid, booking.Refunded, booking.Ignored, "", false},
		{"ChargeRefundedPartial_Unchanged", booking.Confirmed, booking.Fact{Kind: booking.ChargeRefunded}, booking.Confirmed, booking.Applied, "", false},
		{"DisputeCreated_Unchanged_Disputed", booking.Confirmed, booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: "needs_response"}, booking.Confirmed, booking.Applied, "", true},
		{"DisputeClosedLost_Unchanged_Disputed", booking.Confirmed, booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: "lost"}, booking.Confirmed, booking.Applied, "", true},
		{"DisputeFundsReinstated_Refunded_Unchanged_Disputed", booking.Refunded, booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: "won"}, booking.Refunded, booking.Applied, "", true},
		{"RefundFailed_Refunded_RefundPending_Review", booking.Refunded, booking.Fact{Kind: booking.RefundFailed, RefundStatus: "failed"}, booking.RefundPending, booking.Review, "", false},
		{"RefundCanceled_Refunded_RefundPending_Review", booking.Refunded, booking.Fact{Kind: booking.RefundFailed, RefundStatus: "canceled"}, booking.RefundPending, booking.Review, "", false},
		{"RefundFailed_Confirmed_Unchanged_Review", booking.Confirmed, booking.Fact{Kind: booking.RefundFailed, RefundStatus: "failed"}, booking.Confirmed, booking.Review, "", false},
		{"RefundSucceeded_Refunded_Ignored", booking.Refunded, booking.Fact{Kind: booking.RefundChanged, RefundStatus: "succeeded"}, booking.Refunded, booking.Ignored, "", false},
		{"HoldLapsed_PendingPayment_Expired", booking.PendingPayment, booking.Fact{Kind: booking.HoldLapsed}, booking.Expired, booking.Applied, "", false},
		{"CustomerCancel_PendingPayment_Cancelled", booking.PendingPayment, booking.Fact{Kind: booking.CustomerCancel}, booking.Cancelled, booking.Applied, "", false},
		{"OperatorCancel_PendingPayment_Cancelled", booking.PendingPayment, booking.Fact{Kind: booking.OperatorCancel}, booking.Cancelled, booking.Applied, "", false},

		// Events that do not fit the current status change nothing.
		{"CompletedPaid_Confirmed_Ignored", booking.Confirmed, paid, booking.Confirmed, booking.Ignored, "", false},
		{"CompletedPaid_Refunded_Ignored", booking.Refunded, paid, booking.Refunded, booking.Ignored, "", false},
		{"CompletedPaid_PaymentFailed_Review", booking.PaymentFailed, paid, booking.PaymentFailed, booking.Review, "", false},
		{"SessionExpired_Confirmed_Ignored", booking.Confirmed, booking.Fact{Kind: booking.SessionExpired}, booking.Confirmed, booking.Ignored, "", false},
		{"ChargeRefundedFull_PendingPayment_Ignored", booking.PendingPayment, booking.Fact{Kind: booking.ChargeRefunded, FullRefund: true}, booking.PendingPayment, booking.Ignored, "", false},
		{"CustomerCancel_Confirmed_Ignored", booking.Confirmed, booking.Fact{Kind: booking.CustomerCancel}, booking.Confirmed, booking.Ignored, "", false},
		{"HoldLapsed_Processing_Ignored", booking.Processing, booking.Fact{Kind: booking.HoldLapsed}, booking.Processing, booking.Ignored, "", false},
		{"OperatorCancel_Confirmed_Ignored", booking.Confirmed, booking.Fact{Kind: booking.OperatorCancel}, booking.Confirmed, booking.Ignored, "", false},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			d := booking.Decide(at(r.from), r.fact)
			require.Equal(t, r.to, d.To)
			require.Equal(t, r.outcome, d.Outcome)
			require.Equal(t, r.ifSlotTaken, d.IfSlotTaken)
			require.Equal(t, r.disputed, d.Disputed)
			require.NotEmpty(t, d.Reason)
		})
	}
}

// TestDecide_RefundFactsInAnyOrder: charge.refunded is sent when a refund
// is created and the refund can fail later; delivered in any order, the
// newer fact wins, and a tie goes to the failure (the customer may be owed).
func TestDecide_RefundFactsInAnyOrder(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	refunded := func(at time.Time) booking.Fact {
		return booking.Fact{Kind: booking.ChargeRefunded, FullRefund: true, At: at}
	}
	failed := booking.Fact{Kind: booking.RefundFailed, RefundStatus: "failed", At: t0}

	t.Run("FailureFirst_OlderRefundedIsStale", func(t *testing.T) {
		t.Parallel()
		d := booking.Decide(booking.Booking{Status: booking.Confirmed}, failed)
		require.Equal(t, booking.Review, d.Outcome)
		require.Equal(t, t0, *d.RefundFailedAt)
		for _, at := range []time.Time{t0.Add(-time.Second), t0} {
			d = booking.Decide(booking.Booking{Status: booking.Confirmed, RefundFailedAt: &t0}, refunded(at))
			require.Equal(t, booking.Confirmed, d.To, at)
			require.Equal(t, booking.Ignored, d.Outcome, at)
		}
	})
	t.Run("NewRefundAfterTheFailure_Refunded", func(t *testing.T) {
		t.Parallel()
		d := booking.Decide(booking.Booking{Status: booking.RefundPending, RefundFailedAt: &t0}, refunded(t0.Add(time.Second)))
		require.Equal(t, booking.Refunded, d.To)
	})
	t.Run("FailureOlderThanALaterFullRefund_Ignored", func(t *testing.T) {
		t.Parallel()
		later := t0.Add(time.Second)
		d := booking.Decide(booking.Booking{Status: booking.Refunded, RefundedSeenAt: &later}, failed)
		require.Equal(t, booking.Refunded, d.To)
		require.Equal(t, booking.Ignored, d.Outcome)
		require.Nil(t, d.RefundFailedAt)
	})
}

// TestDecide_DisputeStatusOnlyMovesForward: dispute events delivered late
// never put back an earlier stage.
func TestDecide_DisputeStatusOnlyMovesForward(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	lost := booking.Booking{Status: booking.Confirmed, DisputeStatus: "lost", DisputeStatusAt: &t0}
	d := booking.Decide(lost, booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: "needs_response", At: t0.Add(time.Hour)})
	require.True(t, d.Disputed)
	require.Empty(t, d.DisputeStatus, "a late needs_response leaves lost")
	open := booking.Booking{Status: booking.Confirmed, DisputeStatus: "needs_response", DisputeStatusAt: &t0}
	d = booking.Decide(open, booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: "under_review", At: t0.Add(-time.Second)})
	require.Equal(t, "under_review", d.DisputeStatus, "a later stage wins even with an older timestamp")
}

// TestDecide_ChargebackAfterInquiryOutranksIt: an inquiry (warning_*) that
// escalates becomes a formal dispute on the same charge; its statuses
// replace the inquiry's, even the closed inquiry's and whatever the order
// the events arrive in, and a late inquiry event never hides the chargeback.
func TestDecide_ChargebackAfterInquiryOutranksIt(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	closed := booking.Booking{Status: booking.Confirmed, DisputeStatus: "warning_closed", DisputeStatusAt: &t0}
	d := booking.Decide(closed, booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: "needs_response", At: t0.Add(-time.Minute)})
	require.Equal(t, "needs_response", d.DisputeStatus, "the chargeback replaces the closed inquiry")
	lost := booking.Booking{Status: booking.Confirmed, DisputeStatus: "lost", DisputeStatusAt: &t0}
	for _, inquiry := range []string{"warning_needs_response", "warning_under_review", "warning_closed"} {
		d = booking.Decide(lost, booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: inquiry, At: t0.Add(time.Hour)})
		require.Empty(t, d.DisputeStatus, "a late %s leaves lost", inquiry)
	}
}

// TestDecide_HoldLapsed: a hold lapses only once its time ran out, and only
// without a Checkout Session (one with a session is expired at Stripe
// first, SPEC §2.2).
func TestDecide_HoldLapsed(t *testing.T) {
	t.Parallel()
	now := time.Now()
	lapse := booking.Fact{Kind: booking.HoldLapsed, At: now}
	for name, c := range map[string]struct {
		b  booking.Booking
		to booking.Status
	}{
		"RanOut_Expired":       {booking.Booking{Status: booking.PendingPayment, HoldExpiresAt: now}, booking.Expired},
		"StillRunning_Ignored": {booking.Booking{Status: booking.PendingPayment, HoldExpiresAt: now.Add(time.Second)}, booking.PendingPayment},
		"WithSession_Ignored":  {booking.Booking{Status: booking.PendingPayment, HoldExpiresAt: now.Add(-time.Hour), HasSession: true}, booking.PendingPayment},
		"Confirmed_Ignored":    {booking.Booking{Status: booking.Confirmed, HoldExpiresAt: now.Add(-time.Hour)}, booking.Confirmed},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := booking.Decide(c.b, lapse)
			require.Equal(t, c.to, d.To)
			require.NotEmpty(t, d.Reason)
		})
	}
}

// TestRefundable: an operator refunds a paid booking with a payment intent,
// nothing else (SPEC §3).
func TestRefundable(t *testing.T) {
	t.Parallel()
	for _, s := range booking.Statuses {
		err := booking.Refundable(booking.Booking{Status: s, HasPaymentIntent: true})
		if s == booking.Confirmed || s == booking.NeedsReview {
			require.NoError(t, err, s)
			continue
		}
		require.Equal(t, apperr.InvalidState, apperr.CodeOf(err), s)
	}
	err := booking.Refundable(booking.Booking{Status: booking.Confirmed})
	require.Equal(t, apperr.InvalidState, apperr.CodeOf(err), "no payment intent, nothing to refund")
	failedAt := time.Now()
	require.NoError(t, booking.Refundable(booking.Booking{Status: booking.RefundPending, HasPaymentIntent: true, RefundFailedAt: &failedAt}),
		"a refund that failed at Stripe is asked again only by an operator")
}

// TestHoldsSlot pins the statuses the bookings_no_overlap constraint lists.
func TestHoldsSlot(t *testing.T) {
	t.Parallel()
	holding := map[booking.Status]bool{
		booking.PendingPayment: true, booking.Processing: true, booking.Confirmed: true, booking.NeedsReview: true,
		booking.RefundPending: false, booking.Expired: false, booking.PaymentFailed: false,
		booking.Cancelled: false, booking.Refunded: false,
	}
	for s, want := range holding {
		require.Equal(t, want, s.HoldsSlot(), s)
	}
}

// TestDecide_RefundFactsInOneSecondAreReadBack: Stripe's event times are
// whole seconds; a full refund and a refund failure of the same second
// cannot be ordered by them, so Decide asks for Stripe's refunds and decides
// by what they say now.
func TestDecide_RefundFactsInOneSecondAreReadBack(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	failed := booking.Booking{Status: booking.Confirmed, AmountTotal: 9000, HasPaymentIntent: true, RefundFailedAt: &t0}
	full := booking.Fact{Kind: booking.ChargeRefunded, FullRefund: true, At: t0}
	require.True(t, booking.Decide(failed, full).ReadBack)
	full.RefundsNow = &booking.RefundsNow{Charged: 9000, Live: 9000}
	require.Equal(t, booking.Refunded, booking.Decide(failed, full).To, "a new refund covers the charge")
	full.RefundsNow = &booking.RefundsNow{Charged: 9000}
	d := booking.Decide(failed, full)
	require.Equal(t, booking.Confirmed, d.To, "the failure stands")
	require.False(t, d.ReadBack)

	refunded := booking.Booking{Status: booking.Refunded, AmountTotal: 9000, HasPaymentIntent: true, RefundedSeenAt: &t0}
	failure := booking.Fact{Kind: booking.RefundFailed, RefundStatus: "failed", At: t0}
	require.True(t, booking.Decide(refunded, failure).ReadBack)
	failure.RefundsNow = &booking.RefundsNow{Charged: 9000, Live: 9000}
	require.Equal(t, booking.Refunded, booking.Decide(refunded, failure).To, "another refund still covers the charge")
	failure.RefundsNow = &booking.RefundsNow{Charged: 9000}
	require.Equal(t, booking.RefundPending, booking.Decide(refunded, failure).To)
}
