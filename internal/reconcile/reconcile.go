// Package reconcile closes the gaps a webhook can leave: holds that lapsed,
// sessions Stripe never reported, payments still settling, refunds Stripe did
// not accept, and events that never arrived (SPEC §5). Every fact it learns
// from Stripe goes through the webhook's own code path, and every Stripe call
// happens outside any database transaction.
package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/checkout"
	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/payment"
)

const (
	// lockKey is the PostgreSQL advisory lock that lets one instance at a
	// time reconcile.
	lockKey int64 = 0x736c6f7470617901
	// batch bounds the Stripe calls of one run; the next run goes on.
	batch = 100
	// processingAge is how long an async payment may settle before the
	// reconciler asks Stripe about it (SPEC §5).
	processingAge = 24 * time.Hour
)

// Reconciler runs reconciliation against one database and Stripe account.
type Reconciler struct {
	pool      *pgxpool.Pool
	stripe    *client.API
	checkouts *checkout.Service
	processor *payment.Processor
	logger    *slog.Logger
	metrics   *metrics.Metrics
}

// New returns a Reconciler; m (which may be nil) counts its runs.
func New(pool *pgxpool.Pool, stripe *client.API, checkouts *checkout.Service, processor *payment.Processor, logger *slog.Logger, m *metrics.Metrics) *Reconciler {
	return &Reconciler{pool: pool, stripe: stripe, checkouts: checkouts, processor: processor, logger: logger, metrics: m}
}

// Summary counts what one run did.
type Summary struct {
	// Skipped is true when another instance was reconciling.
	Skipped bool `json:"skipped"`
	// UnmatchedApplied: events recorded unmatched whose booking became
	// known, applied now (a second net under SPEC §2.1's serialisation).
	UnmatchedApplied int `json:"unmatched_applied"`
	// HoldsExpired: lapsed holds that had no Checkout Session.
	HoldsExpired int `json:"holds_expired"`
	// SessionsExpired: lapsed holds whose session Stripe expired.
	SessionsExpired int `json:"sessions_expired"`
	// SessionsCompleted: lapsed holds whose session Stripe reported complete.
	SessionsCompleted int `json:"sessions_completed"`
	// ProcessingChecked: bookings in processing for a day, read back.
	ProcessingChecked int `json:"processing_checked"`
	// RefundsRequested: refunds of refund_pending bookings Stripe accepted.
	RefundsRequested int `json:"refunds_requested"`
	// Failures: bookings left for the next run after an error.
	Failures int `json:"failures"`
}

// Run reconciles once, unless another instance is doing so.
func (r *Reconciler) Run(ctx context.Context) (Summary, error) {
	s, err := r.run(ctx)
	r.metrics.ReconcileRun(metrics.ReconcileSummary(s), err)
	return s, err
}

func (r *Reconciler) run(ctx context.Context) (Summary, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey).Scan(&locked); err != nil {
		return Summary{}, fmt.Errorf("take reconcile lock: %w", err)
	}
	if !locked {
		return Summary{Skipped: true}, nil
	}
	defer func() {
		// Released with the session if this fails: the lock is tied to
		// this connection.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey)
	}()

	var s Summary
	q := db.New(r.pool)

	applied, failed, err := r.processor.ApplyUnmatched(ctx, batch)
	if err != nil {
		return s, err
	}
	s.UnmatchedApplied, s.Failures = applied, s.Failures+failed

	expired, err := booking.ExpireLapsedHolds(ctx, r.pool, time.Now())
	if err != nil {
		return s, fmt.Errorf("expire lapsed holds: %w", err)
	}
	s.HoldsExpired = len(expired)
	for range expired {
		r.metrics.Transition(string(booking.PendingPayment), string(booking.Expired))
	}

	lapsed, err := q.BookingListLapsedWithSession(ctx, batch)
	if err != nil {
		return s, fmt.Errorf("list lapsed holds with a session: %w", err)
	}
	for _, b := range lapsed {
		status, err := r.checkouts.CloseLapsed(ctx, *b.CheckoutSessionID)
		switch {
		case err != nil:
			s.Failures++
			r.logFailure(ctx, "close lapsed checkout session", b.ID.String(), err)
		case status == stripe.CheckoutSessionStatusExpired:
			s.SessionsExpired++
		case status == stripe.CheckoutSessionStatusComplete:
			s.SessionsCompleted++
		}
	}

	processing, err := q.BookingListProcessingSince(ctx, db.BookingListProcessingSinceParams{
		Before: time.Now().Add(-processingAge), MaxRows: batch,
	})
	if err != nil {
		return s, fmt.Errorf("list processing bookings: %w", err)
	}
	for _, b := range processing {
		if _, err := r.checkouts.Settle(ctx, *b.CheckoutSessionID); err != nil {
			s.Failures++
			r.logFailure(ctx, "settle processing booking", b.ID.String(), err)
			continue
		}
		s.ProcessingChecked++
	}

	refunds, err := q.BookingListRefundsDue(ctx, batch)
	if err != nil {
		return s, fmt.Errorf("list refunds due: %w", err)
	}
	for _, b := range refunds {
		if b.PaymentIntentID == nil {
			continue // nothing was charged through a payment intent
		}
		if err := r.processor.RequestRefund(ctx, b.ID, *b.PaymentIntentID); err != nil {
			s.Failures++
			r.logFailure(ctx, "request refund", b.ID.String(), err)
			continue
		}
		s.RefundsRequested++
	}
	return s, nil
}

func (r *Reconciler) logFailure(ctx context.Context, what, bookingID string, err error) {
	r.logger.LogAttrs(ctx, slog.LevelError, "reconcile: "+what,
		slog.String("booking_id", bookingID), slog.String("error", err.Error()))
}

// Loop reconciles every interval until ctx ends, starting at once.
func (r *Reconciler) Loop(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		s, err := r.Run(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.logger.LogAttrs(ctx, slog.LevelError, "reconcile run failed", slog.String("error", err.Error()))
		case !s.Skipped:
			r.logger.LogAttrs(ctx, slog.LevelInfo, "reconciled",
				slog.Int("holds_expired", s.HoldsExpired), slog.Int("sessions_expired", s.SessionsExpired),
				slog.Int("sessions_completed", s.SessionsCompleted), slog.Int("processing_checked", s.ProcessingChecked),
				slog.Int("refunds_requested", s.RefundsRequested), slog.Int("failures", s.Failures))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
