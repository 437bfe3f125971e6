package reconcile_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/testkit"
)

// TestInvariant6_MoneyInTheDatabaseEqualsMoneyAtStripe: SPEC §8.6. Stripe and
// slotpay drift apart the ways they do in production: a paid session's
// webhook is lost, a session is abandoned, a payment lands after its slot was
// given away and its refund request fails, an event is never delivered. One
// reconcile and one replay later, every session's money at Stripe is
// accounted for by its booking.
func TestInvariant6_MoneyInTheDatabaseEqualsMoneyAtStripe(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// Paid at Stripe just before the hold lapsed; the webhook was lost.
	lostWebhook, lostSession := b.withSession(t, 9)
	b.stripe.Complete(lostSession, "paid")
	b.lapse(t, lostWebhook.ID)

	// Abandoned: never paid, hold lapsed.
	abandoned, _ := b.withSession(t, 11)
	b.lapse(t, abandoned.ID)

	// Paid after the customer cancelled and someone else took the slot;
	// Stripe failed the first refund request.
	late, lateSession := b.withSession(t, 13)
	b.stripe.Complete(lateSession, "paid")
	testkit.SetBooking(t, b.db, late.ID, testkit.BookingOpts{Status: booking.Cancelled})
	b.hold(t, 13)
	b.stripe.FailNext("/v1/refunds", 500, "")
	lateEvent := testkit.CheckoutSessionCompleted(lateSession, late.ID.String(), late.AmountTotal, late.Currency)
	lateEvent.Object["payment_intent"] = b.stripe.Session(lateSession).PaymentIntent
	_, err := b.processor.Process(t.Context(), lateEvent.JSON(t), payment.SourceWebhook)
	require.NoError(t, err)

	// Paid, hold still running, and the webhook never came: only the
	// Events API knows.
	undelivered, undeliveredSession := b.withSession(t, 15)
	b.stripe.Complete(undeliveredSession, "paid")
	ev := testkit.CheckoutSessionCompleted(undeliveredSession, undelivered.ID.String(), undelivered.AmountTotal, undelivered.Currency)
	ev.Object["payment_intent"] = b.stripe.Session(undeliveredSession).PaymentIntent
	b.stripe.AddEvent(ev.JSON(t))

	_, err = b.reconciler.Run(t.Context())
	require.NoError(t, err)
	_, err = b.reconciler.Replay(t.Context(), time.Hour)
	require.NoError(t, err)
	// The late payment's refund job retries after Stripe's failure.
	testkit.WaitFor(t, "the late payment's refund request", func() bool { return b.refundRequested(t, late.ID) })
	// Stripe sent charge.refunded for that refund (the simulator emits it);
	// a replay after the refund brings it in, whether or not the first
	// replay ran before the job did, and the late booking ends refunded.
	_, err = b.reconciler.Replay(t.Context(), time.Hour)
	require.NoError(t, err)

	// Money Stripe kept: paid sessions less refunds.
	var kept int64
	for _, s := range b.stripe.Sessions() {
		if s.Status == "complete" && s.PaymentStatus == "paid" {
			kept += s.AmountTotal
		}
	}
	for _, r := range b.stripe.Refunds() {
		kept -= r.Amount
	}
	// Money slotpay says it kept: bookings confirmed (paid, slot honoured).
	var confirmed int64
	require.NoError(t, b.db.Pool.QueryRow(t.Context(),
		"SELECT coalesce(sum(amount_total), 0) FROM bookings WHERE status = 'confirmed'").Scan(&confirmed))
	require.Equal(t, kept, confirmed)
	require.Equal(t, lostWebhook.AmountTotal+undelivered.AmountTotal, confirmed)

	require.Equal(t, "confirmed", b.status(t, lostWebhook.ID))
	require.Equal(t, "expired", b.status(t, abandoned.ID))
	require.Equal(t, "refunded", b.status(t, late.ID), "charge.refunded, replayed, closes the late payment")
	require.Equal(t, "confirmed", b.status(t, undelivered.ID))
	refunds := b.stripe.Refunds()
	require.Len(t, refunds, 1)
	require.Equal(t, b.stripe.Session(lateSession).PaymentIntent, refunds[0].PaymentIntent)
}
