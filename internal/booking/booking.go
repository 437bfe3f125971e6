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
	"github.com/slotpay/slotpay/internal/managetoken"
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
	// Tokens issues the booking's manage_token (SPEC §3.1); only its salt
	// and hash are stored, and the caller derives the token again from the
	// salt for the 201.
	Tokens *managetoken.Issuer
}

// Causes recorded in booking_status_changes for transitions slotpay makes
// itself; Stripe-caused transitions record the event type (EventCause).
const (
	CauseCreated        = "created"
	CauseHoldLapsed     = "hold_lapsed"
	CauseCustomerCancel = "customer_cancel"
	CauseOperatorCancel = "operator_cancel"
	// CauseCustomerCancelPaid: the customer cancelled a confirmed booking
	// with the manage_token; CauseRescheduled: moved it to another slot
	// (confirmed -> confirmed).
	CauseCustomerCancelPaid = "customer_cancel_paid"
	CauseRescheduled        = "rescheduled"
)

// Cause is who or what made a transition, as booking_status_changes records
// it: a name, and the Stripe event or the operator behind it.
type Cause struct {
	Name          string
	StripeEventID *string
	OperatorID    *uuid.UUID
}

// EventCause is the cause of a transition a Stripe event made.
func EventCause(eventType, eventID string) Cause {
	return Cause{Name: eventType, StripeEventID: &eventID}
}

// ByOperator is the cause of an operator's cancel.
func ByOperator(operatorID uuid.UUID) Cause {
	return Cause{Name: CauseOperatorCancel, OperatorID: &operatorID}
}

// Of is the part of a booking row that Decide reads.
func Of(b db.Booking) Booking {
	return Booking{
		Status:           Status(b.Status),
		AmountTotal:      b.AmountTotal,
		Currency:         b.Currency,
		HoldExpiresAt:    b.HoldExpiresAt,
		HasSession:       b.CheckoutSessionID != nil,
		HasPaymentIntent: b.PaymentIntentID != nil,
		RefundFailedAt:   b.RefundFailedAt,
		RefundedSeenAt:   b.RefundedSeenAt,
		DisputeStatus:    deref(b.DisputeStatus),
		DisputeStatusAt:  b.DisputeStatusAt,
		// A booking cancelled after payment remembers it (SPEC §3.1).
		CancelledAfterPayment: b.CancelledAfterPayment,
		StartsAt:              b.StartsAt,
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

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
	resource, err := ActiveResource(ctx, database.New(pool), req.ResourceID)
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
	var secret managetoken.Secret
	if req.Tokens != nil {
		if _, secret, err = req.Tokens.Issue(id); err != nil {
			return db.Booking{}, 0, err
		}
	}

	var (
		created  db.Booking
		released int
	)
	insert := func(tx pgx.Tx) error {
		q := database.New(tx)
		if err := admitHold(ctx, q, req, email); err != nil {
			return err
		}
		if err := q.ResourceLockForBooking(ctx, req.ResourceID); err != nil {
			return fmt.Errorf("lock resource: %w", err)
		}
		// A hold that lapsed before any Checkout Session existed cannot be
		// paid: release it here rather than make this customer wait for the
		// reconciler.
		expired, err := releaseLapsedIn(ctx, q, req.ResourceID, req.Slot, now)
		if err != nil {
			return err
		}
		released = len(expired)
		created, err = q.BookingInsert(ctx, db.BookingInsertParams{
			ID:              id,
			ResourceID:      req.ResourceID,
			CustomerEmail:   email,
			CustomerName:    name,
			StartsAt:        req.Slot.StartsAt,
			EndsAt:          req.Slot.EndsAt,
			AmountTotal:     rules.Price(req.Slot),
			Currency:        resource.Currency,
			HoldExpiresAt:   now.Add(hold),
			ManageTokenSalt: secret.Salt, ManageTokenHash: secret.Hash,
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
	now := time.Now()
	rows, err := q.BookingListHoldingBetween(ctx, db.BookingListHoldingBetweenParams{
		ResourceID: resourceID, At: now, Since: hours.StartsAt, Until: hours.EndsAt,
	})
	if err != nil {
		return Availability{}, fmt.Errorf("list busy intervals: %w", err)
	}
	busy := make([]Slot, len(rows))
	for i, r := range rows {
		busy[i] = Slot{StartsAt: r.StartsAt, EndsAt: r.EndsAt}
	}
	return Availability{Resource: resource, Slots: rules.FreeSlots(year, month, day, busy, now)}, nil
}

// ErrStatusChanged means a conditional status update found another status
// than the one its caller read; under the row lock this is a bug. The
// statement fails, and with it the transaction.
var ErrStatusChanged = errors.New("booking status changed under a row lock")

// Transition moves a booking, locked by the caller, from its current status to
// to, and records the cause. It runs BookingTransition, the one statement
// that changes a status; callers decide to with Decide first.
func Transition(ctx context.Context, q *db.Queries, b db.Booking, to Status, c Cause) (db.Booking, error) {
	return TransitionWith(ctx, q, b, to, c, Change{})
}

// Change is what a transition carries besides the status, written by the
// same statement: a reschedule's new slot, a customer cancel's refund.
type Change struct {
	// Slot, when set, is the booking's new slot (cause rescheduled); the
	// history records the old one beside it.
	Slot *Slot
	// RefundAmount, when set, is the refund a customer cancel requested.
	RefundAmount *int64
	// CancelledAfterPayment marks a paid booking's cancel, so that a later
	// payment fact for it is ignored (Decide).
	CancelledAfterPayment bool
	// PaymentIntentID, when set, is linked to a booking that has none: the
	// intent of the event that confirms it, linked by the same statement.
	PaymentIntentID *string
}

// TransitionWith is Transition with what the change carries. It is the one
// function that runs BookingTransition.
func TransitionWith(ctx context.Context, q *db.Queries, b db.Booking, to Status, c Cause, ch Change) (db.Booking, error) {
	params := db.BookingTransitionParams{
		ID: b.ID, FromStatus: b.Status, ToStatus: string(to), Cause: c.Name,
		StripeEventID: c.StripeEventID, OperatorID: c.OperatorID,
		RefundAmount: ch.RefundAmount, CancelledAfterPayment: ch.CancelledAfterPayment,
		PaymentIntentID: ch.PaymentIntentID,
	}
	if ch.Slot != nil {
		params.ToStartsAt, params.ToEndsAt = &ch.Slot.StartsAt, &ch.Slot.EndsAt
	}
	updated, err := q.BookingTransition(ctx, params)
	// The statement always returns the moved row or fails (booking_moved).
	if database.IsStatusChanged(err) {
		return db.Booking{}, fmt.Errorf("booking %s %s -> %s: %w", b.ID, b.Status, to, ErrStatusChanged)
	}
	if err != nil {
		return db.Booking{}, fmt.Errorf("booking %s %s -> %s: %w", b.ID, b.Status, to, err)
	}
	// The statement returns the row through a CTE; its columns are the
	// booking's.
	return db.Booking(updated), nil
}

// QueueTransition queues TransitionWith in a flight that ends in COMMIT.
// Its answer is read only after the COMMIT behind it has run; a booking
// that had another status than b's fails the statement in PostgreSQL
// (BookingTransition), so that COMMIT rolls back and the event is never
// recorded as applied without its change.
func QueueTransition(ctx context.Context, f *database.Flight, b db.Booking, to Status, c Cause, ch Change) {
	f.Queue(func(q *db.Queries) error {
		_, err := TransitionWith(ctx, q, b, to, c, ch)
		return err
	})
}

// Apply decides what f does to b, locked by the caller, and makes the
// transition if there is one. The returned booking is b when nothing
// changed.
func Apply(ctx context.Context, q *db.Queries, b db.Booking, f Fact, c Cause) (db.Booking, Decision, error) {
	d := Decide(Of(b), f)
	if d.To == Status(b.Status) {
		return b, d, nil
	}
	moved, err := Transition(ctx, q, b, d.To, c)
	return moved, d, err
}

// releaseLapsedIn expires, through the state machine, the lapsed holds
// without a session that overlap slot of resourceID, so that the caller's
// booking may take it; the caller holds the resource's lock.
func releaseLapsedIn(ctx context.Context, q *db.Queries, resourceID uuid.UUID, slot Slot, now time.Time) ([]uuid.UUID, error) {
	lapsed, err := q.BookingListLapsedOverlappingForUpdate(ctx, db.BookingListLapsedOverlappingForUpdateParams{
		ResourceID: resourceID, At: now, StartsAt: slot.StartsAt, EndsAt: slot.EndsAt,
	})
	if err != nil {
		return nil, fmt.Errorf("find lapsed holds: %w", err)
	}
	return expireLapsed(ctx, q, lapsed, now)
}

// lapsedBatch bounds one transaction of ExpireLapsedHolds.
const lapsedBatch = 100

// ExpireLapsedHolds expires every hold that lapsed by at with no Checkout
// Session (SPEC §5), each through Decide and Transition like any other
// change, in transactions of a batch each. It returns the expired bookings.
func ExpireLapsedHolds(ctx context.Context, pool *pgxpool.Pool, at time.Time) ([]uuid.UUID, error) {
	var all []uuid.UUID
	for {
		var (
			expired []uuid.UUID
			found   int
		)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			q := database.New(tx)
			lapsed, err := q.BookingListLapsedForUpdate(ctx, db.BookingListLapsedForUpdateParams{At: at, MaxRows: lapsedBatch})
			if err != nil {
				return fmt.Errorf("find lapsed holds: %w", err)
			}
			found = len(lapsed)
			expired, err = expireLapsed(ctx, q, lapsed, at)
			return err
		})
		if err != nil {
			return all, fmt.Errorf("expire lapsed holds: %w", err)
		}
		all = append(all, expired...)
		// A full batch may have more behind it; one that expired nothing
		// would only find itself again.
		if found < lapsedBatch || len(expired) == 0 {
			return all, nil
		}
	}
}

// expireLapsed applies HoldLapsed to bookings the caller locked.
func expireLapsed(ctx context.Context, q *db.Queries, lapsed []db.Booking, at time.Time) ([]uuid.UUID, error) {
	var expired []uuid.UUID
	for _, b := range lapsed {
		moved, _, err := Apply(ctx, q, b, Fact{Kind: HoldLapsed, At: at}, Cause{Name: CauseHoldLapsed})
		if err != nil {
			return nil, err
		}
		if moved.Status != b.Status {
			expired = append(expired, b.ID)
		}
	}
	return expired, nil
}
