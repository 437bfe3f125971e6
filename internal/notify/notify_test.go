package notify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/app"
	"github.com/slotpay/slotpay/internal/app/apptest"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/managetoken"
	"github.com/slotpay/slotpay/internal/notify"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type testBundle struct {
	db     testkit.TestDB
	smtp   *testkit.SMTPServer
	app    *app.App
	server *httptest.Server // slotpay's own handler (the Stripe webhook)
}

func setup(t *testing.T) *testBundle { return setupWith(t, nil) }

// setupWith logs to log when it is given, and then sends no e-mail over SMTP:
// without SMTP_URL, e-mails go to the log.
func setupWith(t *testing.T, log *testkit.Output) *testBundle {
	t.Helper()
	tdb := testkit.NewDatabase(t)
	smtp := testkit.NewSMTPServer(t)
	srv := httptest.NewUnstartedServer(nil)
	public, err := url.Parse("http://" + srv.Listener.Addr().String())
	require.NoError(t, err)
	opts := &apptest.Opts{Metrics: true, Configure: func(c *config.Config) {
		c.PublicBaseURL = public
		if log == nil {
			host, _, _ := strings.Cut(smtp.Addr, ":")
			c.SMTP = &config.SMTP{Addr: smtp.Addr, Host: host}
		}
	}}
	if log != nil {
		opts.Logger = slog.New(slog.NewJSONHandler(log, nil))
	}
	a := apptest.New(t, tdb.Pool, testkit.StripeMock(t), opts)
	h, err := a.Handler()
	require.NoError(t, err)
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	apptest.Start(t, a)
	return &testBundle{db: tdb, smtp: smtp, app: a, server: srv}
}

// pendingWithSession is a pending_payment booking whose Checkout Session
// exists, at hour offset hour from tomorrow 00:00 UTC on resource r.
func (b *testBundle) pendingWithSession(t *testing.T, r *db.Resource, hour int, email string) db.Booking {
	t.Helper()
	start := testkit.TomorrowAt(0).Add(time.Duration(hour) * time.Hour)
	bk := testkit.CreateBooking(t, b.db, testkit.BookingOpts{
		Resource: r, StartsAt: start, EndsAt: start.Add(time.Hour), CheckoutSessionID: testkit.RandomID("cs_test_"),
	})
	salt := make([]byte, 16)
	copy(salt, bk.ID[:])
	b.db.Exec(t, "UPDATE bookings SET customer_email = $2, manage_token_salt = $3, manage_token_hash = $4 WHERE id = $1",
		bk.ID, email, salt, managetoken.Hash("x"))
	return bk
}

// pay delivers the signed checkout.session.completed Stripe would send for
// bk to slotpay's webhook, and returns the HTTP status.
func (b *testBundle) pay(t *testing.T, bk db.Booking) int {
	t.Helper()
	ev := testkit.CheckoutSessionCompleted(*bk.CheckoutSessionID, bk.ID.String(), bk.AmountTotal, bk.Currency)
	return b.deliverStripe(t, ev.JSON(t))
}

func (b *testBundle) deliverStripe(t *testing.T, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.server.URL+"/v1/webhooks/stripe", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", testkit.SignatureHeader(body, apptest.WebhookSecret, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func (b *testBundle) endpoint(t *testing.T, rawURL string, types ...string) db.WebhookEndpoint {
	t.Helper()
	e, err := notify.CreateEndpoint(t.Context(), b.db.Pool, audit.CommandLine, rawURL, types)
	require.NoError(t, err)
	return e
}

// parts splits a multipart message into its leaves by content type.
func parts(t *testing.T, m testkit.Mail) map[string][]byte {
	t.Helper()
	p, err := m.Parts()
	require.NoError(t, err)
	return p
}

func TestConfirmedBookingGetsAnEmailWithManageLinkAndCalendarEntry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := testkit.CreateResource(t, b.db, nil)
	bk := b.pendingWithSession(t, &r, 10, "grace@example.com")
	require.Equal(t, http.StatusOK, b.pay(t, bk))

	var got []testkit.Mail
	testkit.WaitFor(t, "the confirmation e-mail", func() bool {
		got = b.smtp.To("grace@example.com")
		return len(got) > 0
	})
	m := got[0]
	require.Contains(t, m.Header.Get("Subject"), "Booking confirmed")
	require.NotEmpty(t, m.Header.Get("Message-ID"))
	p := parts(t, m)
	require.Contains(t, p, "text/plain")
	require.Contains(t, p, "text/html")
	require.Contains(t, p, "text/calendar")

	tokens, err := managetoken.NewIssuer(apptest.Config(nil).ManageTokenKey)
	require.NoError(t, err)
	salt := make([]byte, 16)
	copy(salt, bk.ID[:])
	link := notify.ManageURL(mustURL(t, b.server.URL), bk.ID, tokens.Derive(bk.ID, salt))
	require.Contains(t, string(p["text/plain"]), link, "the manage link carries the customer's token")
	require.Contains(t, string(p["text/html"]), strings.ReplaceAll(link, "&", "&amp;")[:60])

	ics := string(p["text/calendar"])
	require.Contains(t, ics, "METHOD:REQUEST\r\n")
	require.Contains(t, ics, "UID:"+bk.ID.String()+"@slotpay\r\n")
	require.Contains(t, ics, "SEQUENCE:0\r\n")
	require.Contains(t, ics, "DTSTART:"+bk.StartsAt.UTC().Format("20060102T150405Z")+"\r\n")
}

// TestEmailsInTheLogCarryNoManageToken: without SMTP_URL the e-mail is
// written to the log, whose readers are not the customer: its manage link
// keeps the booking id and drops the token.
func TestEmailsInTheLogCarryNoManageToken(t *testing.T) {
	t.Parallel()
	var log testkit.Output
	b := setupWith(t, &log)
	r := testkit.CreateResource(t, b.db, nil)
	bk := b.pendingWithSession(t, &r, 10, "lin@example.com")
	require.Equal(t, http.StatusOK, b.pay(t, bk))
	testkit.WaitFor(t, "the logged confirmation e-mail", func() bool {
		return b.db.Count(t, "SELECT count(*) FROM notification_attempts WHERE channel = 'email' AND outcome = 'logged'") == 1
	})
	tokens, err := managetoken.NewIssuer(apptest.Config(nil).ManageTokenKey)
	require.NoError(t, err)
	salt := make([]byte, 16)
	copy(salt, bk.ID[:])
	var logged testkit.Mail
	for line := range strings.Lines(log.String()) {
		var entry struct{ Message string }
		require.NoError(t, json.Unmarshal([]byte(line), &entry))
		if strings.HasPrefix(entry.Message, "From: ") {
			logged.Raw = []byte(entry.Message)
		}
	}
	require.NotEmpty(t, logged.Raw, "the e-mail is in the log")
	text := string(parts(t, logged)["text/plain"])
	require.Contains(t, text, "booking_id="+bk.ID.String()+"#token="+notify.RedactedToken)
	require.NotContains(t, text, tokens.Derive(bk.ID, salt))
	require.NotContains(t, log.String(), tokens.Derive(bk.ID, salt))
	require.Empty(t, b.smtp.To("lin@example.com"))
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

// TestInvariant8_EveryConfirmedBookingGetsAnEmail_1000Bookings: a thousand bookings paid
// through signed Stripe webhooks to the real handler, e-mailed over SMTP to a
// real server: exactly one e-mail per confirmed booking, none lost, none
// doubled.
func TestInvariant8_EveryConfirmedBookingGetsAnEmail_1000Bookings(t *testing.T) {
	t.Parallel()
	const n = 1000
	b := setup(t)
	r := testkit.CreateResource(t, b.db, nil)
	bookings := make([]db.Booking, n)
	for i := range bookings {
		bookings[i] = b.pendingWithSession(t, &r, i, fmt.Sprintf("customer%04d@example.com", i))
	}
	work := make(chan db.Booking)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 4 {
		wg.Go(func() {
			for bk := range work {
				if code := b.pay(t, bk); code != http.StatusOK {
					errs <- fmt.Errorf("booking %s: webhook answered %d", bk.ID, code)
				}
			}
		})
	}
	for _, bk := range bookings {
		work <- bk
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, n, b.db.Count(t, "SELECT count(*) FROM bookings WHERE status = 'confirmed'"))

	testkit.WaitFor(t, "an e-mail for every confirmed booking", func() bool {
		return len(b.smtp.Messages()) >= n
	})
	seen := map[string]int{}
	ids := map[string]bool{}
	for _, m := range b.smtp.Messages() {
		require.Len(t, m.To, 1)
		seen[m.To[0]]++
		ids[m.Header.Get("Message-ID")] = true
	}
	for i := range n {
		require.Equal(t, 1, seen[fmt.Sprintf("customer%04d@example.com", i)], "customer %d", i)
	}
	require.Len(t, ids, n, "one Message-ID per notification")
}

// TestInvariant8_NoNotificationForATransitionThatRolledBack: a confirmation whose
// transaction fails after the transition (here: a statement that fails
// right after it) leaves no notification and no e-mail, while a committed
// one beside it is e-mailed.
func TestInvariant8_NoNotificationForATransitionThatRolledBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := testkit.CreateResource(t, b.db, nil)
	rolledBack := b.pendingWithSession(t, &r, 10, "rolled.back@example.com")
	committed := b.pendingWithSession(t, &r, 12, "committed@example.com")

	injected := errors.New("injected failure after the transition")
	err := pgx.BeginFunc(t.Context(), b.db.Pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		locked, err := q.BookingGetByID(t.Context(), rolledBack.ID)
		require.NoError(t, err)
		if _, err := booking.Transition(t.Context(), q, locked, booking.Confirmed, booking.Cause{Name: "test_rollback"}); err != nil {
			return err
		}
		return injected
	})
	require.ErrorIs(t, err, injected)

	// The real path, with a failure injected after the transition in the
	// same transaction: the webhook's ledger update fails, so the handler
	// answers 500 and rolls everything back.
	b.db.Exec(t, `CREATE FUNCTION fail_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected failure after the transition'; END $$`)
	b.db.Exec(t, `CREATE TRIGGER fail_outcome BEFORE UPDATE OF outcome ON payment_events
		FOR EACH ROW WHEN (NEW.booking_id IS NOT NULL) EXECUTE FUNCTION fail_outcome()`)
	require.Equal(t, http.StatusInternalServerError, b.pay(t, rolledBack))
	require.Equal(t, "pending_payment", bookingStatus(t, b, rolledBack.ID))
	b.db.Exec(t, "DROP TRIGGER fail_outcome ON payment_events")

	require.Equal(t, http.StatusOK, b.pay(t, committed))
	testkit.WaitFor(t, "the committed booking's e-mail", func() bool { return len(b.smtp.To("committed@example.com")) == 1 })
	testkit.WaitFor(t, "every notify job worked", func() bool {
		return b.db.Count(t, "SELECT count(*) FROM river_job WHERE kind LIKE 'notify%' AND state <> 'completed'") == 0
	})
	require.Empty(t, b.smtp.To("rolled.back@example.com"))
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM notifications WHERE booking_id = $1", rolledBack.ID))
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM river_job WHERE args->'booking'->>'id' = $1", rolledBack.ID.String()))
}

func bookingStatus(t *testing.T, b *testBundle, id uuid.UUID) string {
	t.Helper()
	bk, err := database.New(b.db.Pool).BookingGetByID(t.Context(), id)
	require.NoError(t, err)
	return bk.Status
}

// TestWebhookDeliveredAtLeastOnceToAnEndpointThatFailsFirst: the endpoint
// answers 500 to its first three tries; River retries with backoff until it
// answers 2xx. Every attempt carries the same event id and body, signed as
// Stripe signs (verified by a standard-library receiver), and is logged.
func TestWebhookDeliveredAtLeastOnceToAnEndpointThatFailsFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := testkit.NewReceiver(t, 3)
	e := b.endpoint(t, rcv.URL+"/hooks", notify.TypeConfirmed)
	rcv.SetSecret(e.Secret)

	r := testkit.CreateResource(t, b.db, nil)
	bk := b.pendingWithSession(t, &r, 10, "ada@example.com")
	require.Equal(t, http.StatusOK, b.pay(t, bk))

	var events map[string]testkit.ReceivedEvent
	testkit.WaitFor(t, "the delivery after three 500s", func() bool {
		events, _, _, _ = rcv.Seen()
		return len(events) == 1
	})
	_, attempts, requests, bad := rcv.Seen()
	require.Zero(t, bad, "every attempt verifies")
	require.Equal(t, 4, requests)
	for id, ev := range events {
		require.Equal(t, 4, attempts[id], "the same event id on every attempt")
		require.Equal(t, notify.TypeConfirmed, ev.Type)
		var body struct {
			ID      string `json:"id"`
			Created int64  `json:"created"`
			Data    struct {
				Booking struct {
					ID     string `json:"id"`
					Status string `json:"status"`
				} `json:"booking"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(ev.Body, &body))
		require.Equal(t, bk.ID.String(), body.Data.Booking.ID)
		require.Equal(t, "confirmed", body.Data.Booking.Status)
	}
	// The worker records an attempt after the receiver has answered it.
	testkit.WaitFor(t, "four attempts logged", func() bool {
		return b.db.Count(t, "SELECT count(*) FROM notification_attempts WHERE channel = 'webhook'") == 4
	})
	require.Equal(t, 3, b.db.Count(t, "SELECT count(*) FROM notification_attempts WHERE channel = 'webhook' AND outcome = 'failed' AND status_code = 500"))
}

// TestEmailRetriedAfterTheSMTPServerRefuses: a temporary SMTP failure is
// retried; the message sent at last is the one refused (same Message-ID).
func TestEmailRetriedAfterTheSMTPServerRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.smtp.RefuseNext(2)
	r := testkit.CreateResource(t, b.db, nil)
	bk := b.pendingWithSession(t, &r, 10, "ada@example.com")
	require.Equal(t, http.StatusOK, b.pay(t, bk))
	testkit.WaitFor(t, "the e-mail after two refusals", func() bool { return len(b.smtp.To("ada@example.com")) == 1 })
	require.Equal(t, 2, b.db.Count(t, "SELECT count(*) FROM notification_attempts WHERE channel = 'email' AND outcome = 'failed'"))
	var id uuid.UUID
	require.NoError(t, b.db.Pool.QueryRow(t.Context(), "SELECT id FROM notifications WHERE booking_id = $1", bk.ID).Scan(&id))
	require.Contains(t, b.smtp.To("ada@example.com")[0].Header.Get("Message-ID"), id.String())
}

// TestDisputeNotifiesTheMerchant: a dispute changes no status, and the
// merchant still hears booking.disputed, once per new dispute status.
func TestDisputeNotifiesTheMerchant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := testkit.NewReceiver(t, 0)
	e := b.endpoint(t, rcv.URL, notify.TypeDisputed)
	rcv.SetSecret(e.Secret)
	r := testkit.CreateResource(t, b.db, nil)
	bk := b.pendingWithSession(t, &r, 10, "ada@example.com")
	ev := testkit.CheckoutSessionCompleted(*bk.CheckoutSessionID, bk.ID.String(), bk.AmountTotal, bk.Currency)
	require.Equal(t, http.StatusOK, b.deliverStripe(t, ev.JSON(t)))
	pi := ev.Object["payment_intent"].(string)
	for _, status := range []string{"needs_response", "needs_response", "won"} {
		d := testkit.Dispute("charge.dispute.updated", pi, bk.AmountTotal, bk.Currency, status)
		require.Equal(t, http.StatusOK, b.deliverStripe(t, d.JSON(t)))
	}
	testkit.WaitFor(t, "two booking.disputed events", func() bool {
		events, _, _, _ := rcv.Seen()
		return len(events) == 2
	})
	events, _, _, _ := rcv.Seen()
	for _, ev := range events {
		require.Equal(t, notify.TypeDisputed, ev.Type)
	}
	require.Equal(t, "confirmed", bookingStatus(t, b, bk.ID))
}

func TestDecide(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		from, to booking.Status
		cause    string
		typ      string
		email    notify.EmailKind
	}{
		{booking.PendingPayment, booking.Confirmed, "checkout.session.completed", notify.TypeConfirmed, notify.EmailConfirmed},
		{booking.Confirmed, booking.Confirmed, "rescheduled", notify.TypeRescheduled, notify.EmailRescheduled},
		{booking.Processing, booking.NeedsReview, "checkout.session.async_payment_succeeded", notify.TypeNeedsReview, ""},
		{booking.Confirmed, booking.Cancelled, "customer_cancel", notify.TypeCancelled, notify.EmailCancelled},
		{booking.PendingPayment, booking.Cancelled, "customer_cancel", "", ""},
		{booking.Confirmed, booking.Refunded, "charge.refunded", notify.TypeRefunded, notify.EmailRefunded},
		{booking.PendingPayment, booking.Expired, "hold_lapsed", "", ""},
	} {
		t.Run(fmt.Sprintf("%s_%s_%s", tc.from, tc.to, tc.cause), func(t *testing.T) {
			typ, email := notify.Decide(tc.from, tc.to, tc.cause)
			require.Equal(t, tc.typ, typ)
			require.Equal(t, tc.email, email)
		})
	}
}

// TestRotatedSecretStillSignsForADay: after a rotation a receiver that has
// not deployed the new secret yet still verifies deliveries (a second v1
// under the old secret), and one with the new secret does too.
func TestRotatedSecretStillSignsForADay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	oldRcv := testkit.NewReceiver(t, 0)
	e := b.endpoint(t, oldRcv.URL, notify.TypeConfirmed)
	oldRcv.SetSecret(e.Secret)
	rotated, err := notify.RotateEndpointSecret(t.Context(), b.db.Pool, audit.CommandLine, e.ID)
	require.NoError(t, err)
	require.NotEqual(t, e.Secret, rotated.Secret)

	r := testkit.CreateResource(t, b.db, nil)
	require.Equal(t, http.StatusOK, b.pay(t, b.pendingWithSession(t, &r, 10, "ada@example.com")))
	testkit.WaitFor(t, "the delivery verified under the old secret", func() bool {
		events, _, _, _ := oldRcv.Seen()
		return len(events) == 1
	})
	var body []byte
	for _, ev := range func() map[string]testkit.ReceivedEvent { ev, _, _, _ := oldRcv.Seen(); return ev }() {
		body = ev.Body
	}
	now := time.Now()
	header := notify.Sign(body, now, rotated.Secret, e.Secret)
	require.True(t, testkit.VerifySlotpaySignature(header, body, rotated.Secret, now), "the new secret verifies")
	require.True(t, testkit.VerifySlotpaySignature(header, body, e.Secret, now), "the old secret verifies")
	require.False(t, testkit.VerifySlotpaySignature(header, body, "whsec_other", now))
}

// TestDeliveriesNeverReachInternalAddresses: an https endpoint whose address
// is private (or link-local: the cloud metadata service) is refused at dial
// time, and the attempt is logged as failed; nothing is sent.
func TestDeliveriesNeverReachInternalAddresses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.endpoint(t, "https://169.254.169.254/latest/meta-data", notify.TypeConfirmed)
	b.endpoint(t, "https://10.1.2.3/hooks", notify.TypeConfirmed)
	r := testkit.CreateResource(t, b.db, nil)
	require.Equal(t, http.StatusOK, b.pay(t, b.pendingWithSession(t, &r, 10, "ada@example.com")))
	testkit.WaitFor(t, "both attempts refused", func() bool {
		return b.db.Count(t, `SELECT count(DISTINCT endpoint_id) FROM notification_attempts
			WHERE channel = 'webhook' AND outcome = 'failed' AND error LIKE '%does not deliver to%'`) == 2
	})
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM notification_attempts WHERE channel = 'webhook' AND outcome = 'delivered'"))
}

// TestCustomerEmailsFollowTheBookingAfterPayment: a reschedule (confirmed →
// confirmed, cause rescheduled) sends the new time with the calendar entry's
// SEQUENCE one higher; a cancel of the paid booking says what is refunded and
// cancels the entry; the refund is announced too. The causes are the ones
// the customer's own actions record (issue 14).
func TestCustomerEmailsFollowTheBookingAfterPayment(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := testkit.CreateResource(t, b.db, nil)
	bk := b.pendingWithSession(t, &r, 10, "ada@example.com")
	require.Equal(t, http.StatusOK, b.pay(t, bk))
	testkit.WaitFor(t, "the confirmation", func() bool { return len(b.smtp.To("ada@example.com")) == 1 })

	transition := func(to booking.Status, cause string, ch booking.Change) {
		t.Helper()
		require.NoError(t, pgx.BeginFunc(t.Context(), b.db.Pool, func(tx pgx.Tx) error {
			q := database.New(tx)
			locked, err := q.BookingGetByIDForUpdate(t.Context(), bk.ID)
			require.NoError(t, err)
			_, err = booking.TransitionWith(t.Context(), q, locked, to, booking.Cause{Name: cause}, ch)
			return err
		}))
	}
	newStart := bk.StartsAt.Add(3 * time.Hour)
	transition(booking.Confirmed, booking.CauseRescheduled, booking.Change{Slot: &booking.Slot{StartsAt: newStart, EndsAt: newStart.Add(time.Hour)}})
	testkit.WaitFor(t, "the reschedule e-mail", func() bool { return len(b.smtp.To("ada@example.com")) == 2 })
	moved := parts(t, b.smtp.To("ada@example.com")[1])
	require.Contains(t, string(moved["text/plain"]), "now takes place")
	require.Contains(t, string(moved["text/calendar"]), "SEQUENCE:1\r\n")
	require.Contains(t, string(moved["text/calendar"]), "DTSTART:"+newStart.UTC().Format("20060102T150405Z")+"\r\n",
		"the snapshot is the booking as the transaction committed it")

	refund := bk.AmountTotal / 2
	transition(booking.Cancelled, booking.CauseCustomerCancelPaid, booking.Change{RefundAmount: &refund, CancelledAfterPayment: true})
	testkit.WaitFor(t, "the cancellation e-mail", func() bool { return len(b.smtp.To("ada@example.com")) == 3 })
	cancelled := b.smtp.To("ada@example.com")[2]
	require.Contains(t, cancelled.Header.Get("Subject"), "Booking cancelled")
	require.Contains(t, string(parts(t, cancelled)["text/plain"]), notify.Money(refund, bk.Currency)+" is refunded",
		"the cancel's e-mail says what the policy refunds")
	ics := string(parts(t, cancelled)["text/calendar"])
	require.Contains(t, ics, "METHOD:CANCEL\r\n")
	require.Contains(t, ics, "SEQUENCE:2\r\n", "a cancel supersedes the last revision")
	require.Contains(t, ics, "UID:"+bk.ID.String()+"@slotpay\r\n")

	transition(booking.Refunded, "charge.refunded", booking.Change{})
	testkit.WaitFor(t, "the refund e-mail", func() bool { return len(b.smtp.To("ada@example.com")) == 4 })
	require.Contains(t, b.smtp.To("ada@example.com")[3].Header.Get("Subject"), "Refund issued")
	require.Equal(t, 4, b.db.Count(t, "SELECT count(*) FROM notifications WHERE booking_id = $1", bk.ID))
}
