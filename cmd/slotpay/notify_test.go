package main

import (
	"context"
	"net/http"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/notify"
	"github.com/slotpay/slotpay/internal/testkit"
)

// TestInvariant8_WebhookDeliveredAtLeastOnceAcrossSIGKILL: a confirmation is committed,
// the merchant's endpoint answers 500 to its first two tries, and the server
// is killed with SIGKILL between them. A new server process finishes the
// job: the endpoint receives the event, signed as Stripe signs (checked by a
// standard-library receiver), under one event id on every attempt; the
// customer's e-mail arrives over SMTP.
func TestInvariant8_WebhookDeliveredAtLeastOnceAcrossSIGKILL(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	smtp := testkit.NewSMTPServer(t)
	rcv := testkit.NewReceiver(t, 2)
	e, err := notify.CreateEndpoint(t.Context(), tdb.Pool, audit.CommandLine, rcv.URL+"/slotpay", []string{notify.TypeConfirmed})
	require.NoError(t, err)
	rcv.SetSecret(e.Secret)

	extra := []string{"SMTP_URL=" + smtp.URL, "NOTIFY_RETRY_BASE=2s"}
	base, cmd, out, _ := startServe(t, tdb, extra...)
	t.Cleanup(func() {
		if t.Failed() {
			rows, _ := tdb.Pool.Query(context.Background(), "SELECT kind, state, attempt, errors::text FROM river_job ORDER BY id")
			for rows != nil && rows.Next() {
				var kind, state, errs string
				var attempt int
				_ = rows.Scan(&kind, &state, &attempt, &errs)
				t.Logf("job %s %s %d %s", kind, state, attempt, errs)
			}
			t.Logf("first server:\n%s", out)
		}
	})
	bk := testkit.CreateBooking(t, tdb, testkit.BookingOpts{CheckoutSessionID: testkit.RandomID("cs_test_")})
	body := testkit.CheckoutSessionCompleted(*bk.CheckoutSessionID, bk.ID.String(), bk.AmountTotal, bk.Currency).JSON(t)
	require.Equal(t, http.StatusOK, deliverStripeEvent(t, base, body))

	// Killed once the first try has failed and its retry waits: the job is
	// in the database, not in the process.
	testkit.WaitFor(t, "the first delivery to fail and wait for its retry", func() bool {
		// River keeps a retry due within seconds available, scheduled
		// later, rather than retryable.
		return tdb.Count(t, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery' AND attempt = 1
			AND state IN ('retryable', 'available') AND scheduled_at > now()`) == 1
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	_, _, requests, _ := rcv.Seen()
	require.Equal(t, 1, requests, "one try before the kill\n%s", out)

	startServe(t, tdb, extra...)
	var events map[string]testkit.ReceivedEvent
	testkit.WaitFor(t, "the delivery after the restart", func() bool {
		events, _, _, _ = rcv.Seen()
		return len(events) == 1
	})
	_, attempts, requests, bad := rcv.Seen()
	require.Zero(t, bad, "every try verifies")
	require.Equal(t, 3, requests)
	for id, ev := range events {
		require.Equal(t, notify.TypeConfirmed, ev.Type)
		require.Equal(t, 3, attempts[id], "one event id across the kill")
	}
	testkit.WaitFor(t, "the confirmation e-mail", func() bool { return len(smtp.To("ada@example.com")) >= 1 })
}
