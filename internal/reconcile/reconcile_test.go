package reconcile_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/app"
	"github.com/slotpay/slotpay/internal/app/apptest"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/checkout"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/reconcile"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// testBundle is a slotpay instance over its own database, working its jobs,
// talking to a Stripe stand-in that remembers sessions, refunds and events.
type testBundle struct {
	db         testkit.TestDB
	stripe     *testkit.StripeFake
	app        *app.App
	processor  *payment.Processor
	checkouts  *checkout.Service
	reconciler *reconcile.Reconciler
	resource   db.Resource
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	tdb := testkit.NewDatabase(t)
	fake := testkit.NewStripeFake(t)
	a := apptest.New(t, tdb.Pool, fake.URL, nil)
	apptest.Start(t, a)
	return &testBundle{
		db: tdb, stripe: fake, app: a, processor: a.Processor, checkouts: a.Checkouts, reconciler: a.Reconciler,
		resource: testkit.CreateResource(t, tdb, nil),
	}
}

// instance starts another slotpay instance on b's database and Stripe, with
// a pool of its own whose connections PostgreSQL knows by name (so that a
// test can kill them), taking part in the periodic reconciler.
func (b *testBundle) instance(t *testing.T, name string, interval time.Duration) *app.App {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(b.db.URL)
	require.NoError(t, err)
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	a := apptest.New(t, pool, b.stripe.URL, &apptest.Opts{
		Configure: func(c *config.Config) { c.ReconcileInterval = interval },
		App:       app.Options{Periodic: true, JobsID: name},
	})
	apptest.Start(t, a)
	return a
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

// TestRefund_StripeFailsFirst_RetriedUntilAccepted: the refund a late payment
// needs is a job committed with the decision; when Stripe fails the request,
// River retries it with the same idempotency key until Stripe accepts, and
// Stripe holds one refund.
func TestRefund_StripeFailsFirst_RetriedUntilAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk := b.latePaymentSlotTaken(t, func() { b.stripe.FailNext("/v1/refunds", 500, "") })
	require.Equal(t, "refund_pending", b.status(t, bk.ID))

	testkit.WaitFor(t, "the refund request", func() bool { return b.refundRequested(t, bk.ID) })
	require.Equal(t, 2, b.stripe.Calls("POST", "/v1/refunds"), "the failed attempt, then the retry")
	refunds := b.stripe.Refunds()
	require.Len(t, refunds, 1)
	require.Equal(t, "slotpay-refund-"+bk.ID.String(), refunds[0].IdempotencyKey)
	require.Equal(t, bk.AmountTotal, refunds[0].Amount)
	var state string
	var attempt int
	require.NoError(t, b.db.Pool.QueryRow(t.Context(), "SELECT state, attempt FROM river_job WHERE kind = 'refund'").Scan(&state, &attempt))
	require.Equal(t, 2, attempt)

	require.Zero(t, b.run(t).RefundsRequested, "the reconciler's net finds nothing to do")
	require.Len(t, b.stripe.Refunds(), 1)
}

// TestRefund_DecidedInARolledBackTransaction_NeverRequested: the job is
// inserted in the deciding transaction, so a decision that rolls back leaves
// no job and Stripe never hears of it.
func TestRefund_DecidedInARolledBackTransaction_NeverRequested(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk := b.hold(t, 10)
	errRollback := errors.New("rolled back on purpose")
	err := pgx.BeginFunc(t.Context(), b.db.Pool, func(tx pgx.Tx) error {
		if err := payment.EnqueueRefund(t.Context(), b.app.Jobs, tx, bk.ID, "pi_rolled_back"); err != nil {
			return err
		}
		require.Equal(t, 1, countIn(t, tx, "SELECT count(*) FROM river_job WHERE kind = 'refund'"), "visible inside the transaction")
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM river_job WHERE kind = 'refund'"))

	// A pass later (and any job that could have run meanwhile) never asks.
	b.run(t)
	require.Zero(t, b.stripe.Calls("", "/v1/refunds"))
}

// TestRefund_NetReplacesADiscardedJob: a refund job River gave up on (after
// weeks of failures) is enqueued again by the next pass.
func TestRefund_NetReplacesADiscardedJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The job is found discarded, as when it used up its attempts, before
	// it ever ran: River fetches no job of this database meanwhile because
	// the instance is stopped first.
	b.stop(t)
	bk := b.latePaymentSlotTaken(t, nil)
	b.db.Exec(t, "UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE kind = 'refund'")
	require.NoError(t, b.app.Start(context.WithoutCancel(t.Context())))

	require.Equal(t, 1, b.run(t).RefundsRequested)
	testkit.WaitFor(t, "the refund request", func() bool { return b.refundRequested(t, bk.ID) })
	require.Len(t, b.stripe.Refunds(), 1)
	require.Zero(t, b.run(t).RefundsRequested)
}

// latePaymentSlotTaken makes a booking refund_pending the way it happens: its
// hold was cancelled before the payment arrived, someone else took the slot,
// then the completed session's event came. beforeEvent runs just before it.
func (b *testBundle) latePaymentSlotTaken(t *testing.T, beforeEvent func()) db.Booking {
	t.Helper()
	bk, session := b.withSession(t, 10)
	b.stripe.Complete(session, "paid")
	// The hold was cancelled before the payment arrived, and someone else
	// took the slot.
	testkit.SetBooking(t, b.db, bk.ID, testkit.BookingOpts{Status: booking.Cancelled})
	b.hold(t, 10)
	if beforeEvent != nil {
		beforeEvent()
	}
	ev := testkit.CheckoutSessionCompleted(session, bk.ID.String(), bk.AmountTotal, bk.Currency)
	ev.Object["payment_intent"] = b.stripe.Session(session).PaymentIntent
	_, err := b.processor.Process(t.Context(), ev.JSON(t), payment.SourceWebhook)
	require.NoError(t, err)
	return bk
}

func (b *testBundle) refundRequested(t *testing.T, id uuid.UUID) bool {
	return b.db.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_requested_at IS NOT NULL", id) == 1
}

func countIn(t *testing.T, tx pgx.Tx, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, tx.QueryRow(t.Context(), sql).Scan(&n))
	return n
}

// TestReconcile_OnDemandRunsAtOnce_ActOnce: passes asked for at the same
// time by two instances over one database never overlap: each lapsed
// session is expired at Stripe once and each booking changes once.
func TestReconcile_OnDemandRunsAtOnce_ActOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var sessions []string
	var bookings []uuid.UUID
	for hour := 9; hour < 15; hour++ {
		bk, s := b.withSession(t, hour)
		b.lapse(t, bk.ID)
		sessions, bookings = append(sessions, s), append(bookings, bk.ID)
	}
	second := b.instance(t, "slotpay-second", time.Hour)

	var wg sync.WaitGroup
	for _, r := range []*reconcile.Reconciler{b.reconciler, second.Reconciler, b.reconciler, second.Reconciler} {
		wg.Go(func() {
			if _, err := r.Run(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// A Run that found a pass running returned at once; that pass may still
	// be going.
	testkit.WaitFor(t, "every lapsed hold expired", func() bool {
		return b.db.Count(t, "SELECT count(*) FROM bookings WHERE status = 'expired'") == len(bookings)
	})
	for i, s := range sessions {
		require.Equal(t, 1, b.stripe.Calls("POST", "/v1/checkout/sessions/"+s+"/expire"), s)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'expired'", bookings[i]))
	}
}

// TestReconcile_APassIsRunning_OnDemandSkipped: while one pass runs, an
// on-demand run reports skipped instead of starting a second.
func TestReconcile_APassIsRunning_OnDemandSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, _ := b.withSession(t, 10)
	b.lapse(t, bk.ID)
	reached, release := b.stripe.Hold("/v1/checkout/sessions/")

	first := make(chan reconcile.Summary, 1)
	go func() {
		s, err := b.reconciler.Run(context.WithoutCancel(t.Context()))
		assert.NoError(t, err)
		first <- s
	}()
	<-reached // the pass is at Stripe
	s, err := b.reconciler.Run(t.Context())
	require.NoError(t, err)
	require.True(t, s.Skipped)

	release()
	require.Equal(t, 1, (<-first).SessionsExpired)
	require.Equal(t, "expired", b.status(t, bk.ID))
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

// TestRefund_ChargeAlreadyRefunded_NotRetried: when Stripe answers that the
// charge is refunded already (by other means), the job ends at once instead
// of retrying for weeks, and the reconciler's net leaves the booking alone;
// charge.refunded moves it on.
func TestRefund_ChargeAlreadyRefunded_NotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk := b.latePaymentSlotTaken(t, func() {
		// Someone refunds the payment in the Dashboard first.
		params := &stripe.RefundParams{PaymentIntent: stripe.String(b.stripe.Sessions()[0].PaymentIntent)}
		_, err := b.app.Arch.Stripe.Refunds.New(params)
		require.NoError(t, err)
	})
	testkit.WaitFor(t, "the refund noted", func() bool { return b.refundRequested(t, bk.ID) })
	require.Zero(t, b.run(t).RefundsRequested)
	require.Len(t, b.stripe.Refunds(), 1, "the Dashboard's")
	require.Equal(t, 2, b.stripe.Calls("POST", "/v1/refunds"), "the Dashboard's, then the job's one attempt")
	require.Equal(t, "refund_pending", b.status(t, bk.ID))
}

// TestRefund_BookingRefundedBeforeTheJobRuns_NoStripeCall: a job that finds
// its booking no longer refund_pending (charge.refunded came first) asks
// Stripe nothing.
func TestRefund_BookingRefundedBeforeTheJobRuns_NoStripeCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.stop(t)
	bk := b.latePaymentSlotTaken(t, nil)
	pi := b.stripe.Sessions()[0].PaymentIntent
	_, err := b.processor.Process(t.Context(), testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency).JSON(t), payment.SourceWebhook)
	require.NoError(t, err)
	require.Equal(t, "refunded", b.status(t, bk.ID))

	require.NoError(t, b.app.Start(context.WithoutCancel(t.Context())))
	testkit.WaitFor(t, "the refund job to complete", func() bool {
		return b.db.Count(t, "SELECT count(*) FROM river_job WHERE kind = 'refund' AND state = 'completed'") == 1
	})
	require.Zero(t, b.stripe.Calls("", "/v1/refunds"))
}
