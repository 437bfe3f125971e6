package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/gen/db"
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
		// A paid booking is the customer's: by id alone it is refused.
		resp := b.cancel(t, bk.Id)
		requireError(t, http.StatusUnauthorized, "unauthorized", resp.StatusCode(), resp.Body)
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
		// With its manage_token it is cancelled once; then invalid_state.
		require.Equal(t, http.StatusOK, b.cancelWith(t, bk.Id, bearer(bk.ManageToken)).StatusCode())
		resp = b.cancelWith(t, bk.Id, bearer(bk.ManageToken))
		requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
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

// TestCancel_SessionAttachedMeanwhile_ExpiredFirst: a cancel that read the
// booking before a concurrent checkout attached its session finds the
// session under the row lock, expires it at Stripe and only then cancels:
// no payable session is left for a cancelled booking.
func TestCancel_SessionAttachedMeanwhile_ExpiredFirst(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL))
	bk := b.hold(t, at(10), at(12))

	// The checkout: its session exists at Stripe, and it attaches it while
	// holding the booking's row, so that the cancel waits on the lock
	// after it read the booking without a session.
	params := &stripe.CheckoutSessionParams{
		Mode:       stripe.String(string(stripe.CheckoutSessionModePayment)),
		SuccessURL: stripe.String("http://localhost/ok"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{Quantity: stripe.Int64(1), PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
			Currency: stripe.String("eur"), UnitAmount: stripe.Int64(bk.AmountTotal),
			ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("slot")},
		}}},
	}
	session, err := testkit.StripeClient(t, fake.URL).CheckoutSessions.New(params)
	require.NoError(t, err)
	tx, err := b.db.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer tx.Rollback(context.Background()) //nolint:errcheck
	_, err = tx.Exec(t.Context(), "SELECT 1 FROM bookings WHERE id = $1 FOR UPDATE", bk.Id)
	require.NoError(t, err)

	done := make(chan *genapi.CancelBookingResponse, 1)
	go func() {
		resp, _ := b.client.CancelBookingWithResponse(context.Background(), bk.Id, &genapi.CancelBookingParams{})
		done <- resp
	}()
	require.Eventually(t, func() bool {
		return b.db.Count(t, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'`) > 0
	}, 10*time.Second, 10*time.Millisecond, "the cancel waits on the booking's row")
	_, err = db.New(tx).BookingAttachCheckoutSession(t.Context(), db.BookingAttachCheckoutSessionParams{
		ID: bk.Id, CheckoutSessionID: &session.ID, CheckoutURL: &session.URL, HoldExpiresAt: time.Now().Add(30 * time.Minute),
	})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(t.Context()))

	resp := <-done
	require.NotNil(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	require.Equal(t, "cancelled", b.booking(t, bk.Id).Status)
	require.Equal(t, "expired", fake.Session(session.ID).Status, "the session attached meanwhile cannot be paid")
}
