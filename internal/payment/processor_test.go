package payment_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/baseservice"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/testkit"
)

// roundTrips counts what pgx sends and waits for: each query outside a
// batch, and each batch (a flight), as one round trip; and the statements,
// each of which PostgreSQL parses or binds and runs.
type roundTrips struct{ n, statements atomic.Int64 }

func (r *roundTrips) reset() { r.n.Store(0); r.statements.Store(0) }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	r.statements.Add(1)
	return ctx
}
func (*roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	r.statements.Add(1)
}
func (*roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TestConfirmationTakesTwoRoundTrips: a checkout.session.completed that
// confirms its booking is one transaction of two flights (issue 12): lock
// and record, then transition, record and commit; seven statements in all
// (BEGIN; the serialising locks, the ledger row, the booking's lock; the
// transition, the outcome, COMMIT), each of which costs PostgreSQL CPU time.
// Its duplicate is one flight and a rollback, and changes nothing.
func TestConfirmationTakesTwoRoundTrips(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	cfg, err := pgxpool.ParseConfig(tdb.URL)
	require.NoError(t, err)
	trips := &roundTrips{}
	cfg.ConnConfig.Tracer = trips
	// One connection: the statements it prepared for the first event are
	// cached for the second, as on a server that has run a while.
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	p := payment.NewProcessor(&baseservice.Archetype{
		Config: config.Config{StripeSecretKey: "sk_test_123"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Pool:   pool,
	}, nil)

	resource := testkit.CreateResource(t, tdb, nil)
	confirm := func(hour int) (db.Booking, []byte) {
		b := testkit.CreateBooking(t, tdb, testkit.BookingOpts{
			Resource: &resource, StartsAt: testkit.TomorrowAt(hour), EndsAt: testkit.TomorrowAt(hour + 1),
			CheckoutSessionID: testkit.RandomID("cs_test_"),
		})
		raw := testkit.CheckoutSessionCompleted(*b.CheckoutSessionID, b.ID.String(), b.AmountTotal, b.Currency).JSON(t)
		res, err := p.Process(t.Context(), raw, payment.SourceWebhook)
		require.NoError(t, err)
		require.Equal(t, booking.Applied, res.Outcome)
		require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND status = 'confirmed'", b.ID))
		require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", b.ID))
		require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM payment_events WHERE booking_id = $1 AND outcome = 'applied' AND payload IS NOT NULL", b.ID))
		return b, raw
	}
	confirm(10)

	trips.reset()
	b, raw := confirm(12)
	require.EqualValues(t, 2, trips.n.Load(), "round trips of a confirmation")
	require.EqualValues(t, 7, trips.statements.Load(), "statements of a confirmation")

	// A row lock leaves the locker's id in xmax, even once rolled back.
	xmax := func() (x string) {
		require.NoError(t, tdb.Pool.QueryRow(t.Context(), "SELECT xmax::text FROM bookings WHERE id = $1", b.ID).Scan(&x))
		return x
	}
	before := xmax()
	trips.reset()
	res, err := p.Process(t.Context(), raw, payment.SourceWebhook)
	require.NoError(t, err)
	require.True(t, res.Duplicate)
	require.EqualValues(t, 2, trips.n.Load(), "round trips of a duplicate: its flight and the rollback")
	require.EqualValues(t, 5, trips.statements.Load(), "statements of a duplicate: BEGIN, locks, ledger row, lock, ROLLBACK")
	require.Equal(t, before, xmax(), "the duplicate locked the booking")
	require.Equal(t, 2, tdb.Count(t, "SELECT count(*) FROM booking_status_changes WHERE to_status = 'confirmed'"))
}
