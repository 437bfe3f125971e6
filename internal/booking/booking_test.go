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
