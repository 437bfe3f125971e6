package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stripe/stripe-go/v76"
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
	var res Result
	a, err := p.inTransaction(ctx, source, func(ctx context.Context, a *applier) error {
		// The unique index on stripe_event_id decides duplicates: a
		// concurrent delivery of the same event waits here until this
		// transaction ends, then finds the row.
		rowID, err := a.q.PaymentEventInsert(ctx, db.PaymentEventInsertParams{
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
		res, err = a.apply(ctx, rowID, ev)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("process event %s (%s): %w", ev.ID, ev.Type, err)
	}
	p.afterCommit(ctx, a)
	return res, nil
}

// ApplyUnmatched applies, through the same serialised path as a webhook,
// events still recorded unmatched whose booking is known by now (SPEC §5,
// the reconciler's second net). It returns how many it applied and how many
// failed; a failed one is logged and left for the next run.
func (p *Processor) ApplyUnmatched(ctx context.Context, maxRows int32) (applied, failed int, err error) {
	ids, err := database.New(p.pool).PaymentEventListUnmatchedKnown(ctx, maxRows)
	if err != nil {
		return 0, 0, fmt.Errorf("list unmatched events whose booking is known: %w", err)
	}
	for _, id := range ids {
		a, err := p.inTransaction(ctx, SourceReconcile, func(ctx context.Context, a *applier) error {
			row, err := a.q.PaymentEventGetByID(ctx, id)
			if err != nil {
				return fmt.Errorf("load event %d: %w", id, err)
			}
			return a.applyWaiting(ctx, []db.PaymentEvent{row})
		})
		if err != nil {
			failed++
			p.logger.LogAttrs(ctx, slog.LevelError, "could not apply an unmatched event whose booking is known; the next run retries",
				slog.Int64("payment_event_id", id), slog.String("error", err.Error()))
			continue
		}
		p.afterCommit(ctx, a)
		applied += len(a.outcomes)
	}
	return applied, failed, nil
}

// inTransaction runs fn with an applier in one transaction. A deadlock
// between the serialising locks of two events (an event that waited for
// one link, applied by a transaction holding another) aborts one of them;
// it is run again, as nothing of it was committed.
//
// A refund fact that cannot be ordered against a recorded one
// (Decision.ReadBack) aborts it too: the payment's refunds are read back
// from Stripe, outside the transaction, and it is run again with them.
func (p *Processor) inTransaction(ctx context.Context, source Source, fn func(context.Context, *applier) error) (*applier, error) {
	refundsNow := map[string]*booking.RefundsNow{}
	for attempt, readBacks := 1, 0; ; attempt++ {
		a := &applier{jobs: p.jobs, livemode: p.livemode, source: source, refundsNow: refundsNow}
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			a.tx, a.q = tx, database.New(tx)
			return fn(ctx, a)
		})
		if rb, ok := errors.AsType[*readBackNeeded](err); ok && readBacks < 3 {
			readBacks++
			now, readErr := p.readRefunds(ctx, rb.paymentIntentID)
			if readErr != nil {
				return a, fmt.Errorf("%w: %v", err, readErr)
			}
			refundsNow[rb.paymentIntentID] = now
			attempt--
			continue
		}
		if err == nil || !database.IsDeadlock(err) || attempt == 3 {
			return a, err
		}
	}
}

// readBackNeeded aborts a transaction whose refund fact needs the
// payment's refunds as Stripe has them now (booking.Decision.ReadBack).
type readBackNeeded struct{ paymentIntentID string }

func (e *readBackNeeded) Error() string {
	return "the event ties with a recorded refund fact; the refunds of " + e.paymentIntentID + " must be read back"
}

// readRefunds reads a payment's refunds back from Stripe: the amount
// received and the sum of refunds that neither failed nor were cancelled.
func (p *Processor) readRefunds(ctx context.Context, paymentIntentID string) (*booking.RefundsNow, error) {
	piParams := &stripe.PaymentIntentParams{}
	piParams.Context = ctx
	pi, err := p.stripe.PaymentIntents.Get(paymentIntentID, piParams)
	if err != nil {
		return nil, fmt.Errorf("read back payment intent %s: %w", paymentIntentID, err)
	}
	now := &booking.RefundsNow{Charged: pi.AmountReceived}
	params := &stripe.RefundListParams{PaymentIntent: stripe.String(paymentIntentID)}
	params.Context = ctx
	it := p.stripe.Refunds.List(params)
	for it.Next() {
		if r := it.Refund(); r.Status != stripe.RefundStatusFailed && r.Status != stripe.RefundStatusCanceled {
			now.Live += r.Amount
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read back the refunds of %s: %w", paymentIntentID, err)
	}
	return now, nil
}

// afterCommit counts and reports what a committed transaction did.
func (p *Processor) afterCommit(ctx context.Context, a *applier) {
	for _, t := range a.transitions {
		p.metrics.Transition(string(t.from), string(t.to))
	}
	for _, o := range a.outcomes {
		p.metrics.PaymentEvent(string(a.source), o.eventType, string(o.outcome))
		if o.outcome == booking.Review && !o.moved {
			// Nothing in the booking's status shows it: the log line and
			// slotpay_payment_events_total{outcome="review"} are the
			// operator's signal (docs/RUNBOOK.md).
			attrs := []slog.Attr{
				slog.String("stripe_event_id", o.eventID), slog.String("type", o.eventType),
				slog.String("source", string(a.source)), slog.String("detail", o.detail),
			}
			if o.bookingID != nil {
				attrs = append(attrs, slog.String("booking_id", o.bookingID.String()))
			}
			p.logger.LogAttrs(ctx, slog.LevelError, "payment event needs an operator's review", attrs...)
		}
	}
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
	source   Source
	// refundsNow holds the refunds read back from Stripe, by payment
	// intent, for refund facts that tie with a recorded one.
	refundsNow map[string]*booking.RefundsNow
	// transitions and outcomes are counted after commit: a rolled-back one
	// never happened.
	transitions []transition
	outcomes    []recorded
}

type transition struct{ from, to booking.Status }

// recorded is one ledger outcome this transaction wrote.
type recorded struct {
	eventID, eventType, detail string
	outcome                    booking.Outcome
	bookingID                  *uuid.UUID
	moved                      bool // the event changed the booking's status
}

func (a *applier) apply(ctx context.Context, rowID int64, ev event) (Result, error) {
	record := func(outcome booking.Outcome, detail string, bookingID *uuid.UUID, moved bool) (Result, error) {
		err := a.q.PaymentEventSetOutcome(ctx, db.PaymentEventSetOutcomeParams{
			ID: rowID, Outcome: string(outcome), Detail: detail, BookingID: bookingID,
		})
		if err != nil {
			return Result{}, fmt.Errorf("record outcome: %w", err)
		}
		a.outcomes = append(a.outcomes, recorded{
			eventID: ev.ID, eventType: ev.Type, detail: detail, outcome: outcome, bookingID: bookingID, moved: moved,
		})
		return Result{EventID: ev.ID, Type: ev.Type, Outcome: outcome, BookingID: bookingID, Detail: detail}, nil
	}

	if ev.Livemode != a.livemode {
		return record(booking.Ignored, fmt.Sprintf("livemode %t does not match this deployment's key (livemode %t)", ev.Livemode, a.livemode), nil, false)
	}
	if !ev.Handled {
		return record(booking.Ignored, "event type not handled", nil, false)
	}
	if err := a.serialize(ctx, ev); err != nil {
		return Result{}, err
	}
	b, found, err := a.lockBooking(ctx, ev)
	if err != nil {
		return Result{}, err
	}
	if !found {
		named, err := a.namedBooking(ctx, ev)
		if err != nil {
			return Result{}, err
		}
		if named == nil {
			return record(booking.Unmatched, "no booking matches yet; applied when one does", nil, false)
		}
		// Only sessions slotpay created pay a booking (SPEC §2.1).
		detail := "the session names this booking only through client_reference_id, not as a session slotpay created; it changes no booking"
		if moneyFact(ev.Fact.Kind) {
			return record(booking.Review, "paid, but "+detail, named, false)
		}
		return record(booking.Ignored, detail, named, false)
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
			if moneyFact(ev.Fact.Kind) {
				return record(booking.Review, "paid through a session that is not the booking's: "+detail, &b.ID, false)
			}
			return record(booking.Ignored, detail, &b.ID, false)
		}
	}
	var waitingForIntent []db.PaymentEvent
	if ev.SessionID != "" && ev.PaymentIntentID != "" && b.PaymentIntentID == nil {
		// Under the payment intent's lock (serialize): an event of the
		// intent that found no booking has committed its unmatched row, and
		// this statement sees it; one that comes later sees the link.
		waitingForIntent, err = a.q.BookingLinkPaymentIntent(ctx, db.BookingLinkPaymentIntentParams{BookingID: b.ID, PaymentIntentID: ev.PaymentIntentID})
		if err != nil {
			return Result{}, fmt.Errorf("link payment intent: %w", err)
		}
		b.PaymentIntentID = &ev.PaymentIntentID
	}

	if b.PaymentIntentID != nil {
		ev.Fact.RefundsNow = a.refundsNow[*b.PaymentIntentID]
	}
	d := booking.Decide(booking.Of(b), ev.Fact)
	if d.ReadBack {
		if b.PaymentIntentID == nil {
			return Result{}, fmt.Errorf("booking %s: a refund fact needs a read-back, but the booking has no payment intent", b.ID)
		}
		return Result{}, &readBackNeeded{paymentIntentID: *b.PaymentIntentID}
	}
	moved := d.To != booking.Status(b.Status)
	if moved {
		if d, err = a.transition(ctx, b, d, ev); err != nil {
			return Result{}, err
		}
	}
	if err := a.note(ctx, b.ID, d, ev); err != nil {
		return Result{}, err
	}
	res, err := record(d.Outcome, d.Reason, &b.ID, moved)
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

// moneyFact reports whether a session fact says money was or is being
// paid: one through a session that is not the booking's needs an operator.
func moneyFact(k booking.FactKind) bool {
	return k == booking.SessionPaid || k == booking.SessionUnpaid
}

// serialize takes the transaction-scoped locks of the event's session and
// payment intent, in that order, before anything is matched or linked
// (SPEC §2.1, events never lose a race). Matching and linking statements
// run after the lock is granted, so under READ COMMITTED they see every
// transaction that held it before.
func (a *applier) serialize(ctx context.Context, ev event) error {
	if ev.SessionID != "" {
		if err := a.q.PaymentEventSerializeSession(ctx, ev.SessionID); err != nil {
			return fmt.Errorf("serialise session %s: %w", ev.SessionID, err)
		}
	}
	if ev.PaymentIntentID != "" {
		if err := a.q.PaymentEventSerializePaymentIntent(ctx, ev.PaymentIntentID); err != nil {
			return fmt.Errorf("serialise payment intent %s: %w", ev.PaymentIntentID, err)
		}
	}
	return nil
}

// note records what a decision says besides the status: the dispute, and
// the times of refund facts.
func (a *applier) note(ctx context.Context, id uuid.UUID, d booking.Decision, ev event) error {
	if d.Disputed {
		params := db.BookingNoteDisputeParams{ID: id}
		if d.DisputeStatus != "" {
			params.DisputeStatus, params.DisputeStatusAt = &d.DisputeStatus, &ev.Created
		}
		if err := a.q.BookingNoteDispute(ctx, params); err != nil {
			return fmt.Errorf("note dispute: %w", err)
		}
	}
	if d.RefundFailedAt != nil || d.RefundedSeenAt != nil {
		err := a.q.BookingNoteRefundFacts(ctx, db.BookingNoteRefundFactsParams{
			ID: id, RefundFailedAt: d.RefundFailedAt, RefundedSeenAt: d.RefundedSeenAt,
		})
		if err != nil {
			return fmt.Errorf("note refund: %w", err)
		}
	}
	if d.RefundFailedAt != nil {
		// The refund's key holds Stripe's success for a day: an operator's
		// next refund must go out under a new one, or it replays the refund
		// that failed.
		attempt, err := NextAttempt(ctx, a.q, refundOperation(id))
		if err != nil {
			return err
		}
		return attempt.Failed(ctx, a.q)
	}
	return nil
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

// namedBooking returns the existing booking that a session names without
// slotpay's provenance, if any.
func (a *applier) namedBooking(ctx context.Context, ev event) (*uuid.UUID, error) {
	if ev.NamedID == nil {
		return nil, nil
	}
	b, err := a.q.BookingGetByID(ctx, *ev.NamedID)
	if database.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load booking %s: %w", *ev.NamedID, err)
	}
	return &b.ID, nil
}

// transition applies a decided status change. A late payment that would
// retake a slot someone else holds by now falls back to IfSlotTaken
// (refund_pending), decided by the exclusion constraint itself.
func (a *applier) transition(ctx context.Context, b db.Booking, d booking.Decision, ev event) (booking.Decision, error) {
	from := booking.Status(b.Status)
	if d.IfSlotTaken == "" {
		// refund_pending reached any other way (a refund that failed) is
		// never requested automatically: no refund job is inserted here.
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
// booking is known, in the order Stripe created them. Each is claimed first:
// one reached twice (through its session and its payment intent, or by the
// reconciler beside a webhook) is applied once.
func (a *applier) applyWaiting(ctx context.Context, rows []db.PaymentEvent) error {
	for _, row := range rows {
		ev, err := parseEvent(row.Payload)
		if err != nil {
			return fmt.Errorf("reread waiting event %d: %w", row.ID, err)
		}
		// The locks come before the row's, in the order every path takes.
		if err := a.serialize(ctx, ev); err != nil {
			return err
		}
		if _, err := a.q.PaymentEventClaimUnmatched(ctx, row.ID); database.IsNotFound(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("claim waiting event %s: %w", ev.ID, err)
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
