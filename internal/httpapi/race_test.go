package httpapi_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

// TestEventsNeverLoseARace_CompletionAndRefundAtOnce: SPEC §2.1 ("events
// never lose a race") and §8.5. Stripe delivers, at the same instant, the
// completion that links a payment intent to its booking and the full refund
// of that intent, for many bookings at once (retries bunching up after an
// outage), with a dispute of the same payment. Whatever the interleaving,
// every refund and dispute is applied: no booking is left confirmed with its
// money refunded at Stripe, and no event stays unmatched once its booking is
// known.
func TestEventsNeverLoseARace_CompletionRefundAndDisputeAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 50

	type pair struct{ completion, refund, dispute []byte }
	pairs := make([]pair, n)
	for i := range pairs {
		bk := testkit.CreateBooking(t, b.db, testkit.BookingOpts{CheckoutSessionID: testkit.RandomID("cs_test_race_")})
		ev := withID(testkit.CheckoutSessionCompleted(*bk.CheckoutSessionID, bk.ID.String(), bk.AmountTotal, bk.Currency))
		pi := ev.Object["payment_intent"].(string)
		pairs[i] = pair{
			completion: ev.JSON(t),
			refund:     withID(testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency)).JSON(t),
			dispute:    withID(testkit.DisputeCreated(pi, bk.AmountTotal, bk.Currency)).JSON(t),
		}
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	statuses := make(chan int, 3*n)
	for _, p := range pairs {
		for _, payload := range [][]byte{p.completion, p.refund, p.dispute} {
			wg.Go(func() {
				<-start
				resp := b.deliver(t, payload)
				statuses <- resp.StatusCode
			})
		}
	}
	close(start)
	wg.Wait()
	close(statuses)
	for code := range statuses {
		require.Equal(t, http.StatusOK, code)
	}

	lost := b.db.Count(t, "SELECT count(*) FROM bookings WHERE status = 'confirmed'")
	t.Logf("%d of %d racing completion/refund pairs left the booking confirmed", lost, n)
	require.Zero(t, lost, "bookings left confirmed with their money refunded")
	require.Equal(t, n, b.db.Count(t, "SELECT count(*) FROM bookings WHERE status = 'refunded'"))
	require.Equal(t, n, b.db.Count(t, "SELECT count(*) FROM bookings WHERE disputed AND dispute_status = 'needs_response'"))
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM payment_events WHERE outcome = 'unmatched'"))
}
