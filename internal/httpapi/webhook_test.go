package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/testkit"
)

type receipt struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate"`
}

// requireReceived checks a 200 receipt.
func requireReceived(t *testing.T, resp *http.Response, duplicate bool) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var r receipt
	require.NoError(t, json.Unmarshal(body, &r))
	require.Equal(t, receipt{Received: true, Duplicate: duplicate}, r)
}

func requireWebhookError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	requireError(t, status, code, resp.StatusCode, body)
}

// ledgerRow is a payment_events row as the tests look at it.
type ledgerRow struct {
	Outcome    string
	Detail     string
	BookingID  *uuid.UUID
	APIVersion string
	Source     string
}

func (b *testBundle) ledger(t *testing.T, eventID string) ledgerRow {
	t.Helper()
	var r ledgerRow
	err := b.db.Pool.QueryRow(t.Context(),
		"SELECT outcome, detail, booking_id, api_version, source FROM payment_events WHERE stripe_event_id = $1", eventID).
		Scan(&r.Outcome, &r.Detail, &r.BookingID, &r.APIVersion, &r.Source)
	require.NoError(t, err, "event %s is not in the ledger", eventID)
	return r
}

func TestWebhookConfirmsPaidBooking(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	ev := completed(bk, co)
	ev.ID = "evt_paid_1"
	requireReceived(t, b.deliver(t, ev.JSON(t)), false)

	row := b.booking(t, bk.Id)
	require.Equal(t, "confirmed", row.Status)
	require.Equal(t, ev.Object["payment_intent"], *row.PaymentIntentID)
	l := b.ledger(t, "evt_paid_1")
	require.Equal(t, "applied", l.Outcome)
	require.Equal(t, bk.Id, *l.BookingID)
	require.Equal(t, "webhook", l.Source)
	require.Equal(t, 1, b.db.Count(t, `SELECT count(*) FROM booking_status_changes
		WHERE booking_id = $1 AND from_status = 'pending_payment' AND to_status = 'confirmed'
		  AND cause = 'checkout.session.completed' AND stripe_event_id = 'evt_paid_1'`, bk.Id))

	got, err := b.client.GetBookingWithResponse(t.Context(), bk.Id)
	require.NoError(t, err)
	require.Equal(t, genapi.Confirmed, got.JSON200.Status)
}

// TestInvariant2_ConfirmedOnlyByVerifiedPaymentOfTheRightAmount: SPEC §8.2.
func TestInvariant2_ConfirmedOnlyByVerifiedPaymentOfTheRightAmount(t *testing.T) {
	t.Parallel()

	t.Run("UnsignedPaymentConfirmsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		payload := completed(bk, co).JSON(t)
		requireWebhookError(t, b.deliverSigned(t, payload, testkit.SignatureHeader(payload, "whsec_attacker", time.Now())), http.StatusBadRequest, "invalid_signature")
		require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status)
	})

	t.Run("UnpaidCompletionIsProcessingNotConfirmed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		ev := completed(bk, co)
		ev.Object["payment_status"] = "unpaid"
		requireReceived(t, b.deliver(t, ev.JSON(t)), false)
		require.Equal(t, "processing", b.booking(t, bk.Id).Status)
	})

	mismatches := map[string]func(*testkit.Event){
		"AmountDiffers":   func(e *testkit.Event) { e.Object["amount_total"] = 100; e.Object["amount_subtotal"] = 100 },
		"CurrencyDiffers": func(e *testkit.Event) { e.Object["currency"] = "usd" },
	}
	for name, edit := range mismatches {
		t.Run(name+"_NeedsReview", func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			bk, co := b.paidBooking(t, 10)
			ev := completed(bk, co)
			edit(&ev)
			requireReceived(t, b.deliver(t, ev.JSON(t)), false)
			require.Equal(t, "needs_review", b.booking(t, bk.Id).Status)
			require.Equal(t, "review", b.ledger(t, ev.ID).Outcome)
			// needs_review still holds the slot: an operator decides.
			resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, bookingRequest(b.resource.ID, at(10), at(11)))
			require.NoError(t, err)
			require.Equal(t, http.StatusConflict, resp.StatusCode())
		})
	}

	t.Run("PaymentOfAnotherSessionConfirmsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, _ := b.paidBooking(t, 10)
		ev := withID(testkit.CheckoutSessionCompleted("cs_test_someone_else", bk.Id.String(), bk.AmountTotal, bk.Currency))
		requireReceived(t, b.deliver(t, ev.JSON(t)), false)
		require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status)
		require.Equal(t, "review", b.ledger(t, ev.ID).Outcome)
	})

	t.Run("OtherModeConfirmsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		ev := completed(bk, co)
		ev.Livemode = true // this deployment runs on a test key
		requireReceived(t, b.deliver(t, ev.JSON(t)), false)
		require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status)
		l := b.ledger(t, ev.ID)
		require.Equal(t, "ignored", l.Outcome)
		require.Contains(t, l.Detail, "livemode")
	})

	t.Run("VerifiedPaymentOfTheRightAmountConfirms", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		requireReceived(t, b.deliver(t, completed(bk, co).JSON(t)), false)
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	})
}

// TestInvariant3_EachEventAppliedOnce: SPEC §8.3. However often and however
// concurrently Stripe delivers one event, it is recorded once and causes one
// transition; and a booking is confirmed at most once.
func TestInvariant3_EachEventAppliedOnce(t *testing.T) {
	t.Parallel()

	t.Run("FiveSequentialDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		payload := completed(bk, co).JSON(t)
		requireReceived(t, b.deliver(t, payload), false)
		for range 4 {
			requireReceived(t, b.deliver(t, payload), true)
		}
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM payment_events"))
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", bk.Id))
	})

	t.Run("TwentyFiveConcurrentDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		payload := completed(bk, co).JSON(t)
		const n = 25
		var (
			wg         sync.WaitGroup
			mu         sync.Mutex
			duplicates int
			fresh      int
		)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				resp := b.deliver(t, payload)
				var r receipt
				if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
					t.Errorf("delivery answered %d", resp.StatusCode)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if r.Duplicate {
					duplicates++
				} else {
					fresh++
				}
			})
		}
		close(start)
		wg.Wait()
		require.Equal(t, 1, fresh)
		require.Equal(t, n-1, duplicates)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM payment_events"))
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", bk.Id))
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	})

	t.Run("TwoEventsSayingPaidConfirmOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		first := completed(bk, co)
		second := completed(bk, co)
		second.Type = "checkout.session.async_payment_succeeded"
		requireReceived(t, b.deliver(t, first.JSON(t)), false)
		requireReceived(t, b.deliver(t, second.JSON(t)), false)
		require.Equal(t, "ignored", b.ledger(t, second.ID).Outcome)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", bk.Id))
	})

	t.Run("DatabaseRefusesASecondConfirmation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		requireReceived(t, b.deliver(t, completed(bk, co).JSON(t)), false)
		// Raw SQL on purpose: the rule is that the database refuses it.
		_, err := b.db.Pool.Exec(t.Context(),
			"INSERT INTO booking_status_changes (booking_id, from_status, to_status, cause) VALUES ($1, 'expired', 'confirmed', 'test')", bk.Id)
		require.ErrorContains(t, err, "booking_status_changes_confirmed_once_idx")
	})
}

// TestInvariant4_AnsweredEventsAreRecordedFailedOnesLeaveNoTrace: SPEC §8.4.
// PostgreSQL fails in the middle of processing: the delivery is answered 5xx
// and nothing of it remains; Stripe's retry then succeeds.
func TestInvariant4_AnsweredEventsAreRecordedFailedOnesLeaveNoTrace(t *testing.T) {
	t.Parallel()

	failures := map[string]string{
		// The ledger row is written, then the transition fails.
		"StatementFails": `RAISE EXCEPTION 'disk full (simulated)'`,
		// The connection dies mid-transaction, as in a database restart.
		"ConnectionDies": `PERFORM pg_terminate_backend(pg_backend_pid())`,
	}
	for name, failure := range failures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			bk, co := b.paidBooking(t, 10)
			// Fault injection: a trigger makes the transition's INSERT fail.
			b.db.Exec(t, `CREATE FUNCTION fail_transition() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN `+failure+`; RETURN NEW; END $$`)
			b.db.Exec(t, `CREATE TRIGGER fail_transition BEFORE INSERT ON booking_status_changes
				FOR EACH ROW WHEN (NEW.to_status = 'confirmed') EXECUTE FUNCTION fail_transition()`)

			payload := completed(bk, co).JSON(t)
			resp := b.deliver(t, payload)
			require.GreaterOrEqual(t, resp.StatusCode, 500)
			requireWebhookError(t, resp, http.StatusInternalServerError, "internal_error")
			require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM payment_events"))
			require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status)
			require.Nil(t, b.booking(t, bk.Id).PaymentIntentID)

			b.db.Exec(t, "DROP TRIGGER fail_transition ON booking_status_changes")
			requireReceived(t, b.deliver(t, payload), false)
			require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
			require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM payment_events WHERE outcome = 'applied'"))
		})
	}

	t.Run("EveryAnsweredEventIsInTheLedger", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, co := b.paidBooking(t, 10)
		events := []testkit.Event{
			completed(bk, co),
			{Type: "customer.created", Object: map[string]any{}},
			testkit.CheckoutSessionCompleted("cs_test_unknown", uuid.NewString(), 100, "eur"),
		}
		for _, ev := range events {
			ev.ID = testkit.RandomID("evt_test_")
			requireReceived(t, b.deliver(t, ev.JSON(t)), false)
			b.ledger(t, ev.ID)
		}
	})
}

func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	payload := completed(bk, co).JSON(t)

	// Signed at delivery, so that however slow the machine, a stale or
	// future timestamp stays outside the 300 s tolerance when checked.
	signedAt := func(p []byte, secret string, skew time.Duration) func() string {
		return func() string { return testkit.SignatureHeader(p, secret, time.Now().Add(skew)) }
	}
	refused := map[string]struct {
		payload   []byte
		signature func() string
	}{
		"Missing":     {payload, func() string { return "" }},
		"Malformed":   {payload, func() string { return "t=abc,v1=zz" }},
		"WrongSecret": {payload, signedAt(payload, "whsec_wrong", 0)},
		"Tampered":    {[]byte(strings.Replace(string(payload), `"amount_total":9000`, `"amount_total":9001`, 1)), signedAt(payload, webhookSecret, 0)},
		"Stale":       {payload, signedAt(payload, webhookSecret, -360*time.Second)},
		"FarFuture":   {payload, signedAt(payload, webhookSecret, 360*time.Second)},
	}
	for name, c := range refused {
		t.Run(name, func(t *testing.T) {
			requireWebhookError(t, b.deliverSigned(t, c.payload, c.signature()), http.StatusBadRequest, "invalid_signature")
		})
	}
	require.NotEqual(t, string(payload), string(refused["Tampered"].payload), "the tampered payload must differ")
	require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM payment_events"))
	require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status)
}

func TestWebhookSecretRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, withWebhookSecrets("whsec_old", webhookSecret))
	bk, co := b.paidBooking(t, 10)
	old := completed(bk, co).JSON(t)
	requireReceived(t, b.deliverSigned(t, old, testkit.SignatureHeader(old, "whsec_old", time.Now())), false)
	other := testkit.Event{Type: "customer.created", Object: map[string]any{}}.JSON(t)
	requireReceived(t, b.deliverSigned(t, other, testkit.SignatureHeader(other, webhookSecret, time.Now())), false)
	require.Equal(t, 2, b.db.Count(t, "SELECT count(*) FROM payment_events"))
}

func TestWebhookAcceptsAnyAPIVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	ev := completed(bk, co)
	ev.APIVersion = "2024-06-20"
	requireReceived(t, b.deliver(t, ev.JSON(t)), false)
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	require.Equal(t, "2024-06-20", b.ledger(t, ev.ID).APIVersion)
}

// TestWebhookOvertakesCheckoutResponse: Stripe's webhook arrives while the
// checkout call that created the session has not stored its id yet. The
// booking is found by client_reference_id, and the checkout answer still
// succeeds afterwards.
func TestWebhookOvertakesCheckoutResponse(t *testing.T) {
	t.Parallel()
	var b *testBundle
	var overtaking *http.Response
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		bookingID := r.PostForm.Get("client_reference_id")
		var amount int64
		_, _ = fmtSscan(r.PostForm.Get("line_items[0][price_data][unit_amount]"), &amount)
		// Stripe completes the session and delivers the webhook before
		// this create call has even answered.
		ev := testkit.CheckoutSessionCompleted("cs_test_overtaken", bookingID, amount, r.PostForm.Get("line_items[0][price_data][currency]"))
		overtaking = b.deliver(t, ev.JSON(t))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"cs_test_overtaken","object":"checkout.session","url":"https://checkout.stripe.com/c/pay/cs_test_overtaken"}`))
	}))
	t.Cleanup(stripe.Close)
	b = setup(t, withStripe(stripe.URL))
	bk := b.hold(t, at(10), at(12))

	co := b.checkout(t, bk.Id)
	requireReceived(t, overtaking, false)
	require.Equal(t, "cs_test_overtaken", co.CheckoutSessionId)
	row := b.booking(t, bk.Id)
	require.Equal(t, "confirmed", row.Status)
	require.Equal(t, "cs_test_overtaken", *row.CheckoutSessionID)
	require.Equal(t, "https://checkout.stripe.com/c/pay/cs_test_overtaken", *row.CheckoutURL)
}

func TestWebhookUnknownSessionIsUnmatched(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ev := withID(testkit.CheckoutSessionCompleted("cs_test_nobody", uuid.NewString(), 4500, "eur"))
	requireReceived(t, b.deliver(t, ev.JSON(t)), false)
	l := b.ledger(t, ev.ID)
	require.Equal(t, "unmatched", l.Outcome)
	require.Nil(t, l.BookingID)
}

func TestWebhookUnhandledTypeIsIgnored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ev := withID(testkit.Event{Type: "customer.created", Object: map[string]any{}})
	requireReceived(t, b.deliver(t, ev.JSON(t)), false)
	l := b.ledger(t, ev.ID)
	require.Equal(t, "ignored", l.Outcome)
	require.Equal(t, "event type not handled", l.Detail)

	// data.object is decoded with the envelope, by the fields slotpay reads
	// in the types it handles: an object of another type may have fields
	// by those names with other JSON types, and is recorded all the same.
	other := withID(testkit.Event{Type: "customer.created", Object: map[string]any{
		"status": map[string]any{"state": "x"}, "amount": "12.00", "metadata": []any{1}, "refunded": "no",
	}})
	requireReceived(t, b.deliver(t, other.JSON(t)), false)
	require.Equal(t, "ignored", b.ledger(t, other.ID).Outcome)
}

func TestWebhookBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("ErrPayloadTooLarge", func(t *testing.T) {
		big := []byte(`{"id":"evt_big","pad":"` + strings.Repeat("x", 1<<20) + `"}`)
		requireWebhookError(t, b.deliver(t, big), http.StatusRequestEntityTooLarge, "payload_too_large")
	})
	t.Run("SignedButNotAnEvent", func(t *testing.T) {
		for _, body := range []string{`[]`, `{}`, `{"id":"evt_1"}`, `not json`, `{"id":"evt_1"`,
			`{"id":"evt_1","type":"customer.created","created":1700000000,"data":{"object":null}}`,
			`{"id":"evt_1","type":"customer.created","created":1700000000,"data":{}}`} {
			requireWebhookError(t, b.deliver(t, []byte(body)), http.StatusBadRequest, "invalid_request")
		}
	})
	t.Run("SignedButMalformedEnvelope", func(t *testing.T) {
		for _, ev := range []testkit.Event{
			{ID: "evt 1", Type: "customer.created", Object: map[string]any{}},
			{ID: "evt_1", Type: "customer.created", Created: time.Unix(1, 0), Object: map[string]any{}},
		} {
			requireWebhookError(t, b.deliver(t, ev.JSON(t)), http.StatusBadRequest, "invalid_request")
		}
	})
	t.Run("SignedButUnreadableObject", func(t *testing.T) {
		ev := testkit.Event{Type: "checkout.session.completed", Object: map[string]any{"id": "cs_test_x", "payment_status": "sort_of"}}
		requireWebhookError(t, b.deliver(t, ev.JSON(t)), http.StatusBadRequest, "invalid_request")
		// A field slotpay reads, of another JSON type, in a type it handles.
		for _, ev := range []testkit.Event{
			{Type: "charge.refunded", Object: map[string]any{"payment_intent": "pi_x", "amount": "45.00"}},
			{Type: "checkout.session.completed", Object: map[string]any{"id": "cs_test_x", "payment_status": "paid", "amount_total": "45"}},
		} {
			requireWebhookError(t, b.deliver(t, ev.JSON(t)), http.StatusBadRequest, "invalid_request")
		}
	})
	t.Run("WrongMethod", func(t *testing.T) {
		resp, err := b.http.Get(b.url + "/v1/webhooks/stripe")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
	require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM payment_events"))
}

// TestWebhookRefusedBeforeTheBodyIsRead: a delivery whose Stripe-Signature
// cannot verify is answered 400 invalid_signature at once, without reading
// its body. The body here never ends: a server that read it first would
// never answer.
func TestWebhookRefusedBeforeTheBodyIsRead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, signature := range map[string]string{
		"Missing":      "",
		"Malformed":    "t=abc,v1=zz",
		"NoV1":         fmt.Sprintf("t=%d,v0=%s", time.Now().Unix(), strings.Repeat("0", 64)),
		"Stale":        fmt.Sprintf("t=%d,v1=%s", time.Now().Add(-time.Hour).Unix(), strings.Repeat("0", 64)),
		"TooLongToUse": "t=1," + strings.Repeat("v1=00,", 1000),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/v1/webhooks/stripe", endlessBody{ctx})
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			if signature != "" {
				req.Header.Set("Stripe-Signature", signature)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err, "answered without waiting for the body")
			defer resp.Body.Close()
			requireWebhookError(t, resp, http.StatusBadRequest, "invalid_signature")
		})
	}
	require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM payment_events"))
}

// endlessBody is a request body that sends nothing until ctx ends.
type endlessBody struct{ ctx context.Context }

func (b endlessBody) Read([]byte) (int, error) {
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}
