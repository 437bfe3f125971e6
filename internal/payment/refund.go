package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
)

// RefundArgs is a River job asking Stripe for a refund the booking's own
// transition decided: the full refund of a late payment whose slot is gone
// (SPEC §2.1), or, with Amount, the refund a customer cancel's policy gave
// (SPEC §3.1). It is inserted by EnqueueRefund in the transaction that
// decides the refund, so it exists if and only if that decision committed.
type RefundArgs struct {
	BookingID       uuid.UUID `json:"booking_id" river:"unique"`
	PaymentIntentID string    `json:"payment_intent_id"`
	// Amount, when above 0, is a customer cancel's refund; the booking's
	// refund_amount is the authority, and the two must agree.
	Amount int64 `json:"amount,omitempty"`
}

func (RefundArgs) Kind() string { return "refund" }

// InsertOpts makes the job unique per booking: a second decision for the
// same booking (a replayed event, the reconciler's net) while one is queued,
// running, retrying or completed adds nothing.
func (RefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// EnqueueRefund inserts the full refund job in tx.
func EnqueueRefund(ctx context.Context, jobs *river.Client[pgx.Tx], tx pgx.Tx, bookingID uuid.UUID, paymentIntentID string) error {
	return enqueueRefund(ctx, jobs, tx, RefundArgs{BookingID: bookingID, PaymentIntentID: paymentIntentID})
}

func enqueueRefund(ctx context.Context, jobs *river.Client[pgx.Tx], tx pgx.Tx, args RefundArgs) error {
	if _, err := jobs.InsertTx(ctx, tx, args, nil); err != nil {
		return fmt.Errorf("enqueue refund for booking %s: %w", args.BookingID, err)
	}
	return nil
}

// RefundWorker requests the refunds of RefundArgs jobs, outside any
// transaction. A failed attempt is retried by River with backoff; every
// retry reads the outcome back before it sends a new Stripe request (see
// Processor.refund), so retries never refund twice.
type RefundWorker struct {
	river.WorkerDefaults[RefundArgs]
	processor *Processor
}

// NewRefundWorker returns the worker for RefundArgs jobs.
func NewRefundWorker(p *Processor) *RefundWorker { return &RefundWorker{processor: p} }

// Timeout bounds one attempt: stripe-go's own retries included, a refund
// request takes seconds, and River rescues a job only after its timeout.
func (*RefundWorker) Timeout(*river.Job[RefundArgs]) time.Duration { return time.Minute }

func (w *RefundWorker) Work(ctx context.Context, job *river.Job[RefundArgs]) error {
	if job.Args.Amount > 0 {
		return w.processor.RequestCancelRefund(ctx, job.Args.BookingID, job.Args.PaymentIntentID, job.Args.Amount)
	}
	return w.processor.RequestRefund(ctx, job.Args.BookingID, job.Args.PaymentIntentID)
}

// RequestRefund asks Stripe for the full refund of a paid booking whose slot
// cannot be honoured (refund_pending) and notes that Stripe accepted it;
// charge.refunded then makes the booking refunded. It is safe to call again
// after any failure (River retries the job): see refund, which also treats
// a charge refunded by other means (the Dashboard) as done. A booking no
// longer refund_pending, or whose refund was noted already, needs nothing;
// one whose refund failed or was cancelled at Stripe is left to an
// operator, never requested again automatically (SPEC §2.1).
func (p *Processor) RequestRefund(ctx context.Context, bookingID uuid.UUID, paymentIntentID string) error {
	b, err := booking.Get(ctx, database.New(p.pool), bookingID)
	if err != nil {
		return err
	}
	switch {
	case booking.Status(b.Status) != booking.RefundPending:
		return nil // refunded or decided otherwise meanwhile
	case b.RefundFailedAt != nil:
		p.logger.LogAttrs(ctx, slog.LevelWarn, "a refund of this booking failed at Stripe; not requested again automatically",
			slog.String("booking_id", bookingID.String()))
		return nil
	case b.RefundRequestedAt != nil:
		return nil
	}
	return p.requestRefund(ctx, fullRefund(bookingID, paymentIntentID))
}

// RequestCancelRefund asks Stripe for the refund a customer's cancel of a
// paid booking decided (its refund_amount, SPEC §3.1), under the same rules
// as RequestRefund: once, read back after any failure, and never again
// automatically once a refund of the booking failed at Stripe (the
// customer is owed the money; an operator acts, docs/RUNBOOK.md). A booking
// refunded in full meanwhile (an operator, the Dashboard) needs nothing.
func (p *Processor) RequestCancelRefund(ctx context.Context, bookingID uuid.UUID, paymentIntentID string, amount int64) error {
	b, err := booking.Get(ctx, database.New(p.pool), bookingID)
	if err != nil {
		return err
	}
	switch {
	case !b.CancelledAfterPayment || b.RefundAmount == nil:
		return fmt.Errorf("refund job for booking %s, which no customer cancel after payment decided", bookingID)
	case *b.RefundAmount != amount:
		return fmt.Errorf("refund job for booking %s asks %d, the booking's refund_amount is %d", bookingID, amount, *b.RefundAmount)
	case booking.Status(b.Status) == booking.Refunded, b.RefundRequestedAt != nil:
		return nil
	case b.RefundFailedAt != nil:
		p.logger.LogAttrs(ctx, slog.LevelWarn, "a refund of this booking failed at Stripe; not requested again automatically",
			slog.String("booking_id", bookingID.String()))
		return nil
	}
	return p.requestRefund(ctx, cancelRefund(bookingID, paymentIntentID, amount))
}

func (p *Processor) requestRefund(ctx context.Context, r refundRequest) error {
	if err := p.refund(ctx, r); err != nil {
		return fmt.Errorf("request refund for booking %s: %w", r.bookingID, err)
	}
	if err := database.New(p.pool).BookingMarkRefundRequested(ctx, r.bookingID); err != nil {
		return fmt.Errorf("note refund requested for booking %s: %w", r.bookingID, err)
	}
	p.logger.LogAttrs(ctx, slog.LevelInfo, "refund requested", slog.String("booking_id", r.bookingID.String()),
		slog.String("operation", r.operation), slog.Int64("amount", r.amount))
	return nil
}

// refundRequest is one refund slotpay asks for: its operation names it in
// stripe_request_attempts and in the refund's metadata; amount 0 means what
// remains of the charge (Stripe's default, so never more than was captured).
type refundRequest struct {
	operation       string
	bookingID       uuid.UUID
	paymentIntentID string
	amount          int64
}

// fullRefund is the refund of what remains of a booking's charge: a late
// payment's, or an operator's.
func fullRefund(bookingID uuid.UUID, paymentIntentID string) refundRequest {
	return refundRequest{operation: refundOperation(bookingID), bookingID: bookingID, paymentIntentID: paymentIntentID}
}

// cancelRefund is the refund of amount a customer cancel decided.
func cancelRefund(bookingID uuid.UUID, paymentIntentID string, amount int64) refundRequest {
	return refundRequest{operation: "cancel-refund-" + bookingID.String(), bookingID: bookingID, paymentIntentID: paymentIntentID, amount: amount}
}

// refund makes sure Stripe has the refund r, so that it can be repeated
// after any failure without refunding twice (SPEC §2.2). Each attempt has
// its own idempotency key, because Stripe replays a stored 5xx to the same
// key for a day; before a new attempt, the refunds of the payment intent
// are read back, and one slotpay made for this request (named in its
// metadata) means the earlier attempt did take effect.
// charge_already_refunded (or, for an amount, amount_too_large) is success
// when the read-back shows the customer has what r asks for already (by
// anyone: an operator, a refund in Stripe's Dashboard).
func (p *Processor) refund(ctx context.Context, r refundRequest) error {
	q := database.New(p.pool)
	attempt, err := NextAttempt(ctx, q, r.operation)
	if err != nil {
		return err
	}
	if attempt.Retry() {
		refunds, err := p.refundsOf(ctx, r.paymentIntentID)
		if err != nil {
			return fmt.Errorf("read back the refunds of %s before attempt %d: %w", r.paymentIntentID, attempt.Number, err)
		}
		if r.madeIn(refunds) {
			return nil
		}
	}
	_, err = p.stripe.Refunds.New(refundParams(ctx, r, attempt))
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*stripe.Error](err); ok &&
		(se.Code == stripe.ErrorCodeChargeAlreadyRefunded || (r.amount > 0 && se.Code == stripe.ErrorCodeAmountTooLarge)) {
		if refunds, readErr := p.refundsOf(ctx, r.paymentIntentID); readErr == nil && r.coveredBy(refunds) {
			return nil
		}
	}
	if failErr := attempt.Failed(ctx, q); failErr != nil {
		err = fmt.Errorf("%w (and %v)", err, failErr)
	}
	return err
}

// refundsOf reads back the refunds of a payment intent that did not fail
// or get cancelled.
func (p *Processor) refundsOf(ctx context.Context, paymentIntentID string) ([]*stripe.Refund, error) {
	params := &stripe.RefundListParams{PaymentIntent: stripe.String(paymentIntentID)}
	params.Context = ctx
	it := p.stripe.Refunds.List(params)
	var out []*stripe.Refund
	for it.Next() {
		ref := it.Refund()
		if ref.Status == stripe.RefundStatusFailed || ref.Status == stripe.RefundStatusCanceled {
			continue
		}
		out = append(out, ref)
	}
	return out, it.Err()
}

// madeIn reports whether a refund of this request is among refunds.
// Refunds made before requests named their operation carry only the
// booking id, and were all full refunds.
func (r refundRequest) madeIn(refunds []*stripe.Refund) bool {
	for _, ref := range refunds {
		op := ref.Metadata["slotpay_operation"]
		if op == r.operation || (op == "" && r.operation == refundOperation(r.bookingID) && ref.Metadata["booking_id"] == r.bookingID.String()) {
			return true
		}
	}
	return false
}

// coveredBy reports whether refunds, by anyone, give the customer what r
// asks for: any refund for "what remains" (Stripe said nothing does), the
// amount or more for an amount.
func (r refundRequest) coveredBy(refunds []*stripe.Refund) bool {
	var total int64
	for _, ref := range refunds {
		total += ref.Amount
	}
	if r.amount == 0 {
		return len(refunds) > 0
	}
	return total >= r.amount
}

// refundOperation names the full refund of a booking in
// stripe_request_attempts.
func refundOperation(bookingID uuid.UUID) string { return "refund-" + bookingID.String() }

// refundParams is refund r under the key of one attempt; metadata names
// the booking and the operation, which is how a read-back recognises it.
func refundParams(ctx context.Context, r refundRequest, attempt Attempt) *stripe.RefundParams {
	params := &stripe.RefundParams{PaymentIntent: stripe.String(r.paymentIntentID)}
	if r.amount > 0 {
		params.Amount = stripe.Int64(r.amount)
	}
	params.Context = ctx
	params.SetIdempotencyKey(attempt.Key())
	params.AddMetadata("booking_id", r.bookingID.String())
	params.AddMetadata("slotpay_operation", r.operation)
	return params
}

// RefundByOperator asks Stripe to refund a paid booking in full for an
// operator (SPEC §3), if booking.Refundable allows it, as safely repeatable
// as RequestRefund. Nothing changes here but the note that Stripe accepted,
// written with the audit row in one transaction after Stripe answered (never
// a transaction across the call):
// the booking becomes refunded when charge.refunded arrives. A refusal by
// Stripe is payment_provider_error and leaves no audit row.
func (p *Processor) RefundByOperator(ctx context.Context, bookingID uuid.UUID, by audit.Actor) (db.Booking, error) {
	b, err := booking.Get(ctx, database.New(p.pool), bookingID)
	if err != nil {
		return db.Booking{}, err
	}
	if err := booking.Refundable(booking.Of(b)); err != nil {
		return db.Booking{}, err
	}
	if err := p.refund(ctx, fullRefund(b.ID, *b.PaymentIntentID)); err != nil {
		return db.Booking{}, apperr.Wrap(err, apperr.PaymentProvider, "the payment provider did not accept the refund; try again")
	}
	// Not decided again: charge.refunded for this very refund may have
	// made the booking refunded by now, and the refund happened either way.
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		if err := q.BookingMarkRefundRequested(ctx, b.ID); err != nil {
			return fmt.Errorf("note refund requested for booking %s: %w", b.ID, err)
		}
		if err := audit.Record(ctx, q, by, audit.BookingRefund, b.ID); err != nil {
			return err
		}
		b, err = q.BookingGetByID(ctx, b.ID)
		return err
	})
	if err != nil {
		return db.Booking{}, err
	}
	p.logger.LogAttrs(ctx, slog.LevelInfo, "refund requested by an operator", slog.String("booking_id", b.ID.String()))
	return b, nil
}
