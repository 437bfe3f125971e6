package metrics_test

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/testkit"
)

// The alert rules and the Grafana dashboard (docs/alerts) name series by
// hand; a renamed or dropped series would leave an alert that can never fire
// and a panel that stays empty, without any error. Every slotpay_ name they
// use must be one that /metrics exposes.
func TestAlertsAndDashboardNameOnlySeriesThatExist(t *testing.T) {
	t.Parallel()
	m := metrics.New(testkit.NewDatabase(t).Pool)
	// Observe once, so that every vector has a child to expose.
	m.PaymentEvent("webhook", "checkout.session.completed", "applied")
	m.WebhookDuplicate()
	m.Transition("", "pending_payment")
	m.Notification("webhook", "booking.confirmed", "failed")
	m.ReconcileRun(metrics.ReconcileSummary{HoldsExpired: 1, Failures: 1}, nil)
	m.ObserveRequest("GET /", http.StatusNotFound, 0)

	families, err := m.Registry().Gather()
	require.NoError(t, err)
	var exposed []string
	for _, f := range families {
		exposed = append(exposed, f.GetName())
		if len(f.GetMetric()) > 0 && f.GetMetric()[0].GetHistogram() != nil {
			exposed = append(exposed, f.GetName()+"_bucket", f.GetName()+"_count", f.GetName()+"_sum")
		}
	}

	name := regexp.MustCompile(`\bslotpay_[a-z_]+`)
	for _, file := range []string{"../../docs/alerts/slotpay.rules.yml", "../../docs/alerts/slotpay.dashboard.json"} {
		body, err := os.ReadFile(file)
		require.NoError(t, err)
		used := name.FindAllString(string(body), -1)
		require.NotEmpty(t, used, file)
		for _, series := range used {
			require.True(t, slices.Contains(exposed, series), "%s names %s, which /metrics does not expose", file, series)
		}
	}
}
