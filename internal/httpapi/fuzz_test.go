package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

var fuzzClient = &http.Client{Timeout: testkit.WaitTimeout}

// post sends body as JSON without the validating transport: a fuzz
// function may not report through the F that set it up.
func post(t *testing.T, url string, body []byte, headers map[string]string) (int, []byte) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := fuzzClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// requireClientError checks that a refusal is the error envelope and
// never a server error.
func requireClientError(t *testing.T, status int, body []byte) {
	require.Less(t, status, 500, "bad input is never a server error: %s", body)
	if status >= 400 {
		var env errorEnvelope
		require.NoError(t, json.Unmarshal(body, &env), string(body))
		require.NotEmpty(t, env.Error.Code, string(body))
	}
}

// FuzzWebhook sends arbitrary bodies to the Stripe webhook, each once with a
// signature from another secret and once validly signed: a bad signature
// never leaves a ledger row, and no body, however malformed, is a 5xx.
func FuzzWebhook(f *testing.F) {
	b := setup(f, withWriteLimit(-1, 0))
	bk := b.hold(f, at(10), at(11))
	for _, ev := range []testkit.Event{
		testkit.CheckoutSessionCompleted("cs_test_fuzz", bk.Id.String(), bk.AmountTotal, bk.Currency),
		testkit.ChargeRefunded("pi_test_fuzz", 9000, 9000, "eur"),
		testkit.DisputeCreated("pi_test_fuzz", 9000, "eur"),
	} {
		f.Add(ev.JSON(f))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"evt_1","type":"checkout.session.completed","created":1,"livemode":false,"data":{"object":{}}}`))
	f.Add([]byte(`not json`))

	url := b.url + "/v1/webhooks/stripe"
	f.Fuzz(func(t *testing.T, body []byte) {
		before := b.db.Count(t, "SELECT count(*) FROM payment_events")
		status, out := post(t, url, body, map[string]string{
			"Stripe-Signature": testkit.SignatureHeader(body, "whsec_not_ours", time.Now()),
		})
		require.Equal(t, http.StatusBadRequest, status, string(out))
		require.Equal(t, before, b.db.Count(t, "SELECT count(*) FROM payment_events"), "a bad signature leaves no row")

		status, out = post(t, url, body, map[string]string{
			"Stripe-Signature": testkit.SignatureHeader(body, webhookSecret, time.Now()),
		})
		requireClientError(t, status, out)
	})
}

// FuzzCreateBooking sends arbitrary bodies to POST /v1/bookings through the
// whole HTTP stack (content type, validation, decoding, slot rules): each
// is a booking or a client error, never a server error.
func FuzzCreateBooking(f *testing.F) {
	b := setup(f, withWriteLimit(-1, 0))
	valid, err := json.Marshal(bookingRequest(b.resource.ID, at(10), at(12)))
	require.NoError(f, err)
	f.Add(valid)
	f.Add(bytes.Replace(valid, []byte("Ada Lovelace"), []byte(`Ada \u0000 Lovelace`), 1))
	f.Add(bytes.Replace(valid, []byte(`"customer"`), []byte(`"amount_total":1,"customer"`), 1))
	f.Add([]byte(`{"resource_id":"00000000-0000-0000-0000-000000000000","starts_at":"0001-01-01T00:00:00Z","ends_at":"9999-12-31T23:59:59Z","customer":{"email":"a@b","name":"x"}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"customer":{"email":"` + "\xff" + `"}}`))

	url := b.url + "/v1/bookings"
	f.Fuzz(func(t *testing.T, body []byte) {
		status, out := post(t, url, body, nil)
		requireClientError(t, status, out)
		if status == http.StatusCreated {
			// Whatever was sent, the price is the server's.
			var got struct {
				ID          uuid.UUID `json:"id"`
				AmountTotal int64     `json:"amount_total"`
			}
			require.NoError(t, json.Unmarshal(out, &got))
			require.Equal(t, 1, b.db.Count(t, `SELECT count(*) FROM bookings k JOIN resources r ON r.id = k.resource_id
				WHERE k.id = $1 AND k.amount_total = r.unit_amount * extract(epoch FROM k.ends_at - k.starts_at)::bigint / 60 / r.slot_minutes`, got.ID))
			testkit.SetBooking(t, b.db, got.ID, testkit.BookingOpts{Status: booking.Cancelled})
		}
	})
}
