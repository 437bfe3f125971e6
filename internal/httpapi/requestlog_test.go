package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRequestIsOneLogLine: what a handler adds with logAlso (a webhook's
// event, type and outcome) goes on the request's own line, written when the
// request ends: one line per request, not one per thing it did.
func TestRequestIsOneLogLine(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	s := &Server{logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	h := s.withRequestID(s.observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logAlso(r.Context(), slog.String("stripe_event_id", "evt_1"), slog.String("outcome", "applied"))
		w.WriteHeader(http.StatusOK)
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/webhooks/stripe", nil))

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 1, logs.String())
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &line))
	require.Equal(t, "request", line["msg"])
	require.Equal(t, rec.Header().Get("X-Request-Id"), line["request_id"])
	require.EqualValues(t, 200, line["status"])
	require.Equal(t, "evt_1", line["stripe_event_id"])
	require.Equal(t, "applied", line["outcome"])
}
