package payment

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// ApplySessionState applies what Stripe's API says about a Checkout Session
// (read back by the reconciler or by cancel) as if Stripe had sent the
// matching event. The session JSON is wrapped in an event whose id is derived
// from the session and the state it reports, so reading the same state twice
// applies it once; a real webhook for the same fact later is recorded and
// changes nothing. An open session, or one still settling, says nothing new
// and is not recorded.
func (p *Processor) ApplySessionState(ctx context.Context, rawSession []byte) (Result, bool, error) {
	var s object
	if err := json.Unmarshal(rawSession, &s); err != nil {
		return Result{}, false, fmt.Errorf("read checkout session: %w", err)
	}
	eventType, state := sessionEventType(s)
	if eventType == "" {
		return Result{}, false, nil
	}
	envelope, err := json.Marshal(map[string]any{
		"id":          fmt.Sprintf("slotpay_reconcile_%s_%s", s.ID, state),
		"object":      "event",
		"api_version": stripe.APIVersion,
		"created":     time.Now().Unix(),
		"livemode":    s.Livemode,
		"type":        eventType,
		"data":        map[string]json.RawMessage{"object": rawSession},
	})
	if err != nil {
		return Result{}, false, err
	}
	res, err := p.Process(ctx, envelope, SourceReconcile)
	return res, err == nil, err
}

// sessionEventType names the event Stripe sends for the state a session is
// in, and a short name of that state for the synthetic event id.
func sessionEventType(s object) (eventType, state string) {
	switch s.Status {
	case "expired":
		return "checkout.session.expired", "expired"
	case "complete":
		switch s.PaymentStatus {
		case "paid", "no_payment_required":
			return "checkout.session.completed", "paid"
		case "unpaid":
			// An async payment: its (expanded) intent says whether it failed.
			if st := s.PaymentIntent.Status; st == "requires_payment_method" || st == "canceled" {
				return "checkout.session.async_payment_failed", "payment_failed"
			}
			return "checkout.session.completed", "unpaid"
		}
	}
	return "", ""
}
