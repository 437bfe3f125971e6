package testkit_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/internal/testkit"
)

// sessionParams are Checkout Session parameters shaped like slotpay's.
func sessionParams(bookingID string, amount int64, expiresAt time.Time) *stripe.CheckoutSessionParams {
	p := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(bookingID),
		CustomerEmail:     stripe.String("ada@example.com"),
		ExpiresAt:         stripe.Int64(expiresAt.Unix()),
		SuccessURL:        stripe.String("https://slotpay.example/booking/success?booking_id=" + bookingID + "&session_id={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String("https://slotpay.example/booking/cancel?booking_id=" + bookingID),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String("eur"),
				UnitAmount:  stripe.Int64(amount),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("Studio A, Mon 2 Jan 2006 15:04–16:04")},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{
			Metadata: map[string]string{"booking_id": bookingID},
		},
	}
	p.AddMetadata("booking_id", bookingID)
	p.SetIdempotencyKey(fmt.Sprintf("slotpay-checkout-%s-%d", bookingID, expiresAt.Unix()))
	return p
}

func newFakeSession(t *testing.T, sc *client.API, amount int64) *stripe.CheckoutSession {
	t.Helper()
	cs, err := sc.CheckoutSessions.New(sessionParams(testkit.RandomID("b_"), amount, time.Now().Add(40*time.Minute)))
	require.NoError(t, err)
	return cs
}

func requireStripeError(t *testing.T, err error, status int, typ stripe.ErrorType) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	require.True(t, errors.As(err, &se), "want a *stripe.Error, got %v", err)
	require.Equal(t, status, se.HTTPStatusCode, se.Msg)
	require.Equal(t, typ, se.Type, se.Msg)
	return se
}

func TestStripeFakeCheckoutSessions(t *testing.T) {
	t.Parallel()

	t.Run("CreateLooksLikeStripe", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		expires := time.Now().Add(40 * time.Minute)

		cs, err := sc.CheckoutSessions.New(sessionParams("b1", 9000, expires))
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(cs.ID, "cs_test_fake_"), cs.ID)
		require.Equal(t, "checkout.session", cs.Object)
		require.Equal(t, stripe.CheckoutSessionStatusOpen, cs.Status)
		require.Equal(t, stripe.CheckoutSessionPaymentStatusUnpaid, cs.PaymentStatus)
		require.Equal(t, stripe.CheckoutSessionModePayment, cs.Mode)
		require.EqualValues(t, 9000, cs.AmountTotal)
		require.Equal(t, stripe.Currency("eur"), cs.Currency)
		require.Equal(t, "b1", cs.ClientReferenceID)
		require.Equal(t, map[string]string{"booking_id": "b1"}, cs.Metadata)
		require.Equal(t, "ada@example.com", cs.CustomerEmail)
		require.Equal(t, expires.Unix(), cs.ExpiresAt)
		require.Equal(t, "https://checkout.stripe.com/c/pay/"+cs.ID, cs.URL)
		require.Contains(t, cs.SuccessURL, "&session_id={CHECKOUT_SESSION_ID}")
		require.False(t, cs.Livemode)
		require.Nil(t, cs.PaymentIntent)
		require.NotEmpty(t, cs.LastResponse.RequestID)

		got := fake.Session(cs.ID)
		require.Equal(t, testkit.FakeSession{
			ID: cs.ID, Status: "open", PaymentStatus: "unpaid", ClientReferenceID: "b1", Currency: "eur",
			URL: cs.URL, AmountTotal: 9000, ExpiresAt: expires.Unix(), Metadata: map[string]string{"booking_id": "b1"},
			IdempotencyKey: fmt.Sprintf("slotpay-checkout-b1-%d", expires.Unix()),
		}, got)
		require.Len(t, fake.Sessions(), 1)
		require.Zero(t, fake.Session("cs_test_unknown"))
	})

	t.Run("SumsLineItems", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		p := sessionParams("b1", 1500, time.Now().Add(time.Hour))
		p.LineItems[0].Quantity = stripe.Int64(3)
		p.LineItems = append(p.LineItems, &stripe.CheckoutSessionLineItemParams{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String("eur"),
				UnitAmount:  stripe.Int64(250),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("Cleaning")},
			},
		})
		cs, err := sc.CheckoutSessions.New(p)
		require.NoError(t, err)
		require.EqualValues(t, 4750, cs.AmountTotal)
	})

	t.Run("MissingParamIsInvalidRequest", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		p := sessionParams("b1", 1500, time.Now().Add(time.Hour))
		p.Mode = nil
		_, err := sc.CheckoutSessions.New(p)
		se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, "mode", se.Param)
		require.Empty(t, fake.Sessions())
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		expires := time.Now().Add(40 * time.Minute)

		first, err := sc.CheckoutSessions.New(sessionParams("b1", 9000, expires))
		require.NoError(t, err)
		again, err := sc.CheckoutSessions.New(sessionParams("b1", 9000, expires))
		require.NoError(t, err)
		require.Equal(t, first.ID, again.ID)
		require.Equal(t, first.LastResponse.RawJSON, again.LastResponse.RawJSON)
		require.Equal(t, "true", again.LastResponse.Header.Get("Idempotent-Replayed"))
		require.Len(t, fake.Sessions(), 1)

		// Same key, other parameters.
		other := sessionParams("b1", 9999, expires)
		other.SetIdempotencyKey(*sessionParams("b1", 9000, expires).IdempotencyKey)
		_, err = sc.CheckoutSessions.New(other)
		se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeIdempotency)
		require.Contains(t, se.Msg, "same parameters")
		var ie *stripe.IdempotencyError
		require.ErrorAs(t, se.Err, &ie)
		require.Len(t, fake.Sessions(), 1)

		// Without a key of its own, stripe-go sends a random one per call.
		p := sessionParams("b1", 9000, expires)
		p.IdempotencyKey = nil
		fresh, err := sc.CheckoutSessions.New(p)
		require.NoError(t, err)
		require.NotEqual(t, first.ID, fresh.ID)
		require.Len(t, fake.Sessions(), 2)
	})

	t.Run("GetExpandsPaymentIntent", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		cs := newFakeSession(t, sc, 9000)

		got, err := sc.CheckoutSessions.Get(cs.ID, nil)
		require.NoError(t, err)
		require.Equal(t, cs.ID, got.ID)
		require.Nil(t, got.PaymentIntent)

		fake.Complete(cs.ID, "paid")
		got, err = sc.CheckoutSessions.Get(cs.ID, nil)
		require.NoError(t, err)
		require.Equal(t, stripe.CheckoutSessionStatusComplete, got.Status)
		require.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, got.PaymentStatus)
		require.Empty(t, got.URL, "Stripe answers url null once a session is closed")
		require.Equal(t, "ada@example.com", got.CustomerDetails.Email)
		require.NotNil(t, got.PaymentIntent)
		require.True(t, strings.HasPrefix(got.PaymentIntent.ID, "pi_fake_"), got.PaymentIntent.ID)
		require.Empty(t, got.PaymentIntent.Status, "not expanded: an id only")
		require.Equal(t, got.PaymentIntent.ID, fake.Session(cs.ID).PaymentIntent)

		p := &stripe.CheckoutSessionParams{}
		p.AddExpand("payment_intent")
		got, err = sc.CheckoutSessions.Get(cs.ID, p)
		require.NoError(t, err)
		require.Equal(t, fake.Session(cs.ID).PaymentIntent, got.PaymentIntent.ID)
		require.Equal(t, stripe.PaymentIntentStatusSucceeded, got.PaymentIntent.Status)
		require.EqualValues(t, 9000, got.PaymentIntent.Amount)
		require.Equal(t, cs.ClientReferenceID, got.PaymentIntent.Metadata["booking_id"])
	})

	t.Run("GetUnknownIsResourceMissing", func(t *testing.T) {
		t.Parallel()
		sc := testkit.StripeClient(t, testkit.NewStripeFake(t).URL)
		_, err := sc.CheckoutSessions.Get("cs_test_nope", nil)
		se := requireStripeError(t, err, http.StatusNotFound, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, stripe.ErrorCodeResourceMissing, se.Code)
		require.Contains(t, se.Msg, "No such checkout.session")
	})

	t.Run("AsyncPayment", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		ok, failed := newFakeSession(t, sc, 9000), newFakeSession(t, sc, 9000)
		expandPI := &stripe.CheckoutSessionParams{Expand: []*string{stripe.String("payment_intent")}}

		fake.Complete(ok.ID, "unpaid")
		got, err := sc.CheckoutSessions.Get(ok.ID, expandPI)
		require.NoError(t, err)
		require.Equal(t, stripe.CheckoutSessionStatusComplete, got.Status)
		require.Equal(t, stripe.CheckoutSessionPaymentStatusUnpaid, got.PaymentStatus)
		require.Equal(t, stripe.PaymentIntentStatusProcessing, got.PaymentIntent.Status)

		fake.SetPaymentIntentStatus(ok.ID, "succeeded")
		got, err = sc.CheckoutSessions.Get(ok.ID, expandPI)
		require.NoError(t, err)
		require.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, got.PaymentStatus)
		require.Equal(t, stripe.PaymentIntentStatusSucceeded, got.PaymentIntent.Status)

		fake.Complete(failed.ID, "unpaid")
		fake.SetPaymentIntentStatus(failed.ID, "requires_payment_method")
		got, err = sc.CheckoutSessions.Get(failed.ID, expandPI)
		require.NoError(t, err)
		require.Equal(t, stripe.CheckoutSessionPaymentStatusUnpaid, got.PaymentStatus)
		require.Equal(t, stripe.PaymentIntentStatusRequiresPaymentMethod, got.PaymentIntent.Status)
	})

	t.Run("Expire", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		open, done := newFakeSession(t, sc, 9000), newFakeSession(t, sc, 9000)

		expired, err := sc.CheckoutSessions.Expire(open.ID, nil)
		require.NoError(t, err)
		require.Equal(t, stripe.CheckoutSessionStatusExpired, expired.Status)
		require.Empty(t, expired.URL)
		require.Equal(t, "expired", fake.Session(open.ID).Status)

		// Again: it is no longer open.
		_, err = sc.CheckoutSessions.Expire(open.ID, nil)
		se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		require.Contains(t, se.Msg, "status of `expired`")

		fake.Complete(done.ID, "paid")
		_, err = sc.CheckoutSessions.Expire(done.ID, nil)
		se = requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of `+"`complete`.", se.Msg)
		require.Equal(t, "complete", fake.Session(done.ID).Status)

		_, err = sc.CheckoutSessions.Expire("cs_test_nope", nil)
		requireStripeError(t, err, http.StatusNotFound, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, 2, fake.Calls(http.MethodPost, "/v1/checkout/sessions/"+open.ID+"/expire"))
		require.Equal(t, 4, fake.Calls(http.MethodPost, "/v1/checkout/sessions/cs_test_"))
	})
}

func TestStripeFakeRefunds(t *testing.T) {
	t.Parallel()

	t.Run("FullRefundIsIdempotent", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		cs := newFakeSession(t, sc, 9000)
		fake.Complete(cs.ID, "paid")
		pi := fake.Session(cs.ID).PaymentIntent

		params := func() *stripe.RefundParams {
			p := &stripe.RefundParams{PaymentIntent: stripe.String(pi)}
			p.SetIdempotencyKey("slotpay-refund-b1")
			p.AddMetadata("booking_id", "b1")
			return p
		}
		r, err := sc.Refunds.New(params())
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(r.ID, "re_fake_"), r.ID)
		require.EqualValues(t, 9000, r.Amount)
		require.Equal(t, stripe.Currency("eur"), r.Currency)
		require.Equal(t, stripe.RefundStatusSucceeded, r.Status)
		require.Equal(t, pi, r.PaymentIntent.ID)
		require.Equal(t, "b1", r.Metadata["booking_id"])

		again, err := sc.Refunds.New(params())
		require.NoError(t, err)
		require.Equal(t, r.ID, again.ID)
		require.Equal(t, []testkit.FakeRefund{{
			ID: r.ID, PaymentIntent: pi, IdempotencyKey: "slotpay-refund-b1", Amount: 9000,
			Metadata: map[string]string{"booking_id": "b1"}, Status: "succeeded", Created: r.Created,
		}}, fake.Refunds())

		// Another key: nothing is left to refund.
		p := params()
		p.SetIdempotencyKey("slotpay-refund-other")
		_, err = sc.Refunds.New(p)
		se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, stripe.ErrorCodeChargeAlreadyRefunded, se.Code)
		require.Len(t, fake.Refunds(), 1)

		// The same key for another request.
		p = params()
		p.Amount = stripe.Int64(100)
		_, err = sc.Refunds.New(p)
		requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeIdempotency)
	})

	t.Run("PartialRefunds", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		cs := newFakeSession(t, sc, 9000)
		fake.Complete(cs.ID, "paid")
		pi := fake.Session(cs.ID).PaymentIntent

		r, err := sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi), Amount: stripe.Int64(4000)})
		require.NoError(t, err)
		require.EqualValues(t, 4000, r.Amount)

		_, err = sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi), Amount: stripe.Int64(5001)})
		se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, "amount", se.Param)

		r, err = sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi)})
		require.NoError(t, err)
		require.EqualValues(t, 5000, r.Amount, "the rest")
		require.Len(t, fake.Refunds(), 2)
	})

	t.Run("NeedsASucceededPayment", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		cs := newFakeSession(t, sc, 9000)
		fake.Complete(cs.ID, "unpaid")

		_, err := sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(fake.Session(cs.ID).PaymentIntent)})
		requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)

		_, err = sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String("pi_unknown")})
		se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, stripe.ErrorCodeResourceMissing, se.Code)
		require.Empty(t, fake.Refunds())
	})
}

func TestStripeFakeEvents(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	sc := testkit.StripeClient(t, fake.URL)

	// Seven events one second apart, oldest first, of alternating types.
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var raws [][]byte
	var ids []string
	for i := range 7 {
		typ := "checkout.session.completed"
		if i%2 == 1 {
			typ = "charge.refunded"
		}
		raw := testkit.Event{ID: fmt.Sprintf("evt_test_%d", i), Type: typ, Created: base.Add(time.Duration(i) * time.Second)}.JSON(t)
		fake.AddEvent(raw)
		raws, ids = append(raws, raw), append(ids, fmt.Sprintf("evt_test_%d", i))
	}

	list := func(p *stripe.EventListParams) []string {
		t.Helper()
		var got []string
		it := sc.Events.List(p)
		for it.Next() {
			got = append(got, it.Event().ID)
		}
		require.NoError(t, it.Err())
		return got
	}

	t.Run("NewestFirstAcrossPages", func(t *testing.T) {
		t.Parallel()
		before := fake.Calls(http.MethodGet, "/v1/events")
		got := list(&stripe.EventListParams{ListParams: stripe.ListParams{Limit: stripe.Int64(2)}})
		require.Equal(t, []string{"evt_test_6", "evt_test_5", "evt_test_4", "evt_test_3", "evt_test_2", "evt_test_1", "evt_test_0"}, got)
		require.GreaterOrEqual(t, fake.Calls(http.MethodGet, "/v1/events")-before, 4, "pages of 2")
	})

	t.Run("FiltersByTypesAndCreated", func(t *testing.T) {
		t.Parallel()
		got := list(&stripe.EventListParams{
			ListParams:   stripe.ListParams{Limit: stripe.Int64(2)},
			Types:        stripe.StringSlice([]string{"checkout.session.completed", "checkout.session.expired"}),
			CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: base.Add(time.Second).Unix()},
		})
		require.Equal(t, []string{"evt_test_6", "evt_test_4", "evt_test_2"}, got)

		got = list(&stripe.EventListParams{
			Type:         stripe.String("charge.*"),
			CreatedRange: &stripe.RangeQueryParams{GreaterThan: base.Add(time.Second).Unix()},
		})
		require.Equal(t, []string{"evt_test_5", "evt_test_3"}, got)
	})

	t.Run("GetReturnsTheEventAsAdded", func(t *testing.T) {
		t.Parallel()
		for i, id := range ids {
			ev, err := sc.Events.Get(id, nil)
			require.NoError(t, err)
			require.Equal(t, id, ev.ID)
			require.Equal(t, raws[i], ev.LastResponse.RawJSON)
		}
		_, err := sc.Events.Get("evt_nope", nil)
		se := requireStripeError(t, err, http.StatusNotFound, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, stripe.ErrorCodeResourceMissing, se.Code)
	})

	t.Run("ListedEventsDecode", func(t *testing.T) {
		t.Parallel()
		it := sc.Events.List(&stripe.EventListParams{Types: stripe.StringSlice([]string{"checkout.session.completed"})})
		require.True(t, it.Next())
		ev := it.Event()
		require.Equal(t, stripe.EventTypeCheckoutSessionCompleted, ev.Type)
		require.Equal(t, "checkout.session", ev.Data.Object["object"])
		require.Equal(t, base.Add(6*time.Second).Unix(), ev.Created)
	})
}

func TestStripeFakeRequests(t *testing.T) {
	t.Parallel()

	t.Run("NeedsATestKey", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		for _, auth := range []string{"", "Bearer sk_live_123", "Basic abc"} {
			req, err := http.NewRequest(http.MethodGet, fake.URL+"/v1/events", nil)
			require.NoError(t, err)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, auth)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			require.Contains(t, string(body), `"invalid_request_error"`)
		}
		require.Equal(t, 3, fake.Calls("", "/v1/"))
	})

	t.Run("UnknownEndpoint", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		_, err := sc.Customers.New(&stripe.CustomerParams{})
		se := requireStripeError(t, err, http.StatusNotFound, stripe.ErrorTypeInvalidRequest)
		require.Contains(t, se.Msg, "Unrecognized request URL (POST: /v1/customers)")
		require.NotEmpty(t, se.RequestID)
	})

	t.Run("FailNextThenRetryUnderTheSameKey", func(t *testing.T) {
		t.Parallel()
		// Retrying under the same key after a 500 works only against the
		// lenient fake: Stripe (and the default fake) replays the 500.
		fake := testkit.NewStripeFake(t, testkit.Lenient())
		sc := testkit.StripeClient(t, fake.URL)
		fake.FailNext("/v1/checkout/sessions", http.StatusTooManyRequests,
			`{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}`)
		fake.FailNext("/v1/checkout/sessions", http.StatusInternalServerError, "")

		expires := time.Now().Add(time.Hour)
		_, err := sc.CheckoutSessions.New(sessionParams("b1", 9000, expires))
		se := requireStripeError(t, err, http.StatusTooManyRequests, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, stripe.ErrorCode("rate_limit"), se.Code)
		_, err = sc.CheckoutSessions.New(sessionParams("b1", 9000, expires))
		requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		require.Empty(t, fake.Sessions())

		cs, err := sc.CheckoutSessions.New(sessionParams("b1", 9000, expires))
		require.NoError(t, err)
		require.Equal(t, []string{cs.ID}, []string{fake.Sessions()[0].ID})
		require.Equal(t, 3, fake.Calls(http.MethodPost, "/v1/checkout/sessions"))
		require.Zero(t, fake.Calls(http.MethodGet, "/v1/checkout/sessions"))
	})
}
