package payment

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/baseservice"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/metrics"
)

// Source says how an event reached slotpay.
type Source string

const (
	SourceWebhook   Source = "webhook"
	SourceReconcile Source = "reconcile"
	SourceReplay    Source = "replay"
)

// Result is what processing one event did.
type Result struct {
	EventID   string
	Type      string
	Duplicate bool
	Outcome   booking.Outcome
	BookingID *uuid.UUID
	Detail    string
}

// Processor applies verified Stripe events.
type Processor struct {
	pool     *pgxpool.Pool
	stripe   *client.API
	jobs     *river.Client[pgx.Tx]
	livemode bool
	logger   *slog.Logger
	metrics  *metrics.Metrics
}

// NewProcessor returns a Processor for the deployment arch describes (its
// livemode comes from the secret key). The refunds its transitions decide
// are inserted into jobs in the deciding transaction and requested at Stripe
// by RefundWorker after commit.
func NewProcessor(arch *baseservice.Archetype, jobs *river.Client[pgx.Tx]) *Processor {
	return &Processor{
		pool: arch.Pool, stripe: arch.Stripe, jobs: jobs, livemode: arch.Config.Livemode(),
		logger: arch.Logger, metrics: arch.Metrics,
	}
}

// Process records a verified event in the ledger and applies it, in one
// transaction (SPEC §4.5): either both happen or, on any error, neither, so
// Stripe's retry processes the event afresh. A second delivery of an event id
// changes nothing and reports Duplicate.
func (p *Processor) Process(ctx context.Context, raw []byte, source Source) (Result, error) {
	ev, err := parseEvent(raw)
	if err != nil {
		return Result{}, err
	}
	var (
		res         Result
		transitions []transition
	)
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		// The unique index on stripe_event_id decides duplicates: a
		// concurrent delivery of the same event waits here until this
		// transaction ends, then finds the row.
		rowID, err := q.PaymentEventInsert(ctx, db.PaymentEventInsertParams{
			StripeEventID:     ev.ID,
			Type:              ev.Type,
			APIVersion:        ev.APIVersion,
			Livemode:          ev.Livemode,
			StripeCreatedAt:   ev.Created,
			Source:            string(source),
			CheckoutSessionID: optional(ev.SessionID),
			PaymentIntentID:   optional(ev.PaymentIntentID),
			Payload:           raw,
		})
		if database.IsNotFound(err) {
			res = Result{EventID: ev.ID, Type: ev.Type, Duplicate: true}
			return nil
		}
		if err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		a := applier{tx: tx, q: q, jobs: p.jobs, livemode: p.livemode}
		res, err = a.apply(ctx, rowID, ev)
		transitions = a.transitions
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("process event %s (%s): %w", ev.ID, ev.Type, err)
	}
	for _, t := range transitions {
		p.metrics.Transition(string(t.from), string(t.to))
	}
	return res, nil
}

// applier applies events inside one transaction.
type applier struct {
	tx pgx.Tx
	q  *db.Queries
	// jobs receives the refunds this transaction decides, as River jobs in
	// the same transaction: they exist exactly when the decision commits,
	// and the Stripe call happens after commit, never inside it.
	jobs     *river.Client[pgx.Tx]
	livemode bool
	// transitions are counted after commit: a rolled-back one never
	// happened.
	transitions []transition
}

type transition struct{ from, to booking.Status }

func (a *applier) apply(ctx context.Context, rowID int64, ev event) (Result, error) {
	record := func(outcome booking.Outcome, detail string, bookingID *uuid.UUID) (Result, error) {
		err := a.q.PaymentEventSetOutcome(ctx, db.PaymentEventSetOutcomeParams{
			ID: rowID, Outcome: string(outcome), Detail: detail, BookingID: bookingID,
		})
		if err != nil {
			return Result{}, fmt.Errorf("record outcome: %w", err)
		}
		return Result{EventID: ev.ID, Type: ev.Type, Outcome: outcome, BookingID: bookingID, Detail: detail}, nil
	}

	if ev.Livemode != a.livemode {
		return record(booking.Ignored, fmt.Sprintf("livemode %t does not match this deployment's key (livemode %t)", ev.Livemode, a.livemode), nil)
	}
	if !ev.Handled {
		return record(booking.Ignored, "event type not handled", nil)
	}
	b, found, err := a.lockBooking(ctx, ev)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return record(booking.Unmatched, "no booking matches yet; applied when one does", nil)
	}

	var linkedSession bool
	if ev.SessionID != "" {
		switch {
		case b.CheckoutSessionID == nil:
			// The webhook overtook the checkout response: link the session
			// now; the response will find it linked.
			if err := a.q.BookingLinkCheckoutSession(ctx, db.BookingLinkCheckoutSessionParams{ID: b.ID, CheckoutSessionID: &ev.SessionID}); err != nil {
				return Result{}, fmt.Errorf("link session: %w", err)
			}
			linkedSession = true
		case *b.CheckoutSessionID != ev.SessionID:
			detail := fmt.Sprintf("concerns session %s, not the booking's session %s", ev.SessionID, *b.CheckoutSessionID)
			if ev.Fact.Kind == booking.SessionPaid {
				return record(booking.Review, "paid through a session that is not the booking's: "+detail, &b.ID)
			}
			return record(booking.Ignored, detail, &b.ID)
		}
	}
	var waitingForIntent []db.PaymentEvent
	if ev.SessionID != "" && ev.PaymentIntentID != "" && b.PaymentIntentID == nil {
		waitingForIntent, err = a.q.BookingLinkPaymentIntent(ctx, db.BookingLinkPaymentIntentParams{BookingID: b.ID, PaymentIntentID: ev.PaymentIntentID})
		if err != nil {
			return Result{}, fmt.Errorf("link payment intent: %w", err)
		}
		b.PaymentIntentID = &ev.PaymentIntentID
	}

	d := booking.Decide(booking.Of(b), ev.Fact)
	if d.To != booking.Status(b.Status) {
		if d, err = a.transition(ctx, b, d, ev); err != nil {
			return Result{}, err
		}
	}
	if d.MarkDisputed {
		if err := a.q.BookingMarkDisputed(ctx, b.ID); err != nil {
			return Result{}, fmt.Errorf("mark disputed: %w", err)
		}
	}
	res, err := record(d.Outcome, d.Reason, &b.ID)
	if err != nil {
		return Result{}, err
	}

	// Events that arrived before this link existed were kept as unmatched;
	// they are applied now, in this transaction.
	if linkedSession {
		waiting, err := a.q.PaymentEventListUnmatchedBySession(ctx, &ev.SessionID)
		if err != nil {
			return Result{}, fmt.Errorf("list events waiting for %s: %w", ev.SessionID, err)
		}
		if err := a.applyWaiting(ctx, waiting); err != nil {
			return Result{}, err
		}
	}
	if err := a.applyWaiting(ctx, waitingForIntent); err != nil {
		return Result{}, err
	}
	return res, nil
}

// lockBooking finds the event's booking (SPEC §2.1, matching) and locks it,
// in one round trip.
func (a *applier) lockBooking(ctx context.Context, ev event) (db.Booking, bool, error) {
	var (
		b   db.Booking
		err error
	)
	switch {
	case ev.SessionID != "":
		b, err = a.q.BookingLockForSessionEvent(ctx, db.BookingLockForSessionEventParams{
			CheckoutSessionID: ev.SessionID, ReferenceID: ev.ReferenceID,
		})
	case ev.PaymentIntentID != "":
		b, err = a.q.BookingLockForPaymentIntent(ctx, &ev.PaymentIntentID)
	default:
		return db.Booking{}, false, nil
	}
	if database.IsNotFound(err) {
		return db.Booking{}, false, nil
	}
	if err != nil {
		return db.Booking{}, false, fmt.Errorf("match and lock booking: %w", err)
	}
	return b, true, nil
}

// transition applies a decided status change. A late payment that would
// retake a slot someone else holds by now falls back to IfSlotTaken
// (refund_pending), decided by the exclusion constraint itself.
func (a *applier) transition(ctx context.Context, b db.Booking, d booking.Decision, ev event) (booking.Decision, error) {
	from := booking.Status(b.Status)
	if d.IfSlotTaken == "" {
		_, err := booking.Transition(ctx, a.q, b, d.To, booking.EventCause(ev.Type, ev.ID))
		a.transitions = append(a.transitions, transition{from, d.To})
		return d, err
	}
	err := pgx.BeginFunc(ctx, a.tx, func(savepoint pgx.Tx) error {
		_, err := booking.Transition(ctx, database.New(savepoint), b, d.To, booking.EventCause(ev.Type, ev.ID))
		return err
	})
	if !database.IsOverlap(err) {
		a.transitions = append(a.transitions, transition{from, d.To})
		return d, err
	}
	if _, err := booking.Transition(ctx, a.q, b, d.IfSlotTaken, booking.EventCause(ev.Type, ev.ID)); err != nil {
		return d, err
	}
	d.Reason += "; the slot is taken by another booking, so the payment is refunded in full"
	d.To = d.IfSlotTaken
	a.transitions = append(a.transitions, transition{from, d.To})
	if d.To == booking.RefundPending && b.PaymentIntentID != nil {
		if err := EnqueueRefund(ctx, a.jobs, a.tx, b.ID, *b.PaymentIntentID); err != nil {
			return d, err
		}
	}
	return d, nil
}

// applyWaiting applies events that were recorded unmatched, now that their
// booking is known, in the order Stripe created them.
func (a *applier) applyWaiting(ctx context.Context, rows []db.PaymentEvent) error {
	for _, row := range rows {
		ev, err := parseEvent(row.Payload)
		if err != nil {
			return fmt.Errorf("reread waiting event %d: %w", row.ID, err)
		}
		if _, err := a.apply(ctx, row.ID, ev); err != nil {
			return fmt.Errorf("apply waiting event %s: %w", ev.ID, err)
		}
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
