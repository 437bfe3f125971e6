package reconcile

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/payment"
)

// ReplaySummary counts what a replay did.
type ReplaySummary struct {
	Listed          int `json:"listed"`
	AlreadyRecorded int `json:"already_recorded"`
	Applied         int `json:"applied"`
}

// Replay lists the events Stripe created in the last since (the Events API
// keeps 30 days) and feeds those missing from the ledger through the
// webhook's code path, oldest first, with source replay. Events already
// recorded are left alone, so replaying twice changes nothing.
func (r *Reconciler) Replay(ctx context.Context, since time.Duration) (ReplaySummary, error) {
	params := &stripe.EventListParams{
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: time.Now().Add(-since).Unix()},
		Types:        stripe.StringSlice(payment.HandledEventTypes),
	}
	params.Context = ctx
	var ids []string
	it := r.stripe.Events.List(params)
	for it.Next() {
		ids = append(ids, it.Event().ID)
	}
	if err := it.Err(); err != nil {
		return ReplaySummary{}, fmt.Errorf("list events: %w", err)
	}
	s := ReplaySummary{Listed: len(ids)}
	recorded, err := database.New(r.pool).PaymentEventListKnownIDs(ctx, ids)
	if err != nil {
		return s, fmt.Errorf("look up recorded events: %w", err)
	}
	known := make(map[string]bool, len(recorded))
	for _, id := range recorded {
		known[id] = true
	}
	// Stripe lists newest first; apply in the order things happened.
	slices.Reverse(ids)
	for _, id := range ids {
		if known[id] {
			s.AlreadyRecorded++
			continue
		}
		// Fetched one by one for the event's raw JSON, which the ledger
		// keeps as the verified payload.
		getParams := &stripe.EventParams{}
		getParams.Context = ctx
		ev, err := r.stripe.Events.Get(id, getParams)
		if err != nil {
			return s, fmt.Errorf("get event %s: %w", id, err)
		}
		res, err := r.processor.Process(ctx, ev.LastResponse.RawJSON, payment.SourceReplay)
		if err != nil {
			return s, fmt.Errorf("replay event %s: %w", id, err)
		}
		if res.Duplicate {
			s.AlreadyRecorded++ // a webhook delivered it meanwhile
			continue
		}
		s.Applied++
	}
	return s, nil
}
