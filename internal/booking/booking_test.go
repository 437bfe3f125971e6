package booking_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

// TestExpireLapsedHolds_ThroughTheStateMachine: the reconciler's bulk lapse
// expires exactly the holds booking.Decide calls lapsed, more than a batch
// of them, each recorded as a transition with cause hold_lapsed; a hold with
// a session, one still running and a paid booking are left alone.
func TestExpireLapsedHolds_ThroughTheStateMachine(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	r := testkit.CreateResource(t, tdb, nil)
	base := testkit.TomorrowAt(0)
	slot := func(i int) testkit.BookingOpts {
		return testkit.BookingOpts{Resource: &r, StartsAt: base.Add(time.Duration(i) * time.Hour), EndsAt: base.Add(time.Duration(i+1) * time.Hour)}
	}
	past := time.Now().Add(-time.Minute)

	const lapsed = 130 // more than one batch
	for i := range lapsed {
		o := slot(i)
		o.HoldExpiresAt = past
		testkit.CreateBooking(t, tdb, o)
	}
	withSession := slot(lapsed)
	withSession.HoldExpiresAt, withSession.CheckoutSessionID = past, testkit.RandomID("cs_test_")
	running := slot(lapsed + 1)
	paid := slot(lapsed + 2)
	paid.HoldExpiresAt, paid.Status = past, booking.Confirmed
	kept := []string{
		testkit.CreateBooking(t, tdb, withSession).ID.String(),
		testkit.CreateBooking(t, tdb, running).ID.String(),
		testkit.CreateBooking(t, tdb, paid).ID.String(),
	}

	expired, err := booking.ExpireLapsedHolds(t.Context(), tdb.Pool, time.Now())
	require.NoError(t, err)
	require.Len(t, expired, lapsed)
	require.Equal(t, lapsed, tdb.Count(t, "SELECT count(*) FROM bookings WHERE status = 'expired'"))
	require.Equal(t, lapsed, tdb.Count(t, `SELECT count(*) FROM booking_status_changes
		WHERE from_status = 'pending_payment' AND to_status = 'expired' AND cause = 'hold_lapsed'`))
	require.Equal(t, 0, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id::text = ANY($1) AND status = 'expired'", kept))

	again, err := booking.ExpireLapsedHolds(t.Context(), tdb.Pool, time.Now())
	require.NoError(t, err)
	require.Empty(t, again, "nothing lapses twice")
}

// TestExpireLapsedHolds_RacingNewBookings: the reconciler's bulk lapse and
// new bookings that release the same lapsed holds run at once without
// deadlock or double work: every lapsed hold is expired exactly once (one
// history row), and every new booking gets its slot.
func TestExpireLapsedHolds_RacingNewBookings(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	r := testkit.CreateResource(t, tdb, nil)
	const slots = 8
	var lapsed []string
	for i := range slots {
		b := testkit.CreateBooking(t, tdb, testkit.BookingOpts{
			Resource: &r, StartsAt: testkit.TomorrowAt(9 + i), EndsAt: testkit.TomorrowAt(10 + i),
			HoldExpiresAt: time.Now().Add(-time.Minute),
		})
		lapsed = append(lapsed, b.ID.String())
	}

	errs := make(chan error, slots+1)
	go func() {
		_, err := booking.ExpireLapsedHolds(t.Context(), tdb.Pool, time.Now())
		errs <- err
	}()
	for i := range slots {
		go func() {
			_, _, err := booking.Hold(t.Context(), tdb.Pool, booking.Request{
				ResourceID:    r.ID,
				Slot:          booking.Slot{StartsAt: testkit.TomorrowAt(9 + i), EndsAt: testkit.TomorrowAt(10 + i)},
				CustomerEmail: "grace@example.com",
				CustomerName:  "Grace Hopper",
			}, 15*time.Minute)
			errs <- err
		}()
	}
	for range slots + 1 {
		require.NoError(t, <-errs)
	}
	require.Equal(t, slots, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id::text = ANY($1) AND status = 'expired'", lapsed))
	require.Equal(t, slots, tdb.Count(t, `SELECT count(*) FROM booking_status_changes
		WHERE booking_id::text = ANY($1) AND to_status = 'expired' AND cause = 'hold_lapsed'`, lapsed), "each expired once")
	require.Equal(t, slots, tdb.Count(t, "SELECT count(*) FROM bookings WHERE customer_email = 'grace@example.com' AND status = 'pending_payment'"))
}
