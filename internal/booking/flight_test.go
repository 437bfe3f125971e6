package booking_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/testkit"
)

// TestQueuedTransitionThatFindsAnotherStatusCommitsNothing: in a flight
// that ends in COMMIT, a transition from a status the booking no longer has
// fails the whole transaction in PostgreSQL, so the statements before it
// (here a ledger row) are not committed without it.
func TestQueuedTransitionThatFindsAnotherStatusCommitsNothing(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	b := testkit.CreateBooking(t, tdb, testkit.BookingOpts{})
	stale := b
	stale.Status = string(booking.Processing)

	for _, tc := range []struct {
		name string
		read db.Booking
	}{{"stale read", stale}, {"current read", b}} {
		conn, err := tdb.Pool.Acquire(t.Context())
		require.NoError(t, err)
		var f database.Flight
		f.Begin()
		f.Queue(func(q *db.Queries) error {
			return q.AdvisoryLockXact(t.Context(), "flight-test")
		})
		f.Queue(func(q *db.Queries) error {
			_, err := q.PaymentEventInsert(t.Context(), db.PaymentEventInsertParams{
				StripeEventID: "evt_" + tc.name, Type: "checkout.session.completed", APIVersion: "2023-10-16",
				StripeCreatedAt: b.CreatedAt, Source: "webhook", Payload: []byte(`{}`),
			})
			return err
		})
		booking.QueueTransition(t.Context(), &f, tc.read, booking.Confirmed, booking.EventCause("checkout.session.completed", "evt_"+tc.name), booking.Change{})
		f.Commit()
		tx, err := f.Send(t.Context(), conn)
		if tc.read.Status == b.Status {
			require.NoError(t, err)
			require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM payment_events WHERE stripe_event_id = $1", "evt_"+tc.name))
			require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND status = 'confirmed'", b.ID))
		} else {
			require.True(t, errors.Is(err, booking.ErrStatusChanged), "got %v", err)
			require.Equal(t, byte('E'), conn.Conn().PgConn().TxStatus(), "the COMMIT did not run")
			require.NoError(t, tx.Rollback(t.Context()))
			require.Equal(t, 0, tdb.Count(t, "SELECT count(*) FROM payment_events WHERE stripe_event_id = $1", "evt_"+tc.name))
			require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND status = 'pending_payment'", b.ID))
		}
		conn.Release()
	}
}

// TestTransitionFromAStatusTheBookingLacksFails: outside a flight too,
// BookingTransition from a status the booking does not have changes nothing
// and fails (booking_moved), as ErrStatusChanged.
func TestTransitionFromAStatusTheBookingLacksFails(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	b := testkit.CreateBooking(t, tdb, testkit.BookingOpts{})
	stale := b
	stale.Status = string(booking.Processing)
	tx, err := tdb.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(t.Context()) }()
	_, err = booking.Transition(t.Context(), database.New(tx), stale, booking.Confirmed, booking.EventCause("checkout.session.completed", "evt_stale"))
	require.ErrorIs(t, err, booking.ErrStatusChanged)
	require.NoError(t, tx.Rollback(t.Context()))
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND status = $2", b.ID, b.Status))
	require.Equal(t, 0, tdb.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", b.ID))
}
