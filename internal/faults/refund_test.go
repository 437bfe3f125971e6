//go:build faults

package faults

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/app/apptest"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

// refundWait covers River rescuing the killed process's running job: the
// refund worker's one-minute timeout, the rescuer's 30-second round, and the
// dead leader's lease running out first.
const refundWait = 4 * time.Minute

// TestRefundCommittedThenProcessKilled_RequestedExactlyOnce: a late payment
// whose slot is gone commits refund_pending together with its refund job;
// the serve process is SIGKILLed while that job is at Stripe, and a new
// process takes its place. The refund is requested, and Stripe holds exactly
// one, whether the killed request never reached Stripe or Stripe carried it
// out and the process died before hearing the answer (the idempotency key
// makes the retry the same request).
func TestRefundCommittedThenProcessKilled_RequestedExactlyOnce(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		// hold keeps the refund request from being answered until the
		// process is gone; it returns when the request arrives.
		hold func(*testkit.StripeFake) <-chan struct{}
		// calls is how many refund requests Stripe carried out: the
		// killed one only if it got past the hold.
		calls int
	}{
		// Held until its caller is gone: it never reaches Stripe.
		"KilledBeforeStripeSawTheRequest": {func(f *testkit.StripeFake) <-chan struct{} {
			reached, _ := f.Hold("/v1/refunds")
			return reached
		}, 1},
		// Carried out, then the answer is held until its caller is gone.
		"KilledBeforeStripesAnswerArrived": {func(f *testkit.StripeFake) <-chan struct{} {
			reached, _ := f.HoldAnswer("/v1/refunds")
			return reached
		}, 2},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tdb := testkit.NewDatabase(t)
			fake := testkit.NewStripeFake(t)
			bookingID, event := latePaymentSlotTaken(t, tdb, fake)
			reached := c.hold(fake)
			srv := newInstanceWithStripe(t, tdb.URL, fake.URL)

			code, body, err := post(t.Context(), http.DefaultClient, srv.url()+"/v1/webhooks/stripe", event)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, string(body))
			require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND status = 'refund_pending'", bookingID))

			<-reached // the job's Stripe call is in flight
			srv.kill()
			require.Zero(t, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_requested_at IS NOT NULL", bookingID))
			srv.start()

			deadline := time.Now().Add(refundWait)
			for tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_requested_at IS NOT NULL", bookingID) == 0 {
				require.True(t, time.Now().Before(deadline), "refund not requested after %s:\n%s", refundWait, srv.stdout)
				time.Sleep(100 * time.Millisecond)
			}
			refunds := fake.Refunds()
			require.Len(t, refunds, 1, "exactly one refund at Stripe")
			require.Equal(t, "slotpay-refund-"+bookingID.String(), refunds[0].IdempotencyKey)
			require.Equal(t, c.calls, fake.Calls("POST", "/v1/refunds"))
			require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM river_job WHERE kind = 'refund'"), "one job per booking")
		})
	}
}

// latePaymentSlotTaken prepares, in this process, a booking paid at Stripe
// after its hold was cancelled and the slot taken by another booking; it
// returns the booking and the completed session's event.
func latePaymentSlotTaken(t *testing.T, tdb testkit.TestDB, fake *testkit.StripeFake) (uuid.UUID, []byte) {
	t.Helper()
	a := apptest.New(t, tdb.Pool, fake.URL, nil)
	res := testkit.CreateResource(t, tdb, nil)
	req := booking.Request{
		ResourceID:    res.ID,
		Slot:          booking.Slot{StartsAt: testkit.TomorrowAt(10), EndsAt: testkit.TomorrowAt(11)},
		CustomerEmail: "ada@example.com",
		CustomerName:  "Ada",
	}
	bk, _, err := booking.Hold(t.Context(), tdb.Pool, req, 15*time.Minute)
	require.NoError(t, err)
	session, err := a.Checkouts.Start(t.Context(), bk.ID)
	require.NoError(t, err)
	fake.Complete(session.ID, "paid")
	tdb.Exec(t, "UPDATE bookings SET status = 'cancelled' WHERE id = $1", bk.ID)
	_, _, err = booking.Hold(t.Context(), tdb.Pool, req, 15*time.Minute)
	require.NoError(t, err)

	ev := testkit.CheckoutSessionCompleted(session.ID, bk.ID.String(), bk.AmountTotal, bk.Currency)
	ev.Object["payment_intent"] = fake.Session(session.ID).PaymentIntent
	return bk.ID, ev.JSON(t)
}
