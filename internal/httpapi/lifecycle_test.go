package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

// Rows of SPEC §2.1 driven by webhooks, against PostgreSQL. Each test is
// named after its row.

func TestLifecycle_CompletedUnpaid_Processing_ThenAsyncSucceeded_Confirmed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	unpaid := completed(bk, co)
	unpaid.Object["payment_status"] = "unpaid"
	requireReceived(t, b.deliver(t, unpaid.JSON(t)), false)
	require.Equal(t, "processing", b.booking(t, bk.Id).Status)

	succeeded := completed(bk, co)
	succeeded.Type = "checkout.session.async_payment_succeeded"
	requireReceived(t, b.deliver(t, succeeded.JSON(t)), false)
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
}

// TestLifecycle_RefundedWhileProcessing_NeverConfirmed: an async payment
// settles at Stripe and is refunded in full (in the Dashboard) before its
// success event arrives. The refund makes the processing booking refunded,
// and the late success is ignored: no booking is confirmed whose money is
// gone (SPEC §8.2, §8.6). Found by the model checker (seed 670).
func TestLifecycle_RefundedWhileProcessing_NeverConfirmed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	unpaid := completed(bk, co)
	unpaid.Object["payment_status"] = "unpaid"
	requireReceived(t, b.deliver(t, unpaid.JSON(t)), false)
	require.Equal(t, "processing", b.booking(t, bk.Id).Status)

	full := withID(testkit.ChargeRefunded(unpaid.Object["payment_intent"].(string), bk.AmountTotal, bk.AmountTotal, bk.Currency))
	requireReceived(t, b.deliver(t, full.JSON(t)), false)
	require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
	require.Equal(t, "applied", b.ledger(t, full.ID).Outcome)

	succeeded := completed(bk, co)
	succeeded.Type = "checkout.session.async_payment_succeeded"
	succeeded.Object["payment_intent"] = unpaid.Object["payment_intent"]
	requireReceived(t, b.deliver(t, succeeded.JSON(t)), false)
	require.Equal(t, "refunded", b.booking(t, bk.Id).Status, "the success of a refunded payment confirms nothing")
	require.Equal(t, "ignored", b.ledger(t, succeeded.ID).Outcome)
	b.hold(t, at(10), at(12)) // the slot is free again
}

func TestLifecycle_AsyncFailed_PaymentFailed_ReleasesSlot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	unpaid := completed(bk, co)
	unpaid.Object["payment_status"] = "unpaid"
	requireReceived(t, b.deliver(t, unpaid.JSON(t)), false)

	failed := completed(bk, co)
	failed.Type = "checkout.session.async_payment_failed"
	failed.Object["payment_status"] = "unpaid"
	requireReceived(t, b.deliver(t, failed.JSON(t)), false)
	require.Equal(t, "payment_failed", b.booking(t, bk.Id).Status)
	b.hold(t, at(10), at(12))
}

func TestLifecycle_SessionExpired_Expired_ReleasesSlot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	ev := completed(bk, co)
	ev.Type = "checkout.session.expired"
	ev.Object["payment_status"] = "unpaid"
	ev.Object["status"] = "expired"
	requireReceived(t, b.deliver(t, ev.JSON(t)), false)
	require.Equal(t, "expired", b.booking(t, bk.Id).Status)
	b.hold(t, at(10), at(12))
}

func TestLifecycle_LatePayment_SlotFree_Confirmed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	testkit.SetBooking(t, b.db, bk.Id, testkit.BookingOpts{Status: booking.Expired})
	requireReceived(t, b.deliver(t, completed(bk, co).JSON(t)), false)
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
}

func TestLifecycle_LatePayment_SlotTaken_RefundPendingAndRefundRequested(t *testing.T) {
	t.Parallel()
	rec, base := newStripeRecorder(t)
	b := setup(t, withStripe(base), withJobs())
	bk, co := b.paidBooking(t, 10)
	testkit.SetBooking(t, b.db, bk.Id, testkit.BookingOpts{Status: booking.Cancelled})
	b.hold(t, at(11), at(12)) // someone else takes part of the slot

	ev := completed(bk, co)
	requireReceived(t, b.deliver(t, ev.JSON(t)), false)
	row := b.booking(t, bk.Id)
	require.Equal(t, "refund_pending", row.Status)
	require.Contains(t, b.ledger(t, ev.ID).Detail, "refunded in full")

	// The refund job, committed with the decision, asks Stripe after commit.
	testkit.WaitFor(t, "the refund request", func() bool {
		return b.db.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_requested_at IS NOT NULL", bk.Id) == 1
	})
	refunds := rec.calls("/v1/refunds")
	require.Len(t, refunds, 1)
	require.Equal(t, ev.Object["payment_intent"], refunds[0].Form.Get("payment_intent"))
	require.Equal(t, "slotpay-refund-"+bk.Id.String()+"-1", refunds[0].IdempotencyKey)

	// The refund lands: refund_pending becomes refunded.
	refunded := withID(testkit.ChargeRefunded(*row.PaymentIntentID, bk.AmountTotal, bk.AmountTotal, bk.Currency))
	requireReceived(t, b.deliver(t, refunded.JSON(t)), false)
	require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
}

func TestLifecycle_ChargeRefundedPartial_Unchanged_ThenFull_Refunded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	paid := completed(bk, co)
	requireReceived(t, b.deliver(t, paid.JSON(t)), false)
	pi := paid.Object["payment_intent"].(string)

	partial := withID(testkit.ChargeRefunded(pi, bk.AmountTotal, 1000, bk.Currency))
	requireReceived(t, b.deliver(t, partial.JSON(t)), false)
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status, "partial refund: unchanged")
	require.Equal(t, "applied", b.ledger(t, partial.ID).Outcome)

	full := withID(testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency))
	requireReceived(t, b.deliver(t, full.JSON(t)), false)
	require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
	b.hold(t, at(10), at(12)) // a refunded booking holds no slot
}

func TestLifecycle_ChargeRefundedFull_NeedsReview_Refunded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	paid := completed(bk, co)
	paid.Object["amount_total"] = bk.AmountTotal + 1
	requireReceived(t, b.deliver(t, paid.JSON(t)), false)
	require.Equal(t, "needs_review", b.booking(t, bk.Id).Status)

	full := withID(testkit.ChargeRefunded(paid.Object["payment_intent"].(string), bk.AmountTotal+1, bk.AmountTotal+1, bk.Currency))
	requireReceived(t, b.deliver(t, full.JSON(t)), false)
	require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
}

func TestLifecycle_DisputeCreated_Disputed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	paid := completed(bk, co)
	requireReceived(t, b.deliver(t, paid.JSON(t)), false)
	requireReceived(t, b.deliver(t, withID(testkit.DisputeCreated(paid.Object["payment_intent"].(string), bk.AmountTotal, bk.Currency)).JSON(t)), false)
	row := b.booking(t, bk.Id)
	require.Equal(t, "confirmed", row.Status)
	require.True(t, row.Disputed)
}

// TestInvariant5_NoDeliveredEventIsLost: SPEC §8.5. A refund that overtakes
// the completion linking its payment intent is kept as unmatched and applied
// in the transaction that creates the link.
func TestInvariant5_NoDeliveredEventIsLost(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	paid := completed(bk, co)
	pi := paid.Object["payment_intent"].(string)

	refund := withID(testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency))
	dispute := withID(testkit.DisputeCreated(pi, bk.AmountTotal, bk.Currency))
	requireReceived(t, b.deliver(t, refund.JSON(t)), false)
	requireReceived(t, b.deliver(t, dispute.JSON(t)), false)
	require.Equal(t, "unmatched", b.ledger(t, refund.ID).Outcome)
	require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status)

	requireReceived(t, b.deliver(t, paid.JSON(t)), false)
	row := b.booking(t, bk.Id)
	require.Equal(t, "refunded", row.Status)
	require.True(t, row.Disputed)
	for _, id := range []string{refund.ID, dispute.ID} {
		l := b.ledger(t, id)
		require.Equal(t, "applied", l.Outcome)
		require.Equal(t, bk.Id, *l.BookingID)
	}
	require.Equal(t, 2, b.db.Count(t, "SELECT count(*) FROM payment_events WHERE resolved_at IS NOT NULL"))
	var history []string
	rows, err := b.db.Pool.Query(t.Context(), "SELECT to_status FROM booking_status_changes WHERE booking_id = $1 ORDER BY id", bk.Id)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		history = append(history, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"pending_payment", "confirmed", "refunded"}, history)

	got, err := b.client.GetBookingWithResponse(t.Context(), bk.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, got.StatusCode())
	require.Equal(t, genapi.Refunded, got.JSON200.Status)
}
