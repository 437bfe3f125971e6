package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/payment"
)

// Cancel releases a pending_payment booking at the customer's request. Its
// open Checkout Session is expired at Stripe first, so the slot is never
// released while the session can still be paid; if Stripe says the session
// was completed meanwhile, that is applied instead and the cancel refused.
func (s *Service) Cancel(ctx context.Context, bookingID uuid.UUID) (db.Booking, error) {
	return s.cancel(ctx, bookingID, booking.Fact{Kind: booking.CustomerCancel}, booking.Cause{Name: booking.CauseCustomerCancel}, nil)
}

// CancelByOperator is Cancel done by an operator: recorded with cause
// operator_cancel and the operator in the booking's history, and in the
// audit trail, in the transaction of the change.
func (s *Service) CancelByOperator(ctx context.Context, bookingID uuid.UUID, by audit.Actor) (db.Booking, error) {
	if by.OperatorID == nil {
		return db.Booking{}, errors.New("an operator cancel needs the operator")
	}
	record := func(ctx context.Context, q *db.Queries) error {
		return audit.Record(ctx, q, by, audit.BookingCancel, bookingID)
	}
	return s.cancel(ctx, bookingID, booking.Fact{Kind: booking.OperatorCancel}, booking.ByOperator(*by.OperatorID), record)
}

// cancel applies a cancel fact to a booking, closing its session at Stripe
// first; record, when set, runs in the transaction of the change.
func (s *Service) cancel(ctx context.Context, bookingID uuid.UUID, f booking.Fact, c booking.Cause,
	record func(context.Context, *db.Queries) error,
) (db.Booking, error) {
	q := database.New(s.pool)
	b, err := booking.Get(ctx, q, bookingID)
	if err != nil {
		return db.Booking{}, err
	}
	// Decided once before Stripe is asked, so that a booking that cannot
	// be cancelled leaves its session alone, and again under the lock.
	if d := booking.Decide(booking.Of(b), f); d.To == booking.Status(b.Status) {
		return db.Booking{}, apperr.New(apperr.InvalidState, "the booking is %s; %s", b.Status, d.Reason)
	}
	var cancelled db.Booking
	for attempt := 1; ; attempt++ {
		if b.CheckoutSessionID != nil {
			if _, err := s.ExpireSession(ctx, *b.CheckoutSessionID); err != nil {
				return db.Booking{}, err
			}
		}
		cancelled, err = s.cancelLocked(ctx, b, f, c, record)
		// A checkout attached a session after b was read: it is open and its
		// URL handed out, so it is expired first and the cancel run again.
		if !errors.Is(err, errSessionAttached) || attempt == 3 {
			break
		}
		if b, err = booking.Get(ctx, q, bookingID); err != nil {
			return db.Booking{}, err
		}
	}
	if err != nil {
		return db.Booking{}, err
	}
	s.metrics.Transition(string(booking.PendingPayment), cancelled.Status)
	return cancelled, nil
}

// errSessionAttached: the booking has another session under the lock than
// the one its caller expired.
var errSessionAttached = errors.New("a checkout session was attached meanwhile")

// cancelLocked applies the cancel under the booking's row lock, if its
// session is still the one read before (b).
func (s *Service) cancelLocked(ctx context.Context, b db.Booking, f booking.Fact, c booking.Cause,
	record func(context.Context, *db.Queries) error,
) (db.Booking, error) {
	var cancelled db.Booking
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		locked, err := q.BookingGetByIDForUpdate(ctx, b.ID)
		if err != nil {
			return fmt.Errorf("lock booking %s: %w", b.ID, err)
		}
		if !sameSession(locked.CheckoutSessionID, b.CheckoutSessionID) {
			return errSessionAttached
		}
		var d booking.Decision
		cancelled, d, err = booking.Apply(ctx, q, locked, f, c)
		if err != nil {
			return err
		}
		if cancelled.Status == locked.Status {
			return apperr.New(apperr.InvalidState, "the booking is %s; %s", locked.Status, d.Reason)
		}
		if record == nil {
			return nil
		}
		return record(ctx, q)
	})
	return cancelled, err
}

func sameSession(a, b *string) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// ExpireSession asks Stripe to expire an open session and returns the
// session as Stripe then describes it. When Stripe answers that it is not
// open any more, the session is read back and what it says (completed,
// expired) is applied to its booking first. Either way no payable session is
// left behind.
//
// Stripe replays a stored 5xx to the same idempotency key for a day, so each
// attempt has its own key (payment.Attempt); after a failed attempt the
// session is read back first and expired again only if it is still open.
func (s *Service) ExpireSession(ctx context.Context, sessionID string) (*stripe.CheckoutSession, error) {
	q := database.New(s.pool)
	attempt, err := payment.NextAttempt(ctx, q, "expire-"+sessionID)
	if err != nil {
		return nil, err
	}
	if attempt.Retry() {
		session, err := s.Settle(ctx, sessionID)
		if err != nil || session.Status != stripe.CheckoutSessionStatusOpen {
			return session, err
		}
	}
	params := &stripe.CheckoutSessionExpireParams{}
	params.Context = ctx
	params.SetIdempotencyKey(attempt.Key())
	expired, err := s.stripe.CheckoutSessions.Expire(sessionID, params)
	if err == nil {
		return expired, nil
	}
	if notOpen(err) {
		return s.Settle(ctx, sessionID)
	}
	if failErr := attempt.Failed(ctx, q); failErr != nil {
		err = fmt.Errorf("%w (and %v)", err, failErr)
	}
	return nil, apperr.Wrap(err, apperr.PaymentProvider, "the payment provider could not close the checkout session; try again")
}

// Settle reads a session back from Stripe and applies what it says to its
// booking.
func (s *Service) Settle(ctx context.Context, sessionID string) (*stripe.CheckoutSession, error) {
	params := &stripe.CheckoutSessionParams{}
	params.Context = ctx
	params.AddExpand("payment_intent")
	session, err := s.stripe.CheckoutSessions.Get(sessionID, params)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.PaymentProvider, "the payment provider could not be asked about the checkout session; try again")
	}
	if _, _, err := s.processor.ApplySessionState(ctx, session.LastResponse.RawJSON); err != nil {
		return nil, fmt.Errorf("apply state of session %s: %w", sessionID, err)
	}
	return session, nil
}

// CloseLapsed ends a lapsed hold's session: expired at Stripe first, then the
// expired session is applied, which releases the hold. If Stripe says the
// session completed, ExpireSession has applied that instead. It returns the
// session's final status.
func (s *Service) CloseLapsed(ctx context.Context, sessionID string) (stripe.CheckoutSessionStatus, error) {
	session, err := s.ExpireSession(ctx, sessionID)
	if err != nil {
		return "", err
	}
	if session.Status == stripe.CheckoutSessionStatusExpired {
		if _, _, err := s.processor.ApplySessionState(ctx, session.LastResponse.RawJSON); err != nil {
			return "", fmt.Errorf("apply expiry of session %s: %w", sessionID, err)
		}
	}
	return session.Status, nil
}

// Hold holds a slot like booking.Hold. When the slot is taken by holds that
// lapsed while their sessions were open, those sessions are closed at Stripe
// and the hold tried once more: a lapsed hold blocks nobody for longer than
// it takes to ask Stripe.
func (s *Service) Hold(ctx context.Context, req booking.Request, hold time.Duration) (db.Booking, error) {
	b, err := s.hold(ctx, req, hold)
	if apperr.CodeOf(err) != apperr.SlotUnavailable {
		return b, err
	}
	lapsed, listErr := database.New(s.pool).BookingListLapsedWithSessionOverlapping(ctx, db.BookingListLapsedWithSessionOverlappingParams{
		ResourceID: req.ResourceID, StartsAt: req.Slot.StartsAt, EndsAt: req.Slot.EndsAt,
	})
	if listErr != nil || len(lapsed) == 0 {
		return b, err
	}
	for _, sessionID := range lapsed {
		if _, closeErr := s.CloseLapsed(ctx, sessionID); closeErr != nil {
			s.logger.LogAttrs(ctx, slog.LevelWarn, "could not close a lapsed session in the way of a booking",
				slog.String("checkout_session_id", sessionID), slog.String("error", closeErr.Error()))
			return b, err
		}
	}
	return s.hold(ctx, req, hold)
}

// hold is booking.Hold, counted.
func (s *Service) hold(ctx context.Context, req booking.Request, hold time.Duration) (db.Booking, error) {
	b, released, err := booking.Hold(ctx, s.pool, req, hold)
	for range released {
		s.metrics.Transition(string(booking.PendingPayment), string(booking.Expired))
	}
	if err == nil {
		s.metrics.Transition("", string(booking.PendingPayment))
	}
	return b, err
}

// notOpen reports Stripe refusing to expire a session that is complete or
// expired already.
func notOpen(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == http.StatusBadRequest && se.Type == stripe.ErrorTypeInvalidRequest
}

// expireUnused expires a session whose URL nobody was given. A failure is
// logged: such a session cannot be paid by anyone who does not know it, and
// it expires by itself at its expires_at.
func (s *Service) expireUnused(ctx context.Context, sessionID string) {
	if _, err := s.ExpireSession(ctx, sessionID); err != nil {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "could not expire an unused checkout session",
			slog.String("checkout_session_id", sessionID), slog.String("error", err.Error()))
	}
}
