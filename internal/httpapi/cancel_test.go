package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

func (b *testBundle) cancel(t *testing.T, id genapi.BookingID) *genapi.CancelBookingResponse {
	t.Helper()
	resp, err := b.client.CancelBookingWithResponse(t.Context(), id, &genapi.CancelBookingParams{})
	require.NoError(t, err)
	return resp
}

func TestCancel(t *testing.T) {
	t.Parallel()

	t.Run("CustomerCancel_PendingPayment_Cancelled", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.hold(t, at(10), at(12))
		resp := b.cancel(t, bk.Id)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		require.Equal(t, genapi.Cancelled, resp.JSON200.Status)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND from_status = 'pending_payment' AND to_status = 'cancelled' AND cause = 'customer_cancel'", bk.Id))
		b.hold(t, at(10), at(12)) // the slot is free again
	})

	t.Run("OpenSessionIsExpiredAtStripeFirst", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		b := setup(t, withStripe(fake.URL))
		bk, co := b.paidBooking(t, 10)
		resp := b.cancel(t, bk.Id)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		require.Equal(t, "expired", fake.Session(co.CheckoutSessionId).Status)
		require.Equal(t, "cancelled", b.booking(t, bk.Id).Status)
	})

	t.Run("SessionCompletedMeanwhile_PaymentAppliedAndCancelRefused", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		b := setup(t, withStripe(fake.URL))
		bk, co := b.paidBooking(t, 10)
		fake.Complete(co.CheckoutSessionId, "paid") // its webhook has not arrived yet

		resp := b.cancel(t, bk.Id)
		requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM payment_events WHERE source = 'reconcile' AND outcome = 'applied' AND booking_id = $1", bk.Id))
	})

	t.Run("ErrPaymentProvider_BookingUnchanged", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		b := setup(t, withStripe(fake.URL))
		bk, co := b.paidBooking(t, 10)
		fake.FailNext("/v1/checkout/sessions/"+co.CheckoutSessionId+"/expire", 500, "")
		resp := b.cancel(t, bk.Id)
		requireError(t, http.StatusBadGateway, "payment_provider_error", resp.StatusCode(), resp.Body)
		require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status)
		require.Equal(t, "open", fake.Session(co.CheckoutSessionId).Status)
	})

	t.Run("ErrInvalidState", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		requireReceived(t, b.deliver(t, completed(bk, co).JSON(t)), false)
		resp := b.cancel(t, bk.Id)
		requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp := b.cancel(t, testUUID())
		requireError(t, http.StatusNotFound, "not_found", resp.StatusCode(), resp.Body)
	})
}

// TestCheckout_CancelledWhileStripeCreatedTheSession: the booking is
// cancelled while its checkout call waits on Stripe. The new session is
// expired at once instead of being handed out for a slot nobody holds.
func TestCheckout_CancelledWhileStripeCreatedTheSession(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	var b *testBundle
	var bookingID genapi.BookingID
	slow := newInterceptor(t, fake.URL, func(path string) {
		if path == "/v1/checkout/sessions" {
			testkit.SetBooking(t, b.db, bookingID, testkit.BookingOpts{Status: booking.Cancelled})
		}
	})
	b = setup(t, withStripe(slow))
	bk := b.hold(t, at(10), at(12))
	bookingID = bk.Id

	resp, err := b.client.CreateCheckoutWithResponse(t.Context(), bk.Id, &genapi.CreateCheckoutParams{})
	require.NoError(t, err)
	requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
	sessions := fake.Sessions()
	require.Len(t, sessions, 1)
	require.Equal(t, "expired", sessions[0].Status)
}
