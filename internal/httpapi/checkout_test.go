package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

// stripeRecorder sits in front of stripe-mock and keeps what slotpay sent
// to Stripe, so a test can check the parameters of each call.
type stripeRecorder struct {
	mu       sync.Mutex
	requests []recordedRequest
}

type recordedRequest struct {
	Path           string
	IdempotencyKey string
	Form           url.Values
}

func newStripeRecorder(t *testing.T) (*stripeRecorder, string) {
	target, err := url.Parse(testkit.StripeMock(t))
	require.NoError(t, err)
	rec := &stripeRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		form, err := url.ParseQuery(string(body))
		require.NoError(t, err)
		rec.mu.Lock()
		rec.requests = append(rec.requests, recordedRequest{Path: r.URL.Path, IdempotencyKey: r.Header.Get("Idempotency-Key"), Form: form})
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func (r *stripeRecorder) calls(path string) []recordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recordedRequest
	for _, c := range r.requests {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

func TestCheckout(t *testing.T) {
	t.Parallel()

	t.Run("ExpiresAtAtLeast30MinutesAfterStripeReceivesIt", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		var received atomic.Int64
		stamped := newInterceptor(t, fake.URL, func(path string) {
			if path == "/v1/checkout/sessions" {
				received.Store(time.Now().UnixNano())
			}
		})
		b := setup(t, withStripe(stamped))
		bk := b.hold(t, at(10), at(12))
		co := b.checkout(t, bk.Id)
		sent := time.Unix(fake.Sessions()[0].ExpiresAt, 0)
		require.True(t, sent.Equal(co.ExpiresAt))
		require.GreaterOrEqual(t, sent.Sub(time.Unix(0, received.Load())), 30*time.Minute+2*time.Minute,
			"Stripe refuses less than 30 minutes; slotpay keeps a margin on top")
		require.True(t, b.booking(t, bk.Id).HoldExpiresAt.Equal(sent), "the hold is what was sent")

		// A reserved expires_at now too close to Stripe's minimum (a
		// retry minutes later) is not sent again: the call reserves a
		// fresh value, under a fresh key.
		again := b.hold(t, at(13), at(14))
		tooClose := time.Now().Add(30*time.Minute + 90*time.Second).Truncate(time.Second)
		b.db.Exec(t, `UPDATE bookings SET checkout_expires_at = $2, hold_expires_at = $2 WHERE id = $1`, again.Id, tooClose)
		co = b.checkout(t, again.Id)
		require.False(t, co.ExpiresAt.Equal(tooClose))
		require.GreaterOrEqual(t, time.Unix(fake.Sessions()[1].ExpiresAt, 0).Sub(time.Unix(0, received.Load())), 30*time.Minute+2*time.Minute)
	})

	t.Run("ARetryAfterAStripeFailureGetsAFreshKey", func(t *testing.T) {
		t.Parallel()
		// Faithful: Stripe stores the 500 under its key for a day.
		fake := testkit.NewStripeFake(t)
		b := setup(t, withStripe(fake.URL))
		bk := b.hold(t, at(10), at(12))
		fake.FailNext("/v1/checkout/sessions", http.StatusInternalServerError, "")
		resp, err := b.client.CreateCheckoutWithResponse(t.Context(), bk.Id, &genapi.CreateCheckoutParams{})
		require.NoError(t, err)
		requireError(t, http.StatusBadGateway, "payment_provider_error", resp.StatusCode(), resp.Body)
		// At once, so the fresh expires_at is likely the same second: the
		// attempt in the key still makes the key new.
		co := b.checkout(t, bk.Id)
		sessions := fake.Sessions()
		require.Len(t, sessions, 1)
		require.Equal(t, co.CheckoutSessionId, sessions[0].ID)
		require.Equal(t, "slotpay-checkout-"+bk.Id.String()+"-2-"+strconv.FormatInt(co.ExpiresAt.Unix(), 10), sessions[0].IdempotencyKey)
	})

	t.Run("CreatesSessionPricedFromTheDatabase", func(t *testing.T) {
		t.Parallel()
		rec, base := newStripeRecorder(t)
		b := setup(t, withStripe(base))
		bk := b.hold(t, at(10), at(12))
		before := time.Now()
		co := b.checkout(t, bk.Id)

		require.NotEmpty(t, co.CheckoutUrl)
		require.Regexp(t, `^cs_test_`, co.CheckoutSessionId)
		// CHECKOUT_TTL plus a safety margin for the round trips before Stripe
		// receives it (SPEC §2.2).
		require.WithinRange(t, co.ExpiresAt, before.Add(checkoutTTL-time.Second), time.Now().Add(checkoutTTL+5*time.Minute))

		calls := rec.calls("/v1/checkout/sessions")
		require.Len(t, calls, 1)
		f := calls[0].Form
		id := bk.Id.String()
		require.Equal(t, "payment", f.Get("mode"))
		require.Equal(t, id, f.Get("client_reference_id"))
		require.Equal(t, id, f.Get("metadata[booking_id]"))
		require.Equal(t, id, f.Get("payment_intent_data[metadata][booking_id]"))
		require.Equal(t, "ada@example.com", f.Get("customer_email"))
		require.Equal(t, "1", f.Get("line_items[0][quantity]"))
		require.Equal(t, "9000", f.Get("line_items[0][price_data][unit_amount]"))
		require.Equal(t, "eur", f.Get("line_items[0][price_data][currency]"))
		require.Equal(t, strconv.FormatInt(co.ExpiresAt.Unix(), 10), f.Get("expires_at"))
		require.Equal(t, b.url+"/booking/success?booking_id="+id+"&session_id={CHECKOUT_SESSION_ID}", f.Get("success_url"))
		require.Equal(t, b.url+"/booking/cancel?booking_id="+id, f.Get("cancel_url"))
		require.Equal(t, "slotpay-checkout-"+id+"-1-"+strconv.FormatInt(co.ExpiresAt.Unix(), 10), calls[0].IdempotencyKey)

		// The hold now ends with the session: the expires_at slotpay sent,
		// not the fixture stripe-mock echoes back.
		row := b.booking(t, bk.Id)
		require.True(t, row.HoldExpiresAt.Equal(co.ExpiresAt), "%s != %s", row.HoldExpiresAt, co.ExpiresAt)
		require.Equal(t, co.CheckoutSessionId, *row.CheckoutSessionID)
		got, err := b.client.GetBookingWithResponse(t.Context(), bk.Id)
		require.NoError(t, err)
		require.Equal(t, co.CheckoutSessionId, *got.JSON200.CheckoutSessionId)
	})

	t.Run("ReusesTheOpenSession", func(t *testing.T) {
		t.Parallel()
		rec, base := newStripeRecorder(t)
		b := setup(t, withStripe(base))
		bk := b.hold(t, at(10), at(12))
		first := b.checkout(t, bk.Id)
		second := b.checkout(t, bk.Id)
		require.Equal(t, first, second)
		require.Len(t, rec.calls("/v1/checkout/sessions"), 1)
	})

	t.Run("ConcurrentCallsSendStripeOneRequest", func(t *testing.T) {
		t.Parallel()
		rec, base := newStripeRecorder(t)
		b := setup(t, withStripe(base))
		bk := b.hold(t, at(10), at(12))
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				resp, err := b.client.CreateCheckoutWithResponse(t.Context(), bk.Id, &genapi.CreateCheckoutParams{})
				if err == nil && resp.StatusCode() != http.StatusOK {
					t.Errorf("checkout: %d %s", resp.StatusCode(), resp.Body)
				}
			})
		}
		wg.Wait()
		// Every call that reached Stripe sent the same idempotency key and
		// parameters, so Stripe answers them with one session.
		keys := map[string]bool{}
		for _, c := range rec.calls("/v1/checkout/sessions") {
			keys[c.IdempotencyKey] = true
		}
		require.Len(t, keys, 1)
	})

	t.Run("ErrInvalidState", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		confirmed := b.hold(t, at(10), at(11))
		testkit.SetBooking(t, b.db, confirmed.Id, testkit.BookingOpts{Status: booking.Confirmed})
		lapsed := b.hold(t, at(12), at(13))
		testkit.LapseHold(t, b.db, lapsed.Id)

		for name, id := range map[string]uuid.UUID{"NotPendingPayment": confirmed.Id, "HoldLapsed": lapsed.Id} {
			t.Run(name, func(t *testing.T) {
				resp, err := b.client.CreateCheckoutWithResponse(t.Context(), id, &genapi.CreateCheckoutParams{})
				require.NoError(t, err)
				requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
			})
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, err := b.client.CreateCheckoutWithResponse(t.Context(), testUUID(), &genapi.CreateCheckoutParams{})
		require.NoError(t, err)
		requireError(t, http.StatusNotFound, "not_found", resp.StatusCode(), resp.Body)
	})

	t.Run("ErrPaymentProvider_BookingUnchanged", func(t *testing.T) {
		t.Parallel()
		failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusPaymentRequired)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"secret internal detail from Stripe"}}`))
		}))
		t.Cleanup(failing.Close)
		b := setup(t, withStripe(failing.URL))
		bk := b.hold(t, at(10), at(12))
		before := b.booking(t, bk.Id)

		resp, err := b.client.CreateCheckoutWithResponse(t.Context(), bk.Id, &genapi.CreateCheckoutParams{})
		require.NoError(t, err)
		requireError(t, http.StatusBadGateway, "payment_provider_error", resp.StatusCode(), resp.Body)
		require.NotContains(t, string(resp.Body), "secret internal detail")

		after := b.booking(t, bk.Id)
		require.Equal(t, before.Status, after.Status)
		require.True(t, before.HoldExpiresAt.Equal(after.HoldExpiresAt))
		require.Nil(t, after.CheckoutSessionID)
		require.Nil(t, after.CheckoutExpiresAt)
	})
}

// newInterceptor forwards to a Stripe stand-in at target, calling before
// first for each request: a test uses it to change the world while slotpay
// waits on Stripe.
func newInterceptor(t *testing.T, target string, before func(path string)) string {
	u, err := url.Parse(target)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		before(r.URL.Path)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
