package testkit

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
)

// CauseTestSetUp is the cause recorded for the status a factory gives a
// booking: the history says the state was set up, not what led to it.
const CauseTestSetUp = "test_setup"

// BookingOpts is the state a test needs a booking in. Zero fields keep what
// the booking has (or, for a new one, the factory's default).
type BookingOpts struct {
	// Resource is the booking's resource; CreateBooking makes one if nil.
	Resource *db.Resource
	// StartsAt and EndsAt default to tomorrow 10:00–11:00 UTC.
	StartsAt, EndsAt time.Time
	// Status is reached through BookingTransition, the one statement that
	// changes a status, and recorded with cause test_setup.
	Status booking.Status
	// HoldExpiresAt defaults to 15 minutes from now; a past time makes a
	// lapsed hold.
	HoldExpiresAt     time.Time
	CheckoutSessionID string
	PaymentIntentID   string
	// UpdatedAt back-dates the booking's last change (e.g. a payment that
	// has been processing for a day).
	UpdatedAt time.Time
}

// CreateBooking is the booking factory: a pending_payment booking held by
// ada@example.com, then put in the state opts says, as SetBooking does.
func CreateBooking(t testing.TB, d TestDB, opts BookingOpts) db.Booking {
	t.Helper()
	r := opts.Resource
	if r == nil {
		created := CreateResource(t, d, nil)
		r = &created
	}
	if opts.StartsAt.IsZero() {
		opts.StartsAt, opts.EndsAt = TomorrowAt(10), TomorrowAt(11)
	}
	hold := opts.HoldExpiresAt
	if hold.IsZero() {
		hold = time.Now().Add(15 * time.Minute)
	}
	q := database.New(d.Pool)
	b, err := q.BookingInsert(t.Context(), db.BookingInsertParams{
		ID:            uuid.Must(uuid.NewV7()),
		ResourceID:    r.ID,
		CustomerEmail: "ada@example.com",
		CustomerName:  "Ada Lovelace",
		StartsAt:      opts.StartsAt,
		EndsAt:        opts.EndsAt,
		AmountTotal:   r.UnitAmount * int64(opts.EndsAt.Sub(opts.StartsAt)/time.Minute) / int64(r.SlotMinutes),
		Currency:      r.Currency,
		HoldExpiresAt: hold,
	})
	if err != nil {
		t.Fatalf("testkit: create booking: %v", err)
	}
	opts.HoldExpiresAt = time.Time{}
	return SetBooking(t, d, b.ID, opts)
}

// SetBooking puts an existing booking in the state opts says and returns it.
// A status changes through BookingTransition; the fields no query of
// slotpay sets to an arbitrary value (the hold's end, the last change) are
// written here, the one place tests do so.
func SetBooking(t testing.TB, d TestDB, id uuid.UUID, opts BookingOpts) db.Booking {
	t.Helper()
	ctx := t.Context()
	q := database.New(d.Pool)
	fail := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("testkit: set booking %s: %s: %v", id, what, err)
		}
	}
	if opts.CheckoutSessionID != "" {
		fail("link session", q.BookingLinkCheckoutSession(ctx, db.BookingLinkCheckoutSessionParams{ID: id, CheckoutSessionID: &opts.CheckoutSessionID}))
	}
	if opts.PaymentIntentID != "" {
		fail("link payment intent", q.BookingLinkPaymentIntent(ctx, db.BookingLinkPaymentIntentParams{BookingID: id, PaymentIntentID: opts.PaymentIntentID}))
	}
	b, err := q.BookingGetByID(ctx, id)
	fail("load", err)
	if opts.Status != "" && string(opts.Status) != b.Status {
		_, err := booking.Transition(ctx, q, b, opts.Status, booking.Cause{Name: CauseTestSetUp})
		fail("change status", err)
	}
	if !opts.HoldExpiresAt.IsZero() {
		_, err := d.Pool.Exec(ctx, "UPDATE bookings SET hold_expires_at = $2 WHERE id = $1", id, opts.HoldExpiresAt)
		fail("set hold", err)
	}
	if !opts.UpdatedAt.IsZero() {
		_, err := d.Pool.Exec(ctx, "UPDATE bookings SET updated_at = $2 WHERE id = $1", id, opts.UpdatedAt)
		fail("set updated_at", err)
	}
	b, err = q.BookingGetByID(ctx, id)
	fail("reload", err)
	return b
}

// LapseHold makes a booking's hold end a second ago.
func LapseHold(t testing.TB, d TestDB, id uuid.UUID) db.Booking {
	t.Helper()
	return SetBooking(t, d, id, BookingOpts{HoldExpiresAt: time.Now().Add(-time.Second)})
}
