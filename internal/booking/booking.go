package booking

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
)

// Request is a customer's request to hold a slot.
type Request struct {
	ResourceID    uuid.UUID
	Slot          Slot
	CustomerEmail string
	CustomerName  string
	// Record, when set, runs in the transaction that creates the booking:
	// the HTTP layer notes the new booking under the request's
	// Idempotency-Key, so that the two commit together.
	Record func(ctx context.Context, q *db.Queries, bookingID uuid.UUID) error
	// Client is the address the request came from, and Caps how many
	// unpaid holds it and the e-mail may have open (SPEC §3.2).
	Client netip.Addr
	Caps   HoldCaps
}

// Causes recorded in booking_status_changes for transitions slotpay makes
// itself; Stripe-caused transitions record the event type.
const (
	CauseCreated    = "created"
	CauseHoldLapsed = "hold_lapsed"
)

// ActiveResource loads a resource that can be booked, or a not_found error.
func ActiveResource(ctx context.Context, q *db.Queries, id uuid.UUID) (db.Resource, error) {
	r, err := q.ResourceGetByID(ctx, id)
	if database.IsNotFound(err) || (err == nil && !r.Active) {
		return db.Resource{}, apperr.New(apperr.NotFound, "resource not found")
	}
	if err != nil {
		return db.Resource{}, fmt.Errorf("load resource %s: %w", id, err)
	}
	return r, nil
}

// Hold creates a pending_payment booking that holds the slot for hold. The
// price comes from the resource, never from the client. Overlap with any
// slot-holding booking is refused by the bookings_no_overlap constraint, so
// concurrent requests for one slot have exactly one winner. It also reports
// how many lapsed holds it released on the way.
func Hold(ctx context.Context, pool *pgxpool.Pool, req Request, hold time.Duration) (db.Booking, int, error) {
	email, name, err := normalizeCustomer(req.CustomerEmail, req.CustomerName)
	if err != nil {
		return db.Booking{}, 0, err
	}
	resource, err := ActiveResource(ctx, db.New(pool), req.ResourceID)
	if err != nil {
		return db.Booking{}, 0, err
	}
	rules, err := RulesOf(resource)
	if err != nil {
		return db.Booking{}, 0, err
	}
	now := time.Now()
	if err := rules.Validate(req.Slot, now); err != nil {
		return db.Booking{}, 0, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return db.Booking{}, 0, fmt.Errorf("new booking id: %w", err)
	}

	var (
		created  db.Booking
		released int
	)
	insert := func(tx pgx.Tx) error {
		q := db.New(tx)
		if err := admitHold(ctx, q, req, email); err != nil {
			return err
		}
		if err := q.ResourceLockForBooking(ctx, req.ResourceID); err != nil {
			return fmt.Errorf("lock resource: %w", err)
		}
		// A hold that lapsed before any Checkout Session existed cannot be
		// paid: release it here rather than make this customer wait for the
		// reconciler.
		lapsed, err := q.BookingExpireLapsedHoldsOverlapping(ctx, db.BookingExpireLapsedHoldsOverlappingParams{
			ResourceID: req.ResourceID, StartsAt: req.Slot.StartsAt, EndsAt: req.Slot.EndsAt,
		})
		if err != nil {
			return fmt.Errorf("release lapsed holds: %w", err)
		}
		released = len(lapsed)
		for _, lapsedID := range lapsed {
			if err := recordChange(ctx, q, lapsedID, PendingPayment, Expired, CauseHoldLapsed, nil); err != nil {
				return err
			}
		}
		created, err = q.BookingInsert(ctx, db.BookingInsertParams{
			ID:            id,
			ResourceID:    req.ResourceID,
			CustomerEmail: email,
			CustomerName:  name,
			StartsAt:      req.Slot.StartsAt,
			EndsAt:        req.Slot.EndsAt,
			AmountTotal:   rules.Price(req.Slot),
			Currency:      resource.Currency,
			HoldExpiresAt: now.Add(hold),
		})
		if err != nil {
			return err
		}
		if err := recordClient(ctx, q, id, req.Client); err != nil {
			return err
		}
		err = q.StatusChangeInsert(ctx, db.StatusChangeInsertParams{
			BookingID: id, ToStatus: string(PendingPayment), Cause: CauseCreated,
		})
		if err != nil || req.Record == nil {
			return err
		}
		return req.Record(ctx, q, id)
	}
	// A deadlock can still involve a transaction of another kind (a late
	// payment retaking its slot); the hold is simply run again.
	for attempt := 1; ; attempt++ {
		err = pgx.BeginFunc(ctx, pool, insert)
		if !database.IsDeadlock(err) || attempt == 3 {
			break
		}
	}
	if database.IsOverlap(err) {
		return db.Booking{}, 0, apperr.Wrap(err, apperr.SlotUnavailable, "the slot overlaps another booking")
	}
	if err != nil {
		return db.Booking{}, 0, fmt.Errorf("hold slot: %w", err)
	}
	return created, released, nil
}

func normalizeCustomer(email, name string) (string, string, error) {
	email, name = strings.TrimSpace(email), strings.TrimSpace(name)
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !printable(email) {
		return "", "", apperr.New(apperr.InvalidRequest, "customer.email must be a plain e-mail address")
	}
	// The name reaches Stripe's page and operators' screens: no control
	// characters, valid UTF-8, and the length the database allows.
	if name == "" || utf8.RuneCountInString(name) > 200 || !printable(name) {
		return "", "", apperr.New(apperr.InvalidRequest, "customer.name must be 1 to 200 printable characters")
	}
	return email, name, nil
}

func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// Get loads a booking, or a not_found error.
func Get(ctx context.Context, q *db.Queries, id uuid.UUID) (db.Booking, error) {
	b, err := q.BookingGetByID(ctx, id)
	if database.IsNotFound(err) {
		return db.Booking{}, apperr.New(apperr.NotFound, "booking not found")
	}
	if err != nil {
		return db.Booking{}, fmt.Errorf("load booking %s: %w", id, err)
	}
	return b, nil
}

// Availability is a day's free slots of a resource.
type Availability struct {
	Resource db.Resource
	Slots    []Slot
}

// FreeSlots lists the bookable single slots of a local date.
func FreeSlots(ctx context.Context, q *db.Queries, resourceID uuid.UUID, year int, month time.Month, day int) (Availability, error) {
	resource, err := ActiveResource(ctx, q, resourceID)
	if err != nil {
		return Availability{}, err
	}
	rules, err := RulesOf(resource)
	if err != nil {
		return Availability{}, err
	}
	hours := rules.openingHours(year, month, day)
	rows, err := q.BookingListHoldingBetween(ctx, db.BookingListHoldingBetweenParams{
		ResourceID: resourceID, Since: hours.StartsAt, Until: hours.EndsAt,
	})
	if err != nil {
		return Availability{}, fmt.Errorf("list busy intervals: %w", err)
	}
	busy := make([]Slot, len(rows))
	for i, r := range rows {
		busy[i] = Slot{StartsAt: r.StartsAt, EndsAt: r.EndsAt}
	}
	return Availability{Resource: resource, Slots: rules.FreeSlots(year, month, day, busy, time.Now())}, nil
}

// ErrStatusChanged means a conditional status update found another status
// than the one its caller read; under the row lock this is a bug.
var ErrStatusChanged = errors.New("booking status changed under a row lock")

// Transition moves a booking, locked by the caller, from its current status to
// to, and records why. It is the only way a status changes.
func Transition(ctx context.Context, q *db.Queries, b db.Booking, to Status, cause string, stripeEventID *string) (db.Booking, error) {
	updated, err := q.BookingTransition(ctx, db.BookingTransitionParams{
		ID: b.ID, FromStatus: b.Status, ToStatus: string(to), Cause: cause, StripeEventID: stripeEventID,
	})
	if database.IsNotFound(err) {
		return db.Booking{}, fmt.Errorf("booking %s %s -> %s: %w", b.ID, b.Status, to, ErrStatusChanged)
	}
	if err != nil {
		return db.Booking{}, fmt.Errorf("booking %s %s -> %s: %w", b.ID, b.Status, to, err)
	}
	// The statement returns the row through a CTE; its columns are the
	// booking's.
	return db.Booking(updated), nil
}

func recordChange(ctx context.Context, q *db.Queries, id uuid.UUID, from, to Status, cause string, stripeEventID *string) error {
	fromStatus := string(from)
	err := q.StatusChangeInsert(ctx, db.StatusChangeInsertParams{
		BookingID: id, FromStatus: &fromStatus, ToStatus: string(to), Cause: cause, StripeEventID: stripeEventID,
	})
	if err != nil {
		return fmt.Errorf("record booking %s %s -> %s: %w", id, from, to, err)
	}
	return nil
}
