package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	apispec "github.com/slotpay/slotpay/api"
)

func (b *testBundle) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := b.http.Get(b.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func TestOperations(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("Healthz", func(t *testing.T) {
		resp, body := b.get(t, "/healthz")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.JSONEq(t, `{"status":"ok"}`, body)
	})
	t.Run("Readyz", func(t *testing.T) {
		resp, body := b.get(t, "/readyz")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
	})
	t.Run("OpenAPISpec", func(t *testing.T) {
		resp, body := b.get(t, "/openapi.yaml")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.True(t, strings.HasPrefix(body, "openapi: 3.0"))
		require.Contains(t, body, "/v1/bookings/{id}/checkout")
		require.Equal(t, string(apispec.OpenAPI), body, "the contract the binary was built from, byte for byte")
	})
	t.Run("SwaggerUIFromTheBinary", func(t *testing.T) {
		resp, body := b.get(t, "/docs/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, "swagger-ui")
		require.Contains(t, body, "/openapi.yaml")
		require.NotContains(t, body, "cdn", "no outside requests")
	})
	t.Run("UnknownRoutesAnswerTheEnvelope", func(t *testing.T) {
		for _, path := range []string{"/nope", "/v1/nope", "/v1/bookings/not-a-uuid/x"} {
			resp, body := b.get(t, path)
			requireError(t, http.StatusNotFound, "not_found", resp.StatusCode, []byte(body))
		}
	})
	t.Run("WrongMethodAnswers405WithAllow", func(t *testing.T) {
		for _, c := range []struct{ method, path, allow string }{
			{http.MethodDelete, "/v1/resources", "GET"},
			{http.MethodGet, "/v1/bookings", "POST"},
			{http.MethodPut, "/v1/admin/session", "DELETE, POST"},
			{http.MethodGet, "/v1/webhooks/stripe", "POST"},
			{http.MethodPost, "/healthz", "GET"},
			{http.MethodPost, "/booking/success", "GET"},
			{http.MethodDelete, "/static/app.css", "GET"},
		} {
			req, err := http.NewRequestWithContext(t.Context(), c.method, b.url+c.path, nil)
			require.NoError(t, err)
			resp, err := b.http.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			requireError(t, http.StatusMethodNotAllowed, "invalid_request", resp.StatusCode, body)
			require.Equal(t, c.allow, resp.Header.Get("Allow"), "%s %s", c.method, c.path)
		}
	})
}

// TestReadyzFailsWhileMigrationsArePending: slotpay's own and River's (its
// job tables hold the refunds and passes an instance inserts).
func TestReadyzFailsWhileMigrationsArePending(t *testing.T) {
	t.Parallel()
	for name, undo := range map[string]string{
		"Slotpay": "DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)",
		"River":   "DELETE FROM river_migration WHERE version = (SELECT max(version) FROM river_migration)",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.db.Exec(t, undo)
			resp, body := b.get(t, "/readyz")
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
			require.Contains(t, body, "migration")
		})
	}
}

func TestReadyzFailsWhileTheDatabaseIsUnreachable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.db.Pool.Close()
	resp, body := b.get(t, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	resp, _ = b.get(t, "/healthz")
	require.Equal(t, http.StatusOK, resp.StatusCode, "liveness does not depend on the database")
}

// TestMetrics: what happened is counted, by route pattern (never raw path),
// event type and outcome, and transition.
func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, co := b.paidBooking(t, 10)
	payload := completed(bk, co).JSON(t)
	requireReceived(t, b.deliver(t, payload), false)
	requireReceived(t, b.deliver(t, payload), true)
	requireWebhookError(t, b.deliverSigned(t, payload, "t=1,v1=00"), http.StatusBadRequest, "invalid_signature")

	resp, body := b.get(t, "/metrics")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, series := range []string{
		`slotpay_webhook_events_total{outcome="applied",type="checkout.session.completed"} 1`,
		`slotpay_webhook_duplicates_total 1`,
		`slotpay_webhook_rejected_total{reason="invalid_signature"} 1`,
		`slotpay_booking_transitions_total{from="",to="pending_payment"} 1`,
		`slotpay_booking_transitions_total{from="pending_payment",to="confirmed"} 1`,
		`slotpay_http_request_duration_seconds_count{code="201",route="POST /v1/bookings"} 1`,
		`slotpay_http_request_duration_seconds_count{code="200",route="POST /v1/bookings/{id}/checkout"} 1`,
		`slotpay_http_request_duration_seconds_count{code="200",route="POST /v1/webhooks/stripe"} 2`,
		`slotpay_db_pool_`,
		`slotpay_build_info`,
	} {
		require.Contains(t, body, series)
	}
	require.NotContains(t, body, bk.Id.String(), "routes are labelled by pattern, not path")
}
