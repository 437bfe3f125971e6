package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/reconcile"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// scrape reads /metrics as Prometheus would.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Header().Get("Content-Type"), "text/plain")
	return rec.Body.String()
}

// requireSeries asserts that the scrape holds series (name and labels as
// Prometheus prints them) with value.
func requireSeries(t *testing.T, body, series, value string) {
	t.Helper()
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			require.Equal(t, value, rest, "series %s", series)
			return
		}
	}
	require.Failf(t, "series missing", "%s not in scrape:\n%s", series, body)
}

func TestWebhookCounters(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil)
	m.WebhookEvent("checkout.session.completed", "applied")
	m.WebhookEvent("checkout.session.completed", "applied")
	m.WebhookEvent("charge.refunded", "unmatched")
	m.WebhookRejected(metrics.RejectInvalidSignature)
	m.WebhookDuplicate()

	body := scrape(t, m)
	requireSeries(t, body, `slotpay_webhook_events_total{outcome="applied",type="checkout.session.completed"}`, "2")
	requireSeries(t, body, `slotpay_webhook_events_total{outcome="unmatched",type="charge.refunded"}`, "1")
	requireSeries(t, body, `slotpay_webhook_rejected_total{reason="invalid_signature"}`, "1")
	requireSeries(t, body, `slotpay_webhook_rejected_total{reason="processing_error"}`, "0")
	requireSeries(t, body, `slotpay_webhook_duplicates_total`, "1")
}

func TestTransitionsByFromAndTo(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil)
	m.Transition("", "pending_payment")
	m.Transition("pending_payment", "confirmed")
	m.Transition("pending_payment", "confirmed")

	body := scrape(t, m)
	requireSeries(t, body, `slotpay_booking_transitions_total{from="",to="pending_payment"}`, "1")
	requireSeries(t, body, `slotpay_booking_transitions_total{from="pending_payment",to="confirmed"}`, "2")
}

func TestReconcileRunCountsResultAndActions(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil)
	// The reconciler's own summary converts as is: a field added to one and
	// not the other stops this from compiling.
	m.ReconcileRun(metrics.ReconcileSummary(reconcile.Summary{HoldsExpired: 2, SessionsExpired: 1, Failures: 1}), nil)
	m.ReconcileRun(metrics.ReconcileSummary{Skipped: true}, nil)
	m.ReconcileRun(metrics.ReconcileSummary{}, errors.New("database down"))

	body := scrape(t, m)
	requireSeries(t, body, `slotpay_reconcile_runs_total{result="ok"}`, "1")
	requireSeries(t, body, `slotpay_reconcile_runs_total{result="skipped"}`, "1")
	requireSeries(t, body, `slotpay_reconcile_runs_total{result="error"}`, "1")
	requireSeries(t, body, `slotpay_reconcile_actions_total{action="hold_expired"}`, "2")
	requireSeries(t, body, `slotpay_reconcile_actions_total{action="session_expired"}`, "1")
	requireSeries(t, body, `slotpay_reconcile_actions_total{action="failure"}`, "1")
	require.Contains(t, body, "slotpay_reconcile_last_success_timestamp_seconds ")
}

// withCopiedRequest stands for httpapi's request-id middleware: it hands the
// next handler a copy of the request, so whatever a mux sets on that copy
// never reaches the request the outer middleware holds.
func withCopiedRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), struct{}{}, "req_1")))
	})
}

// observed is the HTTP layer's response observer, reduced to what metrics
// needs: the route from TrackRoute and the status.
func observed(m *metrics.Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, route := metrics.TrackRoute(r)
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		m.ObserveRequest(route(), rec.Code, time.Millisecond)
		w.WriteHeader(rec.Code)
	})
}

func TestTrackRouteLabelsByInnermostRoutePattern(t *testing.T) {
	t.Parallel()
	// slotpay's shape: an outer mux sends the /v1/ subtree to the generated
	// router, a mux of its own, behind middleware that copies the request.
	api := http.NewServeMux()
	api.HandleFunc("POST /v1/bookings/{id}/cancel", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusConflict)
	})
	outer := http.NewServeMux()
	outer.Handle("/v1/", withCopiedRequest(metrics.Route(api)))
	outer.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	m := metrics.New(nil)
	srv := httptest.NewServer(observed(m, withCopiedRequest(metrics.Route(outer))))
	t.Cleanup(srv.Close)

	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v1/bookings/0193a5e0-7b1a-7c3e-9f00-00000000a001/cancel"},
		{http.MethodPost, "/v1/bookings/another-id/cancel"},
		{http.MethodGet, "/healthz"},
		{http.MethodGet, "/no/such/path"},
	} {
		req, err := http.NewRequest(c.method, srv.URL+c.path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}

	body := scrape(t, m)
	// Both bookings land in one series: the pattern, not the path.
	requireSeries(t, body, `slotpay_http_request_duration_seconds_count{code="409",route="POST /v1/bookings/{id}/cancel"}`, "2")
	requireSeries(t, body, `slotpay_http_request_duration_seconds_count{code="200",route="GET /healthz"}`, "1")
	// The outer mux matched nothing: its NotFound handler has no pattern.
	requireSeries(t, body, `slotpay_http_request_duration_seconds_count{code="404",route="unmatched"}`, "1")
	require.NotContains(t, body, "another-id")
}

func TestTrackRouteWithoutRouteLabelsUnmatched(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil)
	h := observed(m, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/anything", nil))

	requireSeries(t, scrape(t, m), `slotpay_http_request_duration_seconds_count{code="200",route="unmatched"}`, "1")
}

func TestPoolStatsAndBuildInfo(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	require.NoError(t, tdb.Pool.Ping(t.Context()))
	m := metrics.New(tdb.Pool)

	body := scrape(t, m)
	requireSeries(t, body, "slotpay_db_pool_max_conns", "10")
	require.Contains(t, body, "slotpay_db_pool_acquired_conns 0")
	require.Contains(t, body, "slotpay_db_pool_total_conns ")
	require.Contains(t, body, "slotpay_db_pool_acquires_total ")
	require.Contains(t, body, `slotpay_build_info{go_version="go`)
	require.Contains(t, body, "go_goroutines ")
	require.Contains(t, body, "process_resident_memory_bytes ")
}

func TestNilMetricsCountsNothing(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	require.NotPanics(t, func() {
		m.WebhookEvent("checkout.session.completed", "applied")
		m.WebhookRejected(metrics.RejectInvalidSignature)
		m.WebhookDuplicate()
		m.Transition("pending_payment", "confirmed")
		m.ReconcileRun(metrics.ReconcileSummary{}, nil)
		m.ObserveRequest("GET /healthz", 200, time.Millisecond)
	})
}
