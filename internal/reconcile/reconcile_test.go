package reconcile_test

import (
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/checkout"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/reconcile"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// testBundle is a reconciler over its own database, talking to a Stripe
// stand-in that remembers sessions, refunds and events.
type testBundle struct {
	db         testkit.TestDB
	stripe     *testkit.StripeFake
	processor  *payment.Processor
	checkouts  *checkout.Service
	reconciler *reconcile.Reconciler
	resource   db.Resource
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	tdb := testkit.NewDatabase(t)
	fake := testkit.NewStripeFake(t)
	b := &testBundle{db: tdb, stripe: fake, resource: testkit.CreateResource(t, tdb, nil)}
	b.processor, b.checkouts, b.reconciler = wire(t, tdb.Pool, fake)
	return b
}

// wire builds the parts of one slotpay instance over pool.
func wire(t *testing.T, pool *pgxpool.Pool, fake *testkit.StripeFake) (*payment.Processor, *checkout.Service, *reconcile.Reconciler) {
	return wireURL(t, pool, fake.URL)
}

// wireURL is wire against the Stripe API at base.
func wireURL(t *testing.T, pool *pgxpool.Pool, base string) (*payment.Processor, *checkout.Service, *reconcile.Reconciler) {
	logger := slog.New(slog.DiscardHandler)
	sc := testkit.StripeClient(t, base)
	processor := payment.NewProcessor(pool, sc, false, logger, nil)
	public, err := url.Parse("http://localhost:8080")
	require.NoError(t, err)
	checkouts := checkout.NewService(pool, sc, processor, public, 30*time.Minute, logger, nil)
	return processor, checkouts, reconcile.New(pool, sc, checkouts, processor, logger, nil)
}

func (b *testBundle) hold(t *testing.T, hour int) db.Booking {
	t.Helper()
	bk, _, err := booking.Hold(t.Context(), b.db.Pool, booking.Request{
		ResourceID:    b.resource.ID,
		Slot:          booking.Slot{StartsAt: testkit.TomorrowAt(hour), EndsAt: testkit.TomorrowAt(hour + 1)},
		CustomerEmail: "ada@example.com",
		CustomerName:  "Ada",
	}, 15*time.Minute)
	require.NoError(t, err)
	return bk
}

// withSession holds a slot and starts its checkout at the fake Stripe.
func (b *testBundle) withSession(t *testing.T, hour int) (db.Booking, string) {
	t.Helper()
	bk := b.hold(t, hour)
	s, err := b.checkouts.Start(t.Context(), bk.ID)
	require.NoError(t, err)
	return bk, s.ID
}

func (b *testBundle) lapse(t *testing.T, id uuid.UUID) {
	t.Helper()
	testkit.LapseHold(t, b.db, id)
}

func (b *testBundle) status(t *testing.T, id uuid.UUID) string {
	t.Helper()
	bk, err := db.New(b.db.Pool).BookingGetByID(t.Context(), id)
	require.NoError(t, err)
	return bk.Status
}

func (b *testBundle) run(t *testing.T) reconcile.Summary {
	t.Helper()
	s, err := b.reconciler.Run(t.Context())
	require.NoError(t, err)
	require.False(t, s.Skipped)
	return s
}

func TestReconcile_HoldLapsedWithoutSession_Expired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lapsed, fresh := b.hold(t, 10), b.hold(t, 12)
	b.lapse(t, lapsed.ID)

	s := b.run(t)
	require.Equal(t, 1, s.HoldsExpired)
	require.Equal(t, "expired", b.status(t, lapsed.ID))
	require.Equal(t, "pending_payment", b.status(t, fresh.ID))
	require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'expired' AND cause = 'hold_lapsed'", lapsed.ID))
	require.Zero(t, b.stripe.Calls("", "/v1/"), "no Stripe call for a hold without a session")
}

func TestReconcile_HoldLapsedWithSession_ExpiredAtStripeFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, session := b.withSession(t, 10)
	require.Zero(t, b.run(t).SessionsExpired, "an unlapsed hold is left alone")
	b.lapse(t, bk.ID)

	s := b.run(t)
	require.Equal(t, 1, s.SessionsExpired)
	require.Equal(t, "expired", b.stripe.Session(session).Status)
	require.Equal(t, "expired", b.status(t, bk.ID))
	require.Equal(t, 1, b.db.Count(t, `SELECT count(*) FROM payment_events
		WHERE source = 'reconcile' AND type = 'checkout.session.expired' AND outcome = 'applied' AND booking_id = $1`, bk.ID))

	// A second run finds nothing left to do.
	require.Equal(t, reconcile.Summary{}, b.run(t))
	require.Equal(t, 1, b.stripe.Calls("POST", "/v1/checkout/sessions/"+session+"/expire"))
}

func TestReconcile_SessionCompletedWhenExpiring_CompletionAppliedInstead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, session := b.withSession(t, 10)
	b.lapse(t, bk.ID)
	// The customer paid just before the hold lapsed; the webhook is late.
	b.stripe.Complete(session, "paid")

	s := b.run(t)
	require.Equal(t, 1, s.SessionsCompleted)
	require.Equal(t, "confirmed", b.status(t, bk.ID))
	require.Equal(t, "complete", b.stripe.Session(session).Status)

	// Then the late webhook arrives: recorded, nothing changes.
	res, err := b.processor.Process(t.Context(), testkit.CheckoutSessionCompleted(session, bk.ID.String(), bk.AmountTotal, bk.Currency).JSON(t), payment.SourceWebhook)
	require.NoError(t, err)
	require.Equal(t, booking.Ignored, res.Outcome)
	require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", bk.ID))
}

func TestReconcile_ProcessingForADay_SettledFromTheSession(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		intentStatus string
		want         string
	}{
		"AsyncSucceeded_Confirmed":     {"succeeded", "confirmed"},
		"AsyncFailed_PaymentFailed":    {"requires_payment_method", "payment_failed"},
		"StillSettling_StaysUnchanged": {"processing", "processing"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			bk, session := b.withSession(t, 10)
			b.stripe.Complete(session, "unpaid")
			_, err := b.checkouts.Settle(t.Context(), session)
			require.NoError(t, err)
			require.Equal(t, "processing", b.status(t, bk.ID))

			b.stripe.SetPaymentIntentStatus(session, c.intentStatus)
			require.Zero(t, b.run(t).ProcessingChecked, "younger than a day: left to the webhooks")
			testkit.SetBooking(t, b.db, bk.ID, testkit.BookingOpts{UpdatedAt: time.Now().Add(-25 * time.Hour)})
			require.Equal(t, 1, b.run(t).ProcessingChecked)
			require.Equal(t, c.want, b.status(t, bk.ID))
		})
	}
}

func TestReconcile_RefundPending_RefundRequestedUntilStripeAccepts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, session := b.withSession(t, 10)
	b.stripe.Complete(session, "paid")
	// The hold was cancelled before the payment arrived, and someone else
	// took the slot.
	testkit.SetBooking(t, b.db, bk.ID, testkit.BookingOpts{Status: booking.Cancelled})
	b.hold(t, 10)
	b.stripe.FailNext("/v1/refunds", 500, "")

	ev := testkit.CheckoutSessionCompleted(session, bk.ID.String(), bk.AmountTotal, bk.Currency)
	ev.Object["payment_intent"] = b.stripe.Session(session).PaymentIntent
	_, err := b.processor.Process(t.Context(), ev.JSON(t), payment.SourceWebhook)
	require.NoError(t, err)
	require.Equal(t, "refund_pending", b.status(t, bk.ID))
	require.Empty(t, b.stripe.Refunds(), "Stripe failed the first request")

	require.Equal(t, 1, b.run(t).RefundsRequested)
	refunds := b.stripe.Refunds()
	require.Len(t, refunds, 1)
	// The first attempt failed: the retry read the refunds back, found
	// none, and sent the next attempt under its own key.
	require.Equal(t, "slotpay-refund-"+bk.ID.String()+"-2", refunds[0].IdempotencyKey)
	require.Equal(t, bk.AmountTotal, refunds[0].Amount)

	require.Zero(t, b.run(t).RefundsRequested, "requested once Stripe accepted it")
	require.Len(t, b.stripe.Refunds(), 1)
}

// TestReconcile_TwoInstancesAtOnce_ActOnce: reconcilers of two instances run
// against one database at the same time; each lapsed session is expired at
// Stripe once and each booking changes once.
func TestReconcile_TwoInstancesAtOnce_ActOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var sessions []string
	var bookings []uuid.UUID
	for hour := 9; hour < 15; hour++ {
		bk, s := b.withSession(t, hour)
		b.lapse(t, bk.ID)
		sessions, bookings = append(sessions, s), append(bookings, bk.ID)
	}
	other, err := pgxpool.New(t.Context(), b.db.URL)
	require.NoError(t, err)
	t.Cleanup(other.Close)
	_, _, second := wire(t, other, b.stripe)

	var wg sync.WaitGroup
	var mu sync.Mutex
	expired := 0
	for _, r := range []*reconcile.Reconciler{b.reconciler, second, b.reconciler, second} {
		wg.Go(func() {
			s, err := r.Run(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			expired += s.SessionsExpired
			mu.Unlock()
		})
	}
	wg.Wait()

	require.Equal(t, len(sessions), expired)
	for i, s := range sessions {
		require.Equal(t, 1, b.stripe.Calls("POST", "/v1/checkout/sessions/"+s+"/expire"), s)
		require.Equal(t, "expired", b.status(t, bookings[i]))
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'expired'", bookings[i]))
	}
}

func TestReconcile_AnotherInstanceHoldsTheLock_Skipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk := b.hold(t, 10)
	b.lapse(t, bk.ID)

	conn, err := b.db.Pool.Acquire(t.Context())
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(t.Context(), "SELECT pg_advisory_lock($1)", int64(0x736c6f7470617901))
	require.NoError(t, err)

	s, err := b.reconciler.Run(t.Context())
	require.NoError(t, err)
	require.True(t, s.Skipped)
	require.Equal(t, "pending_payment", b.status(t, bk.ID))

	_, err = conn.Exec(t.Context(), "SELECT pg_advisory_unlock($1)", int64(0x736c6f7470617901))
	require.NoError(t, err)
	require.Equal(t, 1, b.run(t).HoldsExpired)
}

func TestReplayEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	delivered, missed := b.hold(t, 10), b.hold(t, 12)
	evDelivered := testkit.CheckoutSessionCompleted("cs_test_delivered", delivered.ID.String(), delivered.AmountTotal, "eur")
	evDelivered.ID = "evt_delivered"
	evMissed := testkit.CheckoutSessionCompleted("cs_test_missed", missed.ID.String(), missed.AmountTotal, "eur")
	evMissed.ID = "evt_missed"
	evMissed.Created = time.Now().Add(-2 * time.Hour)
	evOld := testkit.CheckoutSessionCompleted("cs_test_old", uuid.NewString(), 100, "eur")
	evOld.ID = "evt_too_old"
	evOld.Created = time.Now().Add(-100 * time.Hour)

	_, err := b.processor.Process(t.Context(), evDelivered.JSON(t), payment.SourceWebhook)
	require.NoError(t, err)
	for _, ev := range []testkit.Event{evDelivered, evMissed, evOld} {
		b.stripe.AddEvent(ev.JSON(t))
	}

	s, err := b.reconciler.Replay(t.Context(), 72*time.Hour)
	require.NoError(t, err)
	require.Equal(t, reconcile.ReplaySummary{Listed: 2, AlreadyRecorded: 1, Applied: 1}, s)
	require.Equal(t, "confirmed", b.status(t, missed.ID))
	require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM payment_events WHERE stripe_event_id = 'evt_missed' AND source = 'replay' AND outcome = 'applied'"))
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM payment_events WHERE stripe_event_id = 'evt_too_old'"))

	// Replaying again changes nothing.
	s, err = b.reconciler.Replay(t.Context(), 72*time.Hour)
	require.NoError(t, err)
	require.Equal(t, reconcile.ReplaySummary{Listed: 2, AlreadyRecorded: 2}, s)
	require.Equal(t, 2, b.db.Count(t, "SELECT count(*) FROM payment_events"))
}

// TestReconcile_AppliesUnmatchedEventsWhoseBookingIsKnown: SPEC §5, first
// bullet. An event kept unmatched whose booking became known by a path that
// applied nothing waiting (here the test factory links the payment intent)
// is applied by the next run, once.
func TestReconcile_AppliesUnmatchedEventsWhoseBookingIsKnown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk := b.hold(t, 10)
	pi := testkit.RandomID("pi_test_")
	refund := testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency)
	refund.ID = testkit.RandomID("evt_test_")
	res, err := b.processor.Process(t.Context(), refund.JSON(t), payment.SourceWebhook)
	require.NoError(t, err)
	require.Equal(t, booking.Unmatched, res.Outcome)

	testkit.SetBooking(t, b.db, bk.ID, testkit.BookingOpts{
		CheckoutSessionID: testkit.RandomID("cs_test_"), PaymentIntentID: pi, Status: booking.Confirmed,
	})
	s, err := b.reconciler.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, s.UnmatchedApplied)
	require.Equal(t, string(booking.Refunded), testkit.SetBooking(t, b.db, bk.ID, testkit.BookingOpts{}).Status)
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM payment_events WHERE outcome = 'unmatched'"))

	s, err = b.reconciler.Run(t.Context())
	require.NoError(t, err)
	require.Zero(t, s.UnmatchedApplied, "applied once")
}
