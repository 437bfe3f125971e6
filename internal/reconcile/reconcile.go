// Package reconcile closes the gaps a webhook can leave: holds that lapsed,
// sessions Stripe never reported, payments still settling, refunds Stripe did
// not accept, and events that never arrived (SPEC §5). Every fact it learns
// from Stripe goes through the webhook's own code path, and every Stripe call
// happens outside any database transaction.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/baseservice"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/checkout"
	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/payment"
)

const (
	// batch bounds the Stripe calls of one run; the next run goes on.
	batch = 100
	// processingAge is how long an async payment may settle before the
	// reconciler asks Stripe about it (SPEC §5).
	processingAge = 24 * time.Hour
	// passTimeout bounds one pass: batch lapsed sessions and batch
	// processing bookings, one or two Stripe calls each. River rescues a
	// pass whose instance died only after this long.
	passTimeout = 10 * time.Minute
	// waitPoll is how often an on-demand Run looks at its pass's job row.
	waitPoll = 50 * time.Millisecond
)

// Reconciler runs reconciliation against one database and Stripe account.
// Every pass is a River job (Args): the periodic one that River's elected
// leader inserts every RECONCILE_INTERVAL and the on-demand ones of Run are
// the same job, unique while it waits or runs, so two passes never overlap
// whichever instances insert and work them. No connection or lock is held
// across the pass: River marks the job running in one statement, and the
// pass takes a pooled connection per query like any request.
type Reconciler struct {
	pool      *pgxpool.Pool
	stripe    *client.API
	jobs      *river.Client[pgx.Tx]
	checkouts *checkout.Service
	processor *payment.Processor
	logger    *slog.Logger
	metrics   *metrics.Metrics
}

// New returns a Reconciler whose passes run as jobs of the jobs client.
func New(arch *baseservice.Archetype, jobs *river.Client[pgx.Tx], checkouts *checkout.Service, processor *payment.Processor) *Reconciler {
	return &Reconciler{
		pool: arch.Pool, stripe: arch.Stripe, jobs: jobs, checkouts: checkouts, processor: processor,
		logger: arch.Logger, metrics: arch.Metrics,
	}
}

// Args is the River job of one reconciliation pass.
type Args struct{}

func (Args) Kind() string { return "reconcile" }

// InsertOpts makes a pass unique while it is queued or running (so a pass
// is inserted again only once the previous one has finished) and runs each
// one once: a pass that fails is not retried, the next one does its work.
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 1,
		UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	}
}

// PeriodicJob inserts a pass every interval, and one when an instance
// becomes leader. River runs periodic jobs on the elected leader only; the
// pass itself goes to whichever instance fetches it first.
func PeriodicJob(interval time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return Args{}, nil },
		&river.PeriodicJobOpts{ID: "reconcile", RunOnStart: true})
}

// Worker runs the passes.
type Worker struct {
	river.WorkerDefaults[Args]
	r *Reconciler
}

// NewWorker returns the worker of Args jobs.
func NewWorker(r *Reconciler) *Worker { return &Worker{r: r} }

func (*Worker) Timeout(*river.Job[Args]) time.Duration { return passTimeout }

func (w *Worker) Work(ctx context.Context, _ *river.Job[Args]) error {
	s, err := w.r.pass(ctx)
	w.r.metrics.ReconcileRun(metrics.ReconcileSummary(s), err)
	if err != nil {
		w.r.logger.LogAttrs(ctx, slog.LevelError, "reconcile run failed", slog.String("error", err.Error()))
	} else {
		w.r.logger.LogAttrs(ctx, slog.LevelInfo, "reconciled",
			slog.Int("holds_expired", s.HoldsExpired), slog.Int("sessions_expired", s.SessionsExpired),
			slog.Int("sessions_completed", s.SessionsCompleted), slog.Int("processing_checked", s.ProcessingChecked),
			slog.Int("refunds_requested", s.RefundsRequested), slog.Int("failures", s.Failures))
	}
	// Kept on the job row whatever the outcome, for Run to read back.
	if outErr := river.RecordOutput(ctx, s); outErr != nil {
		return errors.Join(err, fmt.Errorf("record reconcile summary: %w", outErr))
	}
	return err
}

// Summary counts what one run did.
type Summary struct {
	// Skipped is true when an on-demand run found a pass running already.
	Skipped bool `json:"skipped"`
	// HoldsExpired: lapsed holds that had no Checkout Session.
	HoldsExpired int `json:"holds_expired"`
	// SessionsExpired: lapsed holds whose session Stripe expired.
	SessionsExpired int `json:"sessions_expired"`
	// SessionsCompleted: lapsed holds whose session Stripe reported complete.
	SessionsCompleted int `json:"sessions_completed"`
	// ProcessingChecked: bookings in processing for a day, read back.
	ProcessingChecked int `json:"processing_checked"`
	// RefundsRequested: refund jobs enqueued again for refund_pending
	// bookings whose job had given up (River retries each for weeks first).
	RefundsRequested int `json:"refunds_requested"`
	// Failures: bookings left for the next run after an error.
	Failures int `json:"failures"`
}

// Run reconciles once on demand (`slotpay reconcile`, POST
// /v1/admin/reconcile) and returns what the pass did. It inserts the pass's
// job and waits for it to finish; some instance's worker (this one's too, if
// its client is started) runs it. If a pass is already running, another
// instance is reconciling and Run reports Skipped; if one is queued, Run
// waits for that one. When ctx ends first, the pass still completes.
func (r *Reconciler) Run(ctx context.Context) (Summary, error) {
	res, err := r.jobs.Insert(ctx, Args{}, nil)
	if err != nil {
		return Summary{}, fmt.Errorf("enqueue reconcile pass: %w", err)
	}
	if res.UniqueSkippedAsDuplicate && res.Job.State == rivertype.JobStateRunning {
		return Summary{Skipped: true}, nil
	}
	job, err := r.wait(ctx, res.Job.ID)
	if err != nil {
		return Summary{}, err
	}
	var s Summary
	if out := job.Output(); len(out) > 0 {
		if err := json.Unmarshal(out, &s); err != nil {
			return Summary{}, fmt.Errorf("read reconcile summary: %w", err)
		}
	}
	if job.State != rivertype.JobStateCompleted {
		reason := string(job.State)
		if n := len(job.Errors); n > 0 {
			reason = job.Errors[n-1].Error
		}
		return s, fmt.Errorf("reconcile pass %d failed: %s", job.ID, reason)
	}
	return s, nil
}

// wait polls the job row until the job is finalized.
func (r *Reconciler) wait(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	ticker := time.NewTicker(waitPoll)
	defer ticker.Stop()
	for {
		job, err := r.jobs.JobGet(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("read reconcile pass %d: %w", id, err)
		}
		if job.FinalizedAt != nil {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for reconcile pass %d: %w", id, ctx.Err())
		case <-ticker.C:
		}
	}
}

// pass is one reconciliation: what it finds, it applies through the webhook's
// code path; each Stripe call is made outside any transaction.
func (r *Reconciler) pass(ctx context.Context) (Summary, error) {
	var s Summary
	q := db.New(r.pool)

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
		// Unique per booking: a refund job still queued or retrying makes
		// this a no-op; only one that was discarded is replaced.
		res, err := r.jobs.Insert(ctx, payment.RefundArgs{BookingID: b.ID, PaymentIntentID: *b.PaymentIntentID}, nil)
		if err != nil {
			s.Failures++
			r.logFailure(ctx, "enqueue refund", b.ID.String(), err)
			continue
		}
		if !res.UniqueSkippedAsDuplicate {
			s.RefundsRequested++
		}
	}
	return s, nil
}

func (r *Reconciler) logFailure(ctx context.Context, what, bookingID string, err error) {
	r.logger.LogAttrs(ctx, slog.LevelError, "reconcile: "+what,
		slog.String("booking_id", bookingID), slog.String("error", err.Error()))
}
