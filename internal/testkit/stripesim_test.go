package testkit_test

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/slotpay/slotpay/internal/testkit"
)

// paidSession is a session of 9000 eur cents paid in full.
func paidSession(t *testing.T, fake *testkit.StripeFake, sc *client.API) testkit.FakeSession {
	t.Helper()
	cs := newFakeSession(t, sc, 9000)
	fake.Complete(cs.ID, "paid")
	return fake.Session(cs.ID)
}

func refundParamsFor(pi, key string) *stripe.RefundParams {
	p := &stripe.RefundParams{PaymentIntent: stripe.String(pi)}
	p.SetIdempotencyKey(key)
	return p
}

func types(events []testkit.EmittedEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Type)
	}
	return out
}

func TestStripeFakeFaithfulIdempotency(t *testing.T) {
	t.Parallel()

	t.Run("A500IsReplayedUnderItsKeyFor24Hours", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Faithful())
		sc := testkit.StripeClient(t, fake.URL)
		pi := paidSession(t, fake, sc).PaymentIntent
		fake.Inject(testkit.Fault{Kind: testkit.FaultError, Path: "/v1/refunds", Times: 1})

		_, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
		requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		_, err = sc.Refunds.New(refundParamsFor(pi, "k1"))
		se := requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		require.Contains(t, se.Msg, "injected", "the stored 500, replayed")
		require.Empty(t, fake.Refunds())

		fake.AgeIdempotencyKeys(24*time.Hour + time.Minute)
		r, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
		require.NoError(t, err, "Stripe forgets a key after 24 hours")
		require.Equal(t, stripe.RefundStatusSucceeded, r.Status)
	})

	t.Run("TheLenientFakeLetsTheSameKeySucceedAfterA500", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Lenient())
		sc := testkit.StripeClient(t, fake.URL)
		pi := paidSession(t, fake, sc).PaymentIntent
		fake.Inject(testkit.Fault{Kind: testkit.FaultError, Path: "/v1/refunds", Times: 1})
		_, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
		requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		_, err = sc.Refunds.New(refundParamsFor(pi, "k1"))
		require.NoError(t, err)
	})

	t.Run("AFailureAfterTheEffectLeavesTheRefundAndReplaysThe500", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Faithful())
		sc := testkit.StripeClient(t, fake.URL)
		pi := paidSession(t, fake, sc).PaymentIntent
		fake.Inject(testkit.Fault{Kind: testkit.FaultErrorAfter, Path: "/v1/refunds", Times: 1})

		_, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
		requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		_, err = sc.Refunds.New(refundParamsFor(pi, "k1"))
		requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		// A new key is refused: the first request did refund.
		_, err = sc.Refunds.New(refundParamsFor(pi, "k2"))
		se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, stripe.ErrorCodeChargeAlreadyRefunded, se.Code)
		// Reading back is the way to learn the outcome.
		it := sc.Refunds.List(&stripe.RefundListParams{PaymentIntent: stripe.String(pi)})
		require.True(t, it.Next(), it.Err())
		require.EqualValues(t, 9000, it.Refund().Amount)
		require.Equal(t, stripe.RefundStatusSucceeded, it.Refund().Status)
		require.False(t, it.Next())
		got, err := sc.Refunds.Get(it.Refund().ID, nil)
		require.NoError(t, err)
		require.Equal(t, pi, got.PaymentIntent.ID)
		require.Equal(t, map[string]int{"error_after": 1}, fake.InjectedFaults())
	})

	t.Run("ParameterRefusalsAreNotStored", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Faithful())
		sc := testkit.StripeClient(t, fake.URL)
		pi := paidSession(t, fake, sc).PaymentIntent
		p := refundParamsFor(pi, "k1")
		p.Amount = stripe.Int64(0)
		_, err := sc.Refunds.New(p)
		requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		// Stripe saves no result when the parameters fail validation, but
		// the key still belongs to those parameters.
		p = refundParamsFor(pi, "k2")
		p.Amount = stripe.Int64(0)
		_, err = sc.Refunds.New(p)
		requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		_, err = sc.Refunds.New(refundParamsFor(pi, "k2"))
		require.NoError(t, err)
	})

	t.Run("AFailureInFrontOfAStoredAnswerDoesNotReplaceIt", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Faithful())
		sc := testkit.StripeClient(t, fake.URL)
		pi := paidSession(t, fake, sc).PaymentIntent
		first, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
		require.NoError(t, err)
		fake.Inject(testkit.Fault{Kind: testkit.FaultError, Path: "/v1/refunds", Times: 1})
		_, err = sc.Refunds.New(refundParamsFor(pi, "k1"))
		requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		again, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
		require.NoError(t, err)
		require.Equal(t, first.ID, again.ID)
	})

	t.Run("AKeyReusedWithOtherParametersIsRefused", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Faithful())
		sc := testkit.StripeClient(t, fake.URL)
		pi := paidSession(t, fake, sc).PaymentIntent
		fake.Inject(testkit.Fault{Kind: testkit.FaultError, Path: "/v1/refunds", Times: 1})
		_, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
		requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		p := refundParamsFor(pi, "k1")
		p.Amount = stripe.Int64(100)
		_, err = sc.Refunds.New(p)
		requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeIdempotency)
	})
}

func TestStripeFakeFaults(t *testing.T) {
	t.Parallel()

	for _, kind := range []testkit.FaultKind{testkit.FaultTimeout, testkit.FaultCut} {
		t.Run(kind.String()+"TakesEffectWithoutAnAnswer", func(t *testing.T) {
			t.Parallel()
			fake := testkit.NewStripeFake(t, testkit.Faithful())
			sc := testkit.StripeClient(t, fake.URL)
			pi := paidSession(t, fake, sc).PaymentIntent
			fake.Inject(testkit.Fault{Kind: kind, Path: "/v1/refunds", Times: 1, Delay: 50 * time.Millisecond})

			_, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
			require.Error(t, err)
			var se *stripe.Error
			require.NotErrorAs(t, err, &se, "no answer came, so no Stripe error either")
			require.Len(t, fake.Refunds(), 1, "the refund happened")

			// The same key gets the stored success, as stripe-go's own
			// retry of a connection error would.
			r, err := sc.Refunds.New(refundParamsFor(pi, "k1"))
			require.NoError(t, err)
			require.Equal(t, fake.Refunds()[0].ID, r.ID)
			require.Equal(t, "true", r.LastResponse.Header.Get("Idempotent-Replayed"))
		})
	}

	t.Run("ProbabilityIsReproducibleFromTheSeed", func(t *testing.T) {
		t.Parallel()
		pattern := func(seed uint64) []bool {
			fake := testkit.NewStripeFake(t, testkit.FaultSeed(seed))
			sc := testkit.StripeClient(t, fake.URL)
			fake.Inject(testkit.Fault{Kind: testkit.FaultError, Method: http.MethodGet, Path: "/v1/events", Probability: 0.5, Status: 503})
			var out []bool
			for range 32 {
				_, err := sc.Events.Get("evt_nope", nil)
				var se *stripe.Error
				require.ErrorAs(t, err, &se)
				out = append(out, se.HTTPStatusCode == http.StatusServiceUnavailable)
			}
			return out
		}
		a := pattern(7)
		require.Equal(t, a, pattern(7))
		require.NotEqual(t, a, pattern(8))
		require.Contains(t, a, true)
		require.Contains(t, a, false)
	})

	t.Run("NextNCallsThenRemoved", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		sc := testkit.StripeClient(t, fake.URL)
		fake.Inject(testkit.Fault{Kind: testkit.FaultError, Path: "/v1/checkout/sessions", Times: 2, Status: 502})
		for range 2 {
			_, err := sc.CheckoutSessions.Get("cs_x", nil)
			requireStripeError(t, err, http.StatusBadGateway, stripe.ErrorTypeAPI)
		}
		_, err := sc.CheckoutSessions.Get("cs_x", nil)
		requireStripeError(t, err, http.StatusNotFound, stripe.ErrorTypeInvalidRequest)

		remove := fake.Inject(testkit.Fault{Kind: testkit.FaultError, Path: "/v1/checkout/sessions"})
		for range 3 {
			_, err := sc.CheckoutSessions.Get("cs_x", nil)
			requireStripeError(t, err, http.StatusInternalServerError, stripe.ErrorTypeAPI)
		}
		remove()
		_, err = sc.CheckoutSessions.Get("cs_x", nil)
		requireStripeError(t, err, http.StatusNotFound, stripe.ErrorTypeInvalidRequest)
	})
}

func TestStripeFakeExpiresAtIsCheckedWhenReceived(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t, testkit.CheckExpiresAt())
	sc := testkit.StripeClient(t, fake.URL)
	for _, tc := range []struct {
		name string
		in   time.Duration
		ok   bool
	}{
		{"JustUnder30Minutes", 30*time.Minute - time.Second, false},
		{"30MinutesAndAMargin", 30*time.Minute + 5*time.Second, true},
		{"24Hours", 24*time.Hour - 5*time.Second, true},
		{"Over24Hours", 24*time.Hour + time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := sc.CheckoutSessions.New(sessionParams(testkit.RandomID("b_"), 9000, time.Now().Add(tc.in)))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
			require.Equal(t, "expires_at", se.Param)
		})
	}
}

func TestStripeFakeRefundLifecycle(t *testing.T) {
	t.Parallel()

	t.Run("ASucceededRefundFailsLater", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Faithful())
		sc := testkit.StripeClient(t, fake.URL)
		s := paidSession(t, fake, sc)
		r, err := sc.Refunds.New(refundParamsFor(s.PaymentIntent, "k1"))
		require.NoError(t, err)
		require.Equal(t, []testkit.FakePayment{{
			SessionID: s.ID, PaymentIntent: s.PaymentIntent, BookingID: s.Metadata["booking_id"],
			ClientReferenceID: s.ClientReferenceID, Currency: "eur", Charged: 9000, Refunded: 9000,
		}}, fake.Payments())

		fake.SetRefundStatus(r.ID, "failed")
		got, err := sc.Refunds.Get(r.ID, nil)
		require.NoError(t, err)
		require.Equal(t, stripe.RefundStatusFailed, got.Status)
		require.Equal(t, stripe.RefundFailureReasonLostOrStolenCard, got.FailureReason)
		p := fake.Payments()[0]
		require.Zero(t, p.Refunded, "a failed refund gives the money back to the merchant")
		require.EqualValues(t, 9000, p.Kept())

		events := fake.Emitted()
		require.Equal(t, []string{"checkout.session.completed", "charge.refunded", "refund.created",
			"refund.updated", "charge.refund.updated", "refund.failed"}, types(events))
		var charge struct {
			Data struct {
				Object stripe.Charge `json:"object"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(events[1].JSON, &charge))
		require.True(t, charge.Data.Object.Refunded)
		require.EqualValues(t, 9000, charge.Data.Object.AmountRefunded)
		require.Equal(t, s.PaymentIntent, charge.Data.Object.PaymentIntent.ID)
		var updated struct {
			Data struct {
				Object             stripe.Refund  `json:"object"`
				PreviousAttributes map[string]any `json:"previous_attributes"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(events[4].JSON, &updated))
		require.Equal(t, stripe.RefundStatusFailed, updated.Data.Object.Status)
		require.Equal(t, "succeeded", updated.Data.PreviousAttributes["status"])

		// The charge can be refunded again once the refund failed.
		_, err = sc.Refunds.New(refundParamsFor(s.PaymentIntent, "k2"))
		require.NoError(t, err)
	})

	t.Run("APendingRefundIsCancelled", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Faithful(), testkit.PendingRefunds())
		sc := testkit.StripeClient(t, fake.URL)
		s := paidSession(t, fake, sc)
		r, err := sc.Refunds.New(refundParamsFor(s.PaymentIntent, "k1"))
		require.NoError(t, err)
		require.Equal(t, stripe.RefundStatusPending, r.Status)
		require.EqualValues(t, 9000, fake.Payments()[0].RefundPending)
		fake.SetRefundStatus(r.ID, "canceled")
		require.Zero(t, fake.Payments()[0].RefundPending)
		require.Zero(t, fake.Payments()[0].Refunded)
		require.Equal(t, []string{"refund.updated", "charge.refund.updated"}, types(fake.Emitted())[3:])
	})

	t.Run("ADisputedChargeCannotBeRefunded", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t, testkit.Faithful())
		sc := testkit.StripeClient(t, fake.URL)
		s := paidSession(t, fake, sc)
		fake.OpenDispute(s.ID, "fraudulent")
		_, err := sc.Refunds.New(refundParamsFor(s.PaymentIntent, "k1"))
		se := requireStripeError(t, err, http.StatusBadRequest, stripe.ErrorTypeInvalidRequest)
		require.Equal(t, stripe.ErrorCodeChargeDisputed, se.Code)
	})
}

// TestStripeFakeDisputes: a dispute opens, moves on and closes won or lost
// with the events Stripe sends; a charge has at most one dispute.
func TestStripeFakeDisputes(t *testing.T) {
	t.Parallel()
	for _, won := range []bool{true, false} {
		name := map[bool]string{true: "Won", false: "Lost"}[won]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := testkit.NewStripeFake(t, testkit.Faithful())
			sc := testkit.StripeClient(t, fake.URL)
			s := paidSession(t, fake, sc)
			id := fake.OpenDispute(s.ID, "fraudulent")
			require.EqualValues(t, 9000, fake.Payments()[0].Disputed)
			fake.UpdateDispute(id, "under_review")
			fake.CloseDispute(id, won)

			want := []string{"checkout.session.completed", "charge.dispute.created", "charge.dispute.funds_withdrawn",
				"charge.dispute.updated", "charge.dispute.closed"}
			p := fake.Payments()[0]
			require.Zero(t, p.Disputed)
			if won {
				want = append(want, "charge.dispute.funds_reinstated")
				require.Zero(t, p.Lost)
				require.Equal(t, "won", p.DisputeStatus)
			} else {
				require.EqualValues(t, 9000, p.Lost)
				require.Equal(t, "lost", p.DisputeStatus)
				require.Zero(t, p.Kept())
			}
			events := fake.Emitted()
			require.Equal(t, want, types(events))
			var closed struct {
				Data struct {
					Object stripe.Dispute `json:"object"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal(events[4].JSON, &closed))
			require.Equal(t, stripe.DisputeStatus(p.DisputeStatus), closed.Data.Object.Status)
			require.Equal(t, s.PaymentIntent, closed.Data.Object.PaymentIntent.ID)
			require.EqualValues(t, 9000, closed.Data.Object.Amount)

			// A charge has at most one dispute, and won or lost is final:
			// Stripe opens no second one on the charge.
			_, err := fake.TryOpenDispute(s.ID, "fraudulent")
			require.Error(t, err)
			require.Len(t, fake.Disputes(), 1)
			require.Len(t, fake.Emitted(), len(want))
		})
	}
}

func TestStripeFakePaymentLinkSessionIsNotSlotpays(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t, testkit.Faithful())
	sc := testkit.StripeClient(t, fake.URL)
	bookingID := "0190f3a4-0000-7000-8000-000000000001"
	s := fake.PayThroughPaymentLink(bookingID, 100, "eur")

	got, err := sc.CheckoutSessions.Get(s.ID, nil)
	require.NoError(t, err)
	require.Equal(t, bookingID, got.ClientReferenceID)
	require.Empty(t, got.Metadata["booking_id"])
	require.NotNil(t, got.PaymentLink)
	require.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, got.PaymentStatus)
	require.Equal(t, []string{"checkout.session.completed"}, types(fake.Emitted()))
	p := fake.Payments()[0]
	require.True(t, p.PaymentLink)
	require.Empty(t, p.BookingID)
	require.EqualValues(t, 100, p.Charged)
}

func TestStripeFakeDeliversEventsLikeStripe(t *testing.T) {
	t.Parallel()
	const secret = "whsec_test_sim"
	fake := testkit.NewStripeFake(t, testkit.Faithful())
	sc := testkit.StripeClient(t, fake.URL)
	for range 5 {
		cs := newFakeSession(t, sc, 9000)
		fake.Complete(cs.ID, "paid")
		_, err := sc.CheckoutSessions.Expire(newFakeSession(t, sc, 500).ID, nil)
		require.NoError(t, err)
	}
	require.Equal(t, 10, fake.QueuedEvents())

	// An endpoint that is down for its first 6 requests, then verifies each
	// event with stripe-go's own check of Stripe's signature.
	var (
		mu       sync.Mutex
		requests int
		received = map[string]int{}
	)
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		requests++
		if requests <= 6 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ev, err := webhook.ConstructEvent(body, r.Header.Get("Stripe-Signature"), secret)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		received[ev.ID]++
	}))
	t.Cleanup(endpoint.Close)

	rng := rand.New(rand.NewPCG(1, 2))
	rep := fake.DeliverEvents(t.Context(), testkit.Delivery{URL: endpoint.URL, Secret: secret, Rand: rng, Max: 6})
	require.Equal(t, 6, rep.Failed)
	require.Equal(t, 10, fake.QueuedEvents(), "an event stays queued until answered 2xx")

	// After the outage, a burst of everything, with duplicates.
	var acked int
	for round := 0; fake.QueuedEvents() > 0; round++ {
		require.Less(t, round, 50)
		rep = fake.DeliverEvents(t.Context(), testkit.Delivery{URL: endpoint.URL, Secret: secret, Rand: rng, Duplicate: 0.5, Concurrency: 8})
		acked += len(rep.Acknowledged)
	}
	require.Len(t, received, 10, "every event delivered at least once")
	require.Greater(t, acked, 10, "and some more than once")
	for _, e := range fake.Emitted() {
		require.GreaterOrEqual(t, fake.DeliveryAttempts(e.ID), received[e.ID])
	}

	// The Events API lists what was emitted.
	n := 0
	it := sc.Events.List(&stripe.EventListParams{Type: stripe.String("checkout.session.*")})
	for it.Next() {
		n++
	}
	require.NoError(t, it.Err())
	require.Equal(t, 10, n)
}
