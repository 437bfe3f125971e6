package reconcile_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/internal/app/apptest"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

// storingStripe stands in front of a StripeFake with the one behaviour of
// Stripe these tests are about: the first answer to an idempotency key is
// stored for a day, a 500 included, and replayed to every request with that
// key. A failure is armed per path prefix: before (Stripe answers 500
// without doing anything) or after (the request takes effect at Stripe,
// then the answer is a 500: the caller cannot know).
type storingStripe struct {
	URL    string
	mu     sync.Mutex
	stored map[string]stored
	arm    map[string]string // path prefix → "before" | "after"
	posts  map[string]int    // POSTs that reached the fake, by path prefix
}

type stored struct {
	status int
	body   []byte
}

func newStoringStripe(t *testing.T, fake *testkit.StripeFake) *storingStripe {
	target, err := url.Parse(fake.URL)
	require.NoError(t, err)
	s := &storingStripe{stored: map[string]stored{}, arm: map[string]string{}, posts: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if r.Method != http.MethodPost || key == "" {
			proxy.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if prev, ok := s.stored[key]; ok {
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(prev.status)
			w.Write(prev.body) //nolint:errcheck
			return
		}
		failure := ""
		for prefix, when := range s.arm {
			if strings.HasPrefix(r.URL.Path, prefix) {
				failure = when
				delete(s.arm, prefix)
			}
		}
		rec := httptest.NewRecorder()
		if failure != "before" {
			for prefix := range map[string]bool{"/v1/refunds": true, "/v1/checkout/sessions": true} {
				if strings.HasPrefix(r.URL.Path, prefix) {
					s.posts[prefix]++
				}
			}
			proxy.ServeHTTP(rec, r)
		}
		answer := stored{status: rec.Code, body: rec.Body.Bytes()}
		if failure != "" {
			answer = stored{status: http.StatusInternalServerError, body: []byte(`{"error":{"type":"api_error","message":"An unknown error occurred."}}`)}
		}
		s.stored[key] = answer
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(answer.status)
		io.Copy(w, bytes.NewReader(answer.body)) //nolint:errcheck
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *storingStripe) failNext(pathPrefix, when string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arm[pathPrefix] = when
}

func setupStoring(t *testing.T) (*testBundle, *storingStripe) {
	t.Helper()
	tdb := testkit.NewDatabase(t)
	fake := testkit.NewStripeFake(t)
	s := newStoringStripe(t, fake)
	a := apptest.New(t, tdb.Pool, s.URL, nil)
	apptest.Start(t, a)
	return &testBundle{
		db: tdb, stripe: fake, app: a, processor: a.Processor, checkouts: a.Checkouts, reconciler: a.Reconciler,
		resource: testkit.CreateResource(t, tdb, nil),
	}, s
}

// refundPending is a paid booking whose slot was taken: its full refund is
// due, not yet requested. request is one attempt of the refund job
// (RefundWorker calls it, and River retries it after an error).
func (b *testBundle) refundPending(t *testing.T) (id string, pi string, request func() error) {
	t.Helper()
	bk, session := b.withSession(t, 10)
	b.stripe.Complete(session, "paid")
	pi = b.stripe.Session(session).PaymentIntent
	testkit.SetBooking(t, b.db, bk.ID, testkit.BookingOpts{PaymentIntentID: pi, Status: booking.RefundPending})
	return bk.ID.String(), pi, func() error { return b.processor.RequestRefund(t.Context(), bk.ID, pi) }
}

func refundOf(paymentIntentID string) *stripe.RefundParams {
	p := &stripe.RefundParams{PaymentIntent: stripe.String(paymentIntentID)}
	p.SetIdempotencyKey(testkit.RandomID("dashboard_"))
	return p
}

// TestStripeReplaysStored5xx_RefundReadBackThenNewKey: SPEC §2.2. Stripe
// replays a stored 500 to the same key for a day, so a retry under the old
// key never gets through. After the 500 slotpay reads the refunds back: a
// refund the failed attempt did make is noted as requested (never a second
// one); none means the next attempt goes out under a new key.
func TestStripeReplaysStored5xx_RefundReadBackThenNewKey(t *testing.T) {
	t.Parallel()

	t.Run("RefundMadeDespiteThe500_NotedNotRepeated", func(t *testing.T) {
		t.Parallel()
		b, s := setupStoring(t)
		id, _, request := b.refundPending(t)
		s.failNext("/v1/refunds", "after")
		require.Error(t, request())
		require.Len(t, b.stripe.Refunds(), 1, "the failed attempt took effect at Stripe")

		require.NoError(t, request(), "the retry")
		require.Len(t, b.stripe.Refunds(), 1, "never two refunds")
		require.Equal(t, 1, s.posts["/v1/refunds"], "read back, not sent again")
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_requested_at IS NOT NULL", id))
	})

	t.Run("NothingMade_RetriedUnderANewKey", func(t *testing.T) {
		t.Parallel()
		b, s := setupStoring(t)
		id, _, request := b.refundPending(t)
		s.failNext("/v1/refunds", "before")
		require.Error(t, request())
		require.Empty(t, b.stripe.Refunds())

		require.NoError(t, request(), "the retry")
		refunds := b.stripe.Refunds()
		require.Len(t, refunds, 1)
		require.Equal(t, "slotpay-refund-"+id+"-2", refunds[0].IdempotencyKey)
		require.Equal(t, 2, b.db.Count(t, "SELECT attempt FROM stripe_request_attempts WHERE operation = $1", "refund-"+id),
			"the attempt counter is kept in the database")
	})

	t.Run("ChargeAlreadyRefunded_Success", func(t *testing.T) {
		t.Parallel()
		b, _ := setupStoring(t)
		id, pi, request := b.refundPending(t)
		// Someone refunded the charge in Stripe's Dashboard meanwhile.
		sc := testkit.StripeClient(t, b.stripe.URL)
		_, err := sc.Refunds.New(refundOf(pi))
		require.NoError(t, err)

		require.NoError(t, request())
		require.Len(t, b.stripe.Refunds(), 1)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_requested_at IS NOT NULL", id))
	})
}

// TestStripeReplaysStored5xx_ExpireReadBackThenNewKey: the same for the
// expiry of a lapsed hold's session: after a stored 500 the session is read
// back and, still open, expired under a new key, so the slot is released.
func TestStripeReplaysStored5xx_ExpireReadBackThenNewKey(t *testing.T) {
	t.Parallel()
	b, s := setupStoring(t)
	bk, session := b.withSession(t, 10)
	b.lapse(t, bk.ID)
	s.failNext("/v1/checkout/sessions/"+session+"/expire", "before")
	require.Equal(t, 1, b.run(t).Failures)
	require.Equal(t, "open", b.stripe.Session(session).Status)

	require.Equal(t, 1, b.run(t).SessionsExpired)
	require.Equal(t, "expired", b.stripe.Session(session).Status)
	require.Equal(t, string(booking.Expired), b.status(t, bk.ID))
}
