// Package checkout starts payment for a held booking with a Stripe Checkout
// Session. It never holds a database transaction across the Stripe call: it
// writes its intent first, calls Stripe with an idempotency key derived from
// that intent, then stores the result.
package checkout

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/baseservice"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/payment"
)

// Session is an open Checkout Session to send the customer to.
type Session struct {
	ID        string
	URL       string
	ExpiresAt time.Time
}

// Service creates, expires and reads back bookings' Checkout Sessions.
type Service struct {
	pool       *pgxpool.Pool
	stripe     *client.API
	processor  *payment.Processor
	publicBase *url.URL
	ttl        time.Duration
	logger     *slog.Logger
	metrics    *metrics.Metrics
}

// NewService returns a Service whose sessions live for CHECKOUT_TTL and
// return the customer to pages under PUBLIC_BASE_URL. What Stripe reports
// about a session is applied through processor, like a webhook.
func NewService(arch *baseservice.Archetype, processor *payment.Processor) *Service {
	return &Service{
		pool: arch.Pool, stripe: arch.Stripe, processor: processor, publicBase: arch.Config.PublicBaseURL,
		ttl: arch.Config.CheckoutTTL, logger: arch.Logger, metrics: arch.Metrics,
	}
}

// Start returns the booking's Checkout Session, creating it on first call.
// While the session is open every call returns the same one.
func (s *Service) Start(ctx context.Context, bookingID uuid.UUID) (Session, error) {
	q := database.New(s.pool)
	b, err := booking.Get(ctx, q, bookingID)
	if err != nil {
		return Session{}, err
	}
	if open, ok := openSession(b); ok {
		return open, nil
	}
	if err := checkPayable(b); err != nil {
		return Session{}, err
	}

	resource, err := q.ResourceGetByID(ctx, b.ResourceID)
	if err != nil {
		return Session{}, fmt.Errorf("load resource %s: %w", b.ResourceID, err)
	}

	// Phase 1, the last round trips before Stripe's: fix the session's
	// expires_at and hold the slot until then. Concurrent calls read the
	// same value back, so they send Stripe identical parameters under one
	// idempotency key, while it leaves Stripe's minimum a full reuseMargin
	// of transit time; after that a call reserves a fresh value.
	now := time.Now()
	reserved, err := q.BookingReserveCheckout(ctx, db.BookingReserveCheckoutParams{
		ID:                b.ID,
		ProposedExpiresAt: s.expiresAt(now),
		ReusableFrom:      now.Add(stripeMinimumTTL + reuseMargin),
	})
	if database.IsNotFound(err) {
		// Another call attached a session, or the hold lapsed, meanwhile.
		if b, err = booking.Get(ctx, q, bookingID); err != nil {
			return Session{}, err
		}
		if open, ok := openSession(b); ok {
			return open, nil
		}
		if err := checkPayable(b); err != nil {
			return Session{}, err
		}
		return Session{}, apperr.New(apperr.InvalidState, "the booking cannot be paid now")
	}
	if err != nil {
		return Session{}, fmt.Errorf("reserve checkout for booking %s: %w", b.ID, err)
	}
	expiresAt := *reserved.CheckoutExpiresAt
	// Stripe stores a failure under its key for a day (SPEC §2.2): a key
	// whose request failed is never sent again, even when the next
	// reservation picks the same expires_at (within the same second).
	attempt, err := payment.NextAttempt(ctx, q, checkoutOperation(b.ID))
	if err != nil {
		return Session{}, err
	}

	// Phase 2: the Stripe call, outside any transaction.
	created, err := s.stripe.CheckoutSessions.New(s.sessionParams(ctx, reserved, resource, expiresAt, attempt))
	if err != nil {
		// No session URL was handed out, so the slot goes back to its
		// original hold, and the next call makes a new attempt under a
		// new key. Stripe's error text stays in the logs.
		if failErr := attempt.Failed(ctx, q); failErr != nil {
			err = fmt.Errorf("%w (and %v)", err, failErr)
		}
		releaseErr := q.BookingReleaseCheckoutReservation(ctx, db.BookingReleaseCheckoutReservationParams{
			ID: b.ID, HoldExpiresAt: b.HoldExpiresAt, CheckoutExpiresAt: &expiresAt,
		})
		if releaseErr != nil {
			err = fmt.Errorf("%w (and releasing the reservation failed: %v)", err, releaseErr)
		}
		return Session{}, apperr.Wrap(err, apperr.PaymentProvider, "the payment provider could not start checkout; try again")
	}

	// Phase 3: store the session. The hold now ends when the session does,
	// with the expires_at slotpay sent, whatever Stripe echoed back.
	attached, err := q.BookingAttachCheckoutSession(ctx, db.BookingAttachCheckoutSessionParams{
		ID: b.ID, CheckoutSessionID: &created.ID, CheckoutURL: &created.URL, HoldExpiresAt: expiresAt,
	})
	if database.IsNotFound(err) {
		// Another call stored a different session first (Stripe answers one
		// idempotency key with one session, so only a stand-in API does
		// this). Nobody has this session's URL: expire it, answer the other.
		s.expireUnused(ctx, created.ID)
		if b, err = booking.Get(ctx, q, bookingID); err != nil {
			return Session{}, err
		}
		if open, ok := openSession(b); ok {
			return open, nil
		}
		return Session{}, apperr.New(apperr.InvalidState, "the booking cannot be paid now")
	}
	if err != nil {
		return Session{}, fmt.Errorf("attach checkout session %s to booking %s: %w", created.ID, b.ID, err)
	}
	if !booking.Status(attached.Status).HoldsSlot() {
		// Cancelled or expired while Stripe was creating the session: the
		// slot is no longer held, so the session must not be payable.
		s.expireUnused(ctx, created.ID)
		return Session{}, apperr.New(apperr.InvalidState, "the booking is %s, not pending_payment", attached.Status)
	}
	return Session{ID: created.ID, URL: created.URL, ExpiresAt: expiresAt}, nil
}

// Stripe refuses a Checkout Session whose expires_at is less than 30 minutes
// (or more than 24 hours) after it receives the request (SPEC §2.2).
const (
	stripeMinimumTTL = 30 * time.Minute
	stripeMaximumTTL = 24 * time.Hour
	// expiryMargin is added to CHECKOUT_TTL for the time between choosing
	// expires_at and Stripe receiving it (round trips, a slow network, a
	// machine loaded far past its cores), and for the reuse below.
	expiryMargin = 5 * time.Minute
	// reuseMargin: a reserved expires_at is sent again (by a concurrent or
	// retried call) only while it is still this far beyond Stripe's
	// minimum, so even a reused value has minutes of transit to spare; a
	// call after that reserves a fresh one.
	reuseMargin = 2 * time.Minute
)

// checkoutOperation names the session creation of a booking in
// stripe_request_attempts.
func checkoutOperation(bookingID uuid.UUID) string { return "checkout-" + bookingID.String() }

// expiresAt is the expires_at to send Stripe for a session created now: the
// configured CHECKOUT_TTL plus the margin, never under Stripe's minimum nor
// over its maximum, in whole seconds as Stripe takes it.
func (s *Service) expiresAt(now time.Time) time.Time {
	ttl := min(max(s.ttl, stripeMinimumTTL)+expiryMargin, stripeMaximumTTL)
	return now.Add(ttl).Truncate(time.Second)
}

// openSession returns the booking's session while it can still be paid.
func openSession(b db.Booking) (Session, bool) {
	if booking.Status(b.Status) != booking.PendingPayment || b.CheckoutSessionID == nil ||
		b.CheckoutURL == nil || !time.Now().Before(b.HoldExpiresAt) {
		return Session{}, false
	}
	return Session{ID: *b.CheckoutSessionID, URL: *b.CheckoutURL, ExpiresAt: b.HoldExpiresAt}, true
}

func checkPayable(b db.Booking) error {
	if booking.Status(b.Status) != booking.PendingPayment {
		return apperr.New(apperr.InvalidState, "the booking is %s, not pending_payment", b.Status)
	}
	if !time.Now().Before(b.HoldExpiresAt) {
		return apperr.New(apperr.InvalidState, "the booking's hold has expired; book the slot again")
	}
	return nil
}

func (s *Service) sessionParams(ctx context.Context, b db.Booking, r db.Resource, expiresAt time.Time, attempt payment.Attempt) *stripe.CheckoutSessionParams {
	id := b.ID.String()
	loc, err := time.LoadLocation(r.Timezone)
	if err != nil {
		loc = time.UTC
	}
	start, end := b.StartsAt.In(loc), b.EndsAt.In(loc)
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(id),
		CustomerEmail:     stripe.String(b.CustomerEmail),
		ExpiresAt:         stripe.Int64(expiresAt.Unix()),
		SuccessURL:        stripe.String(s.pageURL("/booking/success", id) + "&session_id={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String(s.pageURL("/booking/cancel", id)),
		// One line item priced from the booking row: the amount the
		// webhook will be checked against is exactly the amount charged.
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:   stripe.String(b.Currency),
				UnitAmount: stripe.Int64(b.AmountTotal),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
					Name: stripe.String(fmt.Sprintf("%s, %s–%s (%s)", r.Name,
						start.Format("Mon 2 Jan 2006 15:04"), end.Format("15:04"), r.Timezone)),
				},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{
			Metadata: map[string]string{"booking_id": id},
		},
	}
	params.Context = ctx
	params.AddMetadata("booking_id", id)
	// Derived from the booking, the attempt and the reserved expiry (the
	// only parameter that varies): a concurrent call with this exact
	// request gets Stripe's first answer instead of a second session, and a
	// key is never reused with other parameters.
	params.SetIdempotencyKey(fmt.Sprintf("%s-%d", attempt.Key(), expiresAt.Unix()))
	return params
}

func (s *Service) pageURL(path, bookingID string) string {
	u := *s.publicBase
	u.Path = u.Path + path
	u.RawQuery = url.Values{"booking_id": {bookingID}}.Encode()
	return u.String()
}
