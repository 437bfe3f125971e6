// Package notify tells the customer and the merchant what happened to a
// booking (SPEC §9): e-mails over SMTP and signed webhooks, delivered at
// least once after the transition that calls for them commits, never for one
// that rolled back.
//
// The outbox is River's job table, filled by the database itself: migration
// 00012's deferred triggers insert one `notify` job (Args) for every row of
// booking_status_changes that may concern someone and for every new dispute
// status, in the transaction that wrote it. No caller of booking.Transition
// has to remember anything, and the webhook path pays no extra round trip.
// FanOutWorker then decides, from (from_status, to_status, cause), which
// notice it is (Decide), records it in notifications and inserts one e-mail
// job and one delivery job per subscribed endpoint, completing itself in the
// same transaction, so a fan-out happens exactly once.
package notify

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
)

// The merchant's event types (SPEC §9).
const (
	TypeConfirmed   = "booking.confirmed"
	TypeCancelled   = "booking.cancelled"
	TypeRefunded    = "booking.refunded"
	TypeRescheduled = "booking.rescheduled"
	TypeNeedsReview = "booking.needs_review"
	TypeDisputed    = "booking.disputed"
)

// EventTypes lists every event type an endpoint may subscribe to.
var EventTypes = []string{TypeConfirmed, TypeCancelled, TypeRefunded, TypeRescheduled, TypeNeedsReview, TypeDisputed}

// Decide says which notice a status change is: the merchant's event type and
// the customer's e-mail (EmailKind, "" for none). A change nobody is told
// about has type "". It reads the cause only to tell a reschedule
// (confirmed → confirmed) from a confirmation.
func Decide(from, to booking.Status, cause string) (eventType string, email EmailKind) {
	switch {
	case to == booking.Confirmed && cause == booking.CauseRescheduled:
		return TypeRescheduled, EmailRescheduled
	case to == booking.Confirmed:
		return TypeConfirmed, EmailConfirmed
	case to == booking.NeedsReview:
		// Paid, but not as expected: the merchant decides before the
		// customer is told anything.
		return TypeNeedsReview, ""
	case to == booking.Cancelled && (from == booking.Confirmed || from == booking.NeedsReview):
		// An unpaid hold that is cancelled was never announced to anyone.
		return TypeCancelled, EmailCancelled
	case to == booking.Refunded:
		return TypeRefunded, EmailRefunded
	}
	return "", ""
}

// Args is the job the database's triggers insert (migration 00012): a
// status change, or a new dispute status, and the booking as the
// transaction committed it.
type Args struct {
	StatusChangeID int64      `json:"status_change_id,omitempty"`
	DisputeStatus  *string    `json:"dispute_status,omitempty"`
	DisputeAt      *time.Time `json:"dispute_at,omitempty"`
	Booking        Snapshot   `json:"booking"`
}

// Kind is the name migration 00012's notify_enqueue writes.
func (Args) Kind() string { return "notify" }

// Snapshot is the bookings row as to_jsonb renders it. RefundAmount is read
// when the column exists (issue 14's refund_amount); before, it stays nil.
type Snapshot struct {
	ID              uuid.UUID `json:"id"`
	ResourceID      uuid.UUID `json:"resource_id"`
	CustomerEmail   string    `json:"customer_email"`
	CustomerName    string    `json:"customer_name"`
	StartsAt        time.Time `json:"starts_at"`
	EndsAt          time.Time `json:"ends_at"`
	Status          string    `json:"status"`
	AmountTotal     int64     `json:"amount_total"`
	Currency        string    `json:"currency"`
	CreatedAt       time.Time `json:"created_at"`
	Disputed        bool      `json:"disputed"`
	DisputeStatus   *string   `json:"dispute_status"`
	RefundAmount    *int64    `json:"refund_amount"`
	ManageTokenSalt *string   `json:"manage_token_salt"` // bytea as "\x…"
}

// salt decodes the bytea to_jsonb renders as "\x" and hex.
func (s Snapshot) salt() []byte {
	if s.ManageTokenSalt == nil {
		return nil
	}
	b, err := hex.DecodeString(strings.TrimPrefix(*s.ManageTokenSalt, `\x`))
	if err != nil {
		return nil
	}
	return b
}

// Booking is data.booking of a webhook event: the booking as the merchant
// sees it (the customer included, the manage token's salt not).
type Booking struct {
	ID            uuid.UUID `json:"id"`
	ResourceID    uuid.UUID `json:"resource_id"`
	Status        string    `json:"status"`
	StartsAt      time.Time `json:"starts_at"`
	EndsAt        time.Time `json:"ends_at"`
	AmountTotal   int64     `json:"amount_total"`
	Currency      string    `json:"currency"`
	CreatedAt     time.Time `json:"created_at"`
	Disputed      bool      `json:"disputed"`
	DisputeStatus *string   `json:"dispute_status,omitempty"`
	RefundAmount  *int64    `json:"refund_amount,omitempty"`
	Customer      Customer  `json:"customer"`
}

// Customer is who booked.
type Customer struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

func (s Snapshot) public() Booking {
	return Booking{
		ID: s.ID, ResourceID: s.ResourceID, Status: s.Status, StartsAt: s.StartsAt.UTC(), EndsAt: s.EndsAt.UTC(),
		AmountTotal: s.AmountTotal, Currency: s.Currency, CreatedAt: s.CreatedAt.UTC(), Disputed: s.Disputed,
		DisputeStatus: s.DisputeStatus, RefundAmount: s.RefundAmount,
		Customer: Customer{Email: s.CustomerEmail, Name: s.CustomerName},
	}
}

// FanOutWorker turns a notify job into the notice and its deliveries.
type FanOutWorker struct {
	river.WorkerDefaults[Args]
	pool *pgxpool.Pool
	// maxAttempts of each delivery: as many as three days of waits hold.
	maxAttempts int
}

// NewFanOutWorker returns the worker of notify jobs; retryBase is the first
// wait of the deliveries it inserts (NOTIFY_RETRY_BASE).
func NewFanOutWorker(pool *pgxpool.Pool, retryBase time.Duration) *FanOutWorker {
	return &FanOutWorker{pool: pool, maxAttempts: attemptsWithin(retryBase, deliveryWindow)}
}

func (w *FanOutWorker) Timeout(*river.Job[Args]) time.Duration { return 30 * time.Second }

// Work records the notice and inserts its deliveries, and completes the job,
// in one transaction: run again after a crash, it finds the job completed or
// nothing done.
func (w *FanOutWorker) Work(ctx context.Context, job *river.Job[Args]) error {
	jobs := river.ClientFromContext[pgx.Tx](ctx)
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		n, emailKind, err := w.notice(ctx, q, job)
		if err != nil {
			return err
		}
		if n != nil {
			inserts, err := deliveries(ctx, q, *n, emailKind, w.maxAttempts)
			if err != nil {
				return err
			}
			if len(inserts) > 0 {
				if _, err := jobs.InsertManyTx(ctx, tx, inserts); err != nil {
					return fmt.Errorf("enqueue deliveries of notification %s: %w", n.ID, err)
				}
			}
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return fmt.Errorf("complete notify job %d: %w", job.ID, err)
		}
		return nil
	})
}

// notice records the notification a job calls for; nil when there is none
// (a change nobody hears of, or one recorded already).
func (w *FanOutWorker) notice(ctx context.Context, q *db.Queries, job *river.Job[Args]) (*db.Notification, EmailKind, error) {
	a := job.Args
	params := db.NotificationInsertParams{BookingID: a.Booking.ID}
	var emailKind EmailKind
	if a.StatusChangeID != 0 {
		sc, err := q.StatusChangeGetByID(ctx, a.StatusChangeID)
		if err != nil {
			return nil, "", fmt.Errorf("load status change %d: %w", a.StatusChangeID, err)
		}
		params.Type, emailKind = Decide(booking.Status(deref(sc.FromStatus)), booking.Status(sc.ToStatus), sc.Cause)
		params.SourceKey = fmt.Sprintf("status_change:%d", sc.ID)
		params.StatusChangeID = &sc.ID
	} else {
		params.Type = TypeDisputed
		// Each new dispute status fired one trigger and so one job.
		params.SourceKey = fmt.Sprintf("dispute_job:%d", job.ID)
	}
	if params.Type == "" {
		return nil, "", nil
	}
	if emailKind != "" {
		k := string(emailKind)
		params.EmailKind = &k
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, "", fmt.Errorf("notification id: %w", err)
	}
	params.ID = id
	if params.Data, err = json.Marshal(a.Booking.public()); err != nil {
		return nil, "", fmt.Errorf("encode booking: %w", err)
	}
	n, err := q.NotificationInsert(ctx, params)
	if database.IsNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("record notification %s: %w", params.SourceKey, err)
	}
	return &n, emailKind, nil
}

// deliveries are the jobs of a notice: the customer's e-mail, and one
// delivery per endpoint subscribed to its type at this moment.
func deliveries(ctx context.Context, q *db.Queries, n db.Notification, emailKind EmailKind, maxAttempts int) ([]river.InsertManyParams, error) {
	var out []river.InsertManyParams
	opts := &river.InsertOpts{MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
	if emailKind != "" {
		out = append(out, river.InsertManyParams{Args: EmailArgs{NotificationID: n.ID}, InsertOpts: opts})
	}
	endpoints, err := q.WebhookEndpointListForType(ctx, n.Type)
	if err != nil {
		return nil, fmt.Errorf("list endpoints for %s: %w", n.Type, err)
	}
	for _, e := range endpoints {
		out = append(out, river.InsertManyParams{Args: DeliveryArgs{NotificationID: n.ID, EndpointID: e.ID}, InsertOpts: opts})
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// maxRetryWait caps the doubling waits between attempts.
const maxRetryWait = 6 * time.Hour

// deliveryWindow is how long a notice is retried (SPEC §9: three days).
const deliveryWindow = 72 * time.Hour

// retryWait is the wait after failed attempt n (1-based): base doubled per
// attempt, capped at maxRetryWait.
func retryWait(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxRetryWait; i++ {
		d *= 2
	}
	return min(d, maxRetryWait)
}

// attemptsWithin is how many attempts the waits of retryWait fit into
// window: the first attempt, then one after each wait.
func attemptsWithin(base, window time.Duration) int {
	n, waited := 1, time.Duration(0)
	for waited < window {
		waited += retryWait(base, n)
		n++
	}
	return n
}
