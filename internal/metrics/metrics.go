// Package metrics owns slotpay's Prometheus registry and the series that
// operators read at /metrics (see docs/RUNBOOK.md for what each one means and
// the alerts built on them).
//
// Callers count what happened through plain methods (PaymentEvent,
// Transition, ReconcileRun, …) so that no other package handles a
// prometheus type. A nil *Metrics counts nothing, so code under test may run
// without one.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "slotpay"

// Metrics is slotpay's registry and its collectors.
type Metrics struct {
	registry *prometheus.Registry

	paymentEvents     *prometheus.CounterVec
	webhookRejected   *prometheus.CounterVec
	webhookDuplicates prometheus.Counter
	httpDuration      *prometheus.HistogramVec
	transitions       *prometheus.CounterVec
	reconcileRuns     *prometheus.CounterVec
	reconcileActions  *prometheus.CounterVec
	reconcileLastOK   prometheus.Gauge
	notifications     *prometheus.CounterVec
}

// counterVec is a counter of slotpay's namespace, one series per value of
// labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

// httpBuckets span a cached availability read (a millisecond) to a Stripe
// call that stripe-go retried (seconds); the webhook's 50 ms target sits
// between two buckets' edges so its p99 can be read off directly.
var httpBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns slotpay's metrics, reading pool statistics from pool when it is
// not nil. Each call has its own registry, so tests may create many.
func New(pool *pgxpool.Pool) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		paymentEvents: counterVec("payment_events_total",
			"Ledger outcomes written for Stripe events, by source (webhook, reconcile, replay), event type and outcome (applied, ignored, unmatched, review); an event applied after waiting unmatched counts again under its new outcome.",
			"source", "type", "outcome"),
		notifications: counterVec("notifications_total",
			"Delivery attempts of customer e-mails and merchant webhooks, by channel (email, webhook), event type (booking.confirmed, …) and outcome (delivered, failed, logged: written to the log for want of SMTP_URL).",
			"channel", "type", "outcome"),
		webhookRejected: counterVec("webhook_rejected_total",
			"Webhook deliveries refused before anything was recorded, by reason (invalid_signature, payload_too_large, unreadable_body, processing_error).",
			"reason"),
		webhookDuplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "webhook_duplicates_total",
			Help: "Deliveries of a Stripe event id already in the ledger, answered 200 without change.",
		}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP request duration by ServeMux route pattern and status code.",
			Buckets: httpBuckets,
		}, []string{"route", "code"}),
		transitions: counterVec("booking_transitions_total",
			"Booking status changes committed, by from and to status (from is \"\" for a new booking).",
			"from", "to"),
		reconcileRuns: counterVec("reconcile_runs_total",
			"Reconciler runs by result: ok, skipped (another instance held the lock), error.",
			"result"),
		reconcileActions: counterVec("reconcile_actions_total",
			"What reconciler runs did, by action; action failure counts bookings left for the next run after an error.",
			"action"),
		reconcileLastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "reconcile_last_success_timestamp_seconds",
			Help: "Unix time of the last reconciler run that completed in this instance (skipped runs count: another instance did the work).",
		}),
	}
	m.registry.MustRegister(
		m.paymentEvents, m.webhookRejected, m.webhookDuplicates, m.httpDuration,
		m.transitions, m.reconcileRuns, m.reconcileActions, m.reconcileLastOK, m.notifications,
		newBuildInfo(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if pool != nil {
		m.registry.MustRegister(newPoolCollector(pool))
	}
	// Series with a small, known label set start at zero, so that rate()
	// and absent-based alerts work before the first event.
	for _, reason := range []string{RejectInvalidSignature, RejectPayloadTooLarge, RejectUnreadableBody, RejectProcessingError} {
		m.webhookRejected.WithLabelValues(reason)
	}
	for _, result := range []string{"ok", "skipped", "error"} {
		m.reconcileRuns.WithLabelValues(result)
	}
	return m
}

// Reasons a webhook delivery is rejected, for WebhookRejected.
const (
	RejectInvalidSignature = "invalid_signature"
	RejectPayloadTooLarge  = "payload_too_large"
	RejectUnreadableBody   = "unreadable_body"
	// RejectProcessingError: the signature held but recording or applying
	// the event failed (500); Stripe retries it.
	RejectProcessingError = "processing_error"
)

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is the registry itself, for a test or a caller that adds its own
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// PaymentEvent counts a committed ledger outcome of an event from source.
func (m *Metrics) PaymentEvent(source, eventType, outcome string) {
	if m == nil {
		return
	}
	m.paymentEvents.WithLabelValues(source, eventType, outcome).Inc()
}

// WebhookRejected counts a delivery answered with an error before or
// instead of being recorded; reason is one of the Reject… constants.
func (m *Metrics) WebhookRejected(reason string) {
	if m == nil {
		return
	}
	m.webhookRejected.WithLabelValues(reason).Inc()
}

// WebhookDuplicate counts a delivery of an event already in the ledger.
func (m *Metrics) WebhookDuplicate() {
	if m == nil {
		return
	}
	m.webhookDuplicates.Inc()
}

// Transition counts a committed booking status change. Call it after the
// transaction commits: a rolled-back change did not happen.
func (m *Metrics) Transition(from, to string) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(from, to).Inc()
}

// ReconcileSummary mirrors reconcile.Summary field for field, so that a
// reconcile.Summary converts to it directly (metrics.ReconcileSummary(s)):
// this package must not import reconcile, which will count through it.
type ReconcileSummary struct {
	Skipped           bool
	UnmatchedApplied  int
	HoldsExpired      int
	SessionsExpired   int
	SessionsCompleted int
	ProcessingChecked int
	RefundsRequested  int
	Failures          int
}

// ReconcileRun counts one reconciler run: its result and what it did. err is
// the run's error, if it stopped on one.
func (m *Metrics) ReconcileRun(s ReconcileSummary, err error) {
	if m == nil {
		return
	}
	switch {
	case err != nil:
		m.reconcileRuns.WithLabelValues("error").Inc()
	case s.Skipped:
		m.reconcileRuns.WithLabelValues("skipped").Inc()
		m.reconcileLastOK.SetToCurrentTime()
	default:
		m.reconcileRuns.WithLabelValues("ok").Inc()
		m.reconcileLastOK.SetToCurrentTime()
	}
	for action, n := range map[string]int{
		"unmatched_applied":  s.UnmatchedApplied,
		"hold_expired":       s.HoldsExpired,
		"session_expired":    s.SessionsExpired,
		"session_completed":  s.SessionsCompleted,
		"processing_checked": s.ProcessingChecked,
		"refund_requested":   s.RefundsRequested,
		"failure":            s.Failures,
	} {
		m.reconcileActions.WithLabelValues(action).Add(float64(n))
	}
}

// ObserveRequest records one request's duration by route pattern and status.
func (m *Metrics) ObserveRequest(route string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpDuration.WithLabelValues(route, strconv.Itoa(code)).Observe(d.Seconds())
}

// Notification counts one delivery attempt of a notification: channel
// email or webhook, the event type, and the outcome (delivered, failed,
// logged).
func (m *Metrics) Notification(channel, eventType, outcome string) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(channel, eventType, outcome).Inc()
}
