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
//
// The transaction takes two network round trips in the common case (issue
// 12): a first flight begins it, takes the event's serialising locks,
// records the event, locks its booking and lists the events waiting for its
// session and payment intent; Decide runs on the locked row; a second flight
// makes the transition, records it and the outcome, and commits. Rarer
// paths (a late payment retaking its slot, a failed refund, waiting events
// to apply) send what is queued and go on statement by statement in the same
// transaction.
func (p *Processor) Process(ctx context.Context, raw []byte, source Source) (Result, error) {
	ev, err := parseEvent(raw)
	if err != nil {
		return Result{}, err
	}
	r := p.retrier()
	for {
		a := r.applier(source)
		res, err := a.process(ctx, p.pool, ev, raw)
		if err == nil {
			p.afterCommit(ctx, a)
			return res, nil
		}
		if again, err := r.again(ctx, err); !again {
			return Result{}, fmt.Errorf("process event %s (%s): %w", ev.ID, ev.Type, err)
		}
	}
}

// process is one attempt at Process's transaction.
func (a *applier) process(ctx context.Context, pool *pgxpool.Pool, ev event, raw []byte) (Result, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("acquire a connection: %w", err)
	}
	defer conn.Release()

	var (
		first     database.Flight
		m         matched
		rowID     int64
		duplicate bool
	)
	first.Begin()
	applies := a.applies(ev)
	if applies {
		a.queueSerialize(ctx, &first, ev)
	}
	// The unique index on stripe_event_id decides duplicates: a concurrent
	// delivery of the same event waits (on the serialising locks, or here)
	// until this transaction ends, then finds the row.
	first.Queue(func(q *db.Queries) error {
		var err error
		rowID, err = q.PaymentEventInsert(ctx, db.PaymentEventInsertParams{
			StripeEventID:     ev.ID,
			Type:              ev.Type,
			APIVersion:        ev.APIVersion,
			Livemode:          ev.Livemode,
			StripeCreatedAt:   ev.Created,
			Source:            string(a.source),
			CheckoutSessionID: optional(ev.SessionID),
			PaymentIntentID:   optional(ev.PaymentIntentID),
			// The verified bytes as they came: no re-encoding.
			Payload: raw,
		})
		duplicate = database.IsNotFound(err)
		return accept(err, "record event")
	})
	if applies {
		a.queueMatch(ctx, &first, ev, &ev.ID, &m)
	}
	tx, err := first.Send(ctx, conn)
	if tx != nil {
		// Anything but the committing flight leaves the transaction open
		// or failed: a duplicate (which changed nothing and locked no row),
		// an error.
		defer func() {
			if conn.Conn().PgConn().TxStatus() != 'I' {
				_ = tx.Rollback(context.WithoutCancel(ctx))
			}
		}()
	}
	if err != nil {
		return Result{}, err
	}
	if duplicate {
		return Result{EventID: ev.ID, Type: ev.Type, Duplicate: true}, nil
	}
	a.tx, a.q = tx, database.New(tx)
	res, err := a.decide(ctx, rowID, ev, m)
	if err != nil {
		return Result{}, err
	}
	a.flight.Commit()
	if _, err := a.flight.Send(ctx, tx); err != nil {
		return Result{}, err
	}
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

// inTransaction runs fn with an applier in one transaction, again when
// retry says so.
func (p *Processor) inTransaction(ctx context.Context, source Source, fn func(context.Context, *applier) error) (*applier, error) {
	r := p.retrier()
	for {
		a := r.applier(source)
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			a.tx, a.q = tx, database.New(tx)
			if err := fn(ctx, a); err != nil {
				return err
			}
			return a.sync(ctx)
		})
		if err == nil {
			return a, nil
		}
		if again, err := r.again(ctx, err); !again {
			return a, err
		}
	}
}

// retry decides whether a failed transaction of the processor runs again;
// nothing of a failed one was committed. A deadlock between the serialising
// locks of two events (an event that waited for one link, applied by a
// transaction holding another) aborts one of them: it runs again, three
// attempts in all. A refund fact that cannot be ordered against a recorded
// one (Decision.ReadBack) aborts it too: the payment's refunds are read back
// from Stripe, outside any transaction, and it runs again with them.
type retry struct {
	p          *Processor
	refundsNow map[string]*booking.RefundsNow
	deadlocks  int
	readBacks  int
}

func (p *Processor) retrier() *retry {
	return &retry{p: p, refundsNow: map[string]*booking.RefundsNow{}}
}

// applier is a fresh applier for one attempt, with what was read back.
func (r *retry) applier(source Source) *applier {
	a := r.p.newApplier(source)
	a.refundsNow = r.refundsNow
	return a
}

// again reports whether the attempt that failed with err runs again, and
// otherwise the error to return.
func (r *retry) again(ctx context.Context, err error) (bool, error) {
	if rb, ok := errors.AsType[*readBackNeeded](err); ok && r.readBacks < 3 {
		r.readBacks++
		now, readErr := r.p.readRefunds(ctx, rb.paymentIntentID)
		if readErr != nil {
			return false, fmt.Errorf("%w: %v", err, readErr)
		}
		r.refundsNow[rb.paymentIntentID] = now
		return true, nil
	}
	r.deadlocks++
	return database.IsDeadlock(err) && r.deadlocks < 3, err
}

func (p *Processor) newApplier(source Source) *applier {
	return &applier{jobs: p.jobs, livemode: p.livemode, source: source, flight: &database.Flight{}}
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
	// flight holds the statements queued and not sent yet; a statement
	// run on q directly must come after them (sync).
	flight *database.Flight
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

// matched is what the matching statements answered for an event.
type matched struct {
	booking db.Booking
	found   bool
	// waiting says that events of the event's session or payment intent
	// wait for a link; they are applied if this event links them to the
	// booking (applyLinked).
	waiting bool
}

// applies reports whether the event can change a booking in this
// deployment; one that cannot is recorded as ignored.
func (a *applier) applies(ev event) bool { return ev.Livemode == a.livemode && ev.Handled }

// apply applies an event recorded before (one that waited for its
// booking), in a flight of its own for the matching statements.
func (a *applier) apply(ctx context.Context, rowID int64, ev event) (Result, error) {
	var m matched
	if a.applies(ev) {
		if err := a.sync(ctx); err != nil {
			return Result{}, err
		}
		var f database.Flight
		a.queueSerialize(ctx, &f, ev)
		a.queueMatch(ctx, &f, ev, nil, &m)
		if _, err := f.Send(ctx, a.tx); err != nil {
			return Result{}, err
		}
	}
	return a.decide(ctx, rowID, ev, m)
}

// decide applies a recorded event to the booking m locked for it: Decide on
// the locked row, then the transition, notes and outcome, queued in
// a.flight.
func (a *applier) decide(ctx context.Context, rowID int64, ev event, m matched) (Result, error) {
	record := func(outcome booking.Outcome, detail string, bookingID *uuid.UUID, moved bool) (Result, error) {
		a.flight.Queue(func(q *db.Queries) error {
			return accept(q.PaymentEventSetOutcome(ctx, db.PaymentEventSetOutcomeParams{
				ID: rowID, Outcome: string(outcome), Detail: detail, BookingID: bookingID,
			}), "record outcome")
		})
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
	b := m.booking
	if !m.found {
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

	var linkedSession, linkedIntent bool
	if ev.SessionID != "" {
		switch {
		case b.CheckoutSessionID == nil:
			// The webhook overtook the checkout response: link the session
			// now; the response will find it linked.
			a.flight.Queue(func(q *db.Queries) error {
				return accept(q.BookingLinkCheckoutSession(ctx, db.BookingLinkCheckoutSessionParams{ID: b.ID, CheckoutSessionID: &ev.SessionID}), "link session")
			})
			linkedSession = true
		case *b.CheckoutSessionID != ev.SessionID:
			detail := fmt.Sprintf("concerns session %s, not the booking's session %s", ev.SessionID, *b.CheckoutSessionID)
			if moneyFact(ev.Fact.Kind) {
				return record(booking.Review, "paid through a session that is not the booking's: "+detail, &b.ID, false)
			}
			return record(booking.Ignored, detail, &b.ID, false)
		}
	}
	// link is the payment intent to link: under the intent's lock
	// (serialize), an event of the intent that found no booking has
	// committed its unmatched row, and the booking's lock saw it
	// (m.waiting); one that comes later sees the link. A transition links
	// it in its own statement; otherwise it is linked alone, below.
	var link *string
	if ev.SessionID != "" && ev.PaymentIntentID != "" && b.PaymentIntentID == nil {
		link = &ev.PaymentIntentID
		b.PaymentIntentID = link
		linkedIntent = true
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
		var err error
		if d, err = a.transition(ctx, b, d, ev, link); err != nil {
			return Result{}, err
		}
	} else if link != nil {
		a.queueLink(ctx, b.ID, *link)
	}
	if err := a.note(ctx, b.ID, d, ev); err != nil {
		return Result{}, err
	}
	res, err := record(d.Outcome, d.Reason, &b.ID, moved)
	if err != nil {
		return Result{}, err
	}

	if m.waiting && (linkedSession || linkedIntent) {
		if err := a.applyLinked(ctx, ev, linkedSession, linkedIntent); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// applyLinked applies, in this transaction, the events that arrived before
// the session or payment intent this event linked, and were kept as
// unmatched: the session's first, then the intent's. They are listed under
// the serialising locks this transaction holds, so the list is the one the
// matching statement saw (matched.waiting).
func (a *applier) applyLinked(ctx context.Context, ev event, linkedSession, linkedIntent bool) error {
	if err := a.sync(ctx); err != nil {
		return err
	}
	waiting, err := a.q.PaymentEventListUnmatched(ctx, db.PaymentEventListUnmatchedParams{
		CheckoutSessionID: ev.SessionID, PaymentIntentID: optional(ev.PaymentIntentID),
	})
	if err != nil {
		return fmt.Errorf("list events waiting for %s or %s: %w", ev.SessionID, ev.PaymentIntentID, err)
	}
	// A row of both is listed once and claimed once (applyWaiting).
	var ofSession, ofIntent []db.PaymentEvent
	for _, w := range waiting {
		if linkedSession && w.CheckoutSessionID != nil && *w.CheckoutSessionID == ev.SessionID {
			ofSession = append(ofSession, w)
		}
		if linkedIntent && ev.PaymentIntentID != "" && w.PaymentIntentID != nil && *w.PaymentIntentID == ev.PaymentIntentID {
			ofIntent = append(ofIntent, w)
		}
	}
	if err := a.applyWaiting(ctx, ofSession); err != nil {
		return err
	}
	return a.applyWaiting(ctx, ofIntent)
}

// sync sends the statements queued in a.flight, before one that runs on
// a.q directly.
func (a *applier) sync(ctx context.Context) error {
	if a.flight.Len() == 0 {
		return nil
	}
	f := a.flight
	a.flight = &database.Flight{}
	_, err := f.Send(ctx, a.tx)
	return err
}

// accept is a queued statement's error, with context, unless it is the
// missing row its caller expects and checks itself.
func accept(err error, what string) error {
	if err == nil || database.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// moneyFact reports whether a session fact says money was or is being
// paid: one through a session that is not the booking's needs an operator.
func moneyFact(k booking.FactKind) bool {
	return k == booking.SessionPaid || k == booking.SessionUnpaid
}

// queueSerialize queues the transaction-scoped locks of the event's session
// and payment intent, in that order, in one statement, before anything is
// matched or linked (SPEC §2.1, events never lose a race). Matching and
// linking statements come after them, each with a snapshot of its own, so
// under READ COMMITTED they see every transaction that held the locks
// before.
func (a *applier) queueSerialize(ctx context.Context, f *database.Flight, ev event) {
	if ev.SessionID == "" && ev.PaymentIntentID == "" {
		return
	}
	f.Queue(func(q *db.Queries) error {
		return accept(q.PaymentEventSerialize(ctx, db.PaymentEventSerializeParams{
			CheckoutSessionID: optional(ev.SessionID), PaymentIntentID: optional(ev.PaymentIntentID),
		}), "serialise session "+ev.SessionID+" and payment intent "+ev.PaymentIntentID)
	})
}

// queueMatch queues, after the locks, the statement that finds the event's
// booking (SPEC §2.1, matching) and locks it, and says whether events wait
// for its session or payment intent. With recorded set (the event's id,
// in the flight that records it), the booking is locked only if this
// transaction did record the event: a duplicate locks nothing.
func (a *applier) queueMatch(ctx context.Context, f *database.Flight, ev event, recorded *string, m *matched) {
	lock := func(find func(q *db.Queries) (db.Booking, error)) {
		f.Queue(func(q *db.Queries) error {
			var err error
			m.booking, err = find(q)
			m.found = err == nil
			return accept(err, "match and lock booking")
		})
	}
	switch {
	case ev.SessionID != "":
		lock(func(q *db.Queries) (db.Booking, error) {
			row, err := q.BookingLockForSessionEvent(ctx, db.BookingLockForSessionEventParams{
				CheckoutSessionID: ev.SessionID, PaymentIntentID: optional(ev.PaymentIntentID),
				ReferenceID: ev.ReferenceID, RecordedEvent: recorded,
			})
			m.waiting = row.Waiting
			return row.Booking, err
		})
	case ev.PaymentIntentID != "":
		lock(func(q *db.Queries) (db.Booking, error) {
			return q.BookingLockForPaymentIntent(ctx, db.BookingLockForPaymentIntentParams{
				PaymentIntentID: ev.PaymentIntentID, RecordedEvent: recorded,
			})
		})
	}
}

// note records what a decision says besides the status: the dispute, and
// the times of refund facts.
func (a *applier) note(ctx context.Context, id uuid.UUID, d booking.Decision, ev event) error {
	if d.Disputed {
		params := db.BookingNoteDisputeParams{ID: id}
		if d.DisputeStatus != "" {
			params.DisputeStatus, params.DisputeStatusAt = &d.DisputeStatus, &ev.Created
		}
		a.flight.Queue(func(q *db.Queries) error { return accept(q.BookingNoteDispute(ctx, params), "note dispute") })
	}
	if d.RefundFailedAt != nil || d.RefundedSeenAt != nil {
		params := db.BookingNoteRefundFactsParams{ID: id, RefundFailedAt: d.RefundFailedAt, RefundedSeenAt: d.RefundedSeenAt}
		a.flight.Queue(func(q *db.Queries) error { return accept(q.BookingNoteRefundFacts(ctx, params), "note refund") })
	}
	if d.RefundFailedAt != nil {
		// The refund's key holds Stripe's success for a day: an operator's
		// next refund must go out under a new one, or it replays the refund
		// that failed.
		if err := a.sync(ctx); err != nil {
			return err
		}
		attempt, err := NextAttempt(ctx, a.q, refundOperation(id))
		if err != nil {
			return err
		}
		return attempt.Failed(ctx, a.q)
	}
	return nil
}

// namedBooking returns the existing booking that a session names without
// slotpay's provenance, if any.
func (a *applier) namedBooking(ctx context.Context, ev event) (*uuid.UUID, error) {
	if ev.NamedID == nil {
		return nil, nil
	}
	if err := a.sync(ctx); err != nil {
		return nil, err
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

// queueLink links the booking's payment intent (BookingLinkPaymentIntent).
func (a *applier) queueLink(ctx context.Context, id uuid.UUID, paymentIntentID string) {
	a.flight.Queue(func(q *db.Queries) error {
		return accept(q.BookingLinkPaymentIntent(ctx, db.BookingLinkPaymentIntentParams{BookingID: id, PaymentIntentID: paymentIntentID}), "link payment intent")
	})
}

// transition applies a decided status change, linking the payment intent
// link when it is set. A late payment that would retake a slot someone else
// holds by now falls back to IfSlotTaken (refund_pending), decided by the
// exclusion constraint itself.
func (a *applier) transition(ctx context.Context, b db.Booking, d booking.Decision, ev event, link *string) (booking.Decision, error) {
	from := booking.Status(b.Status)
	if d.IfSlotTaken == "" {
		// refund_pending reached any other way (a refund that failed) is
		// never requested automatically: no refund job is inserted here.
		booking.QueueTransition(ctx, a.flight, b, d.To, booking.EventCause(ev.Type, ev.ID), booking.Change{PaymentIntentID: link})
		a.transitions = append(a.transitions, transition{from, d.To})
		return d, nil
	}
	// The link holds whichever status the savepoint leaves.
	if link != nil {
		a.queueLink(ctx, b.ID, *link)
	}
	// The savepoint and the fallback run statement by statement.
	if err := a.sync(ctx); err != nil {
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
		a.queueSerialize(ctx, a.flight, ev)
		if err := a.sync(ctx); err != nil {
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
