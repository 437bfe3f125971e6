// Package payment records verified Stripe events in the payment ledger and
// applies them to bookings through the state machine, exactly once each.
// The webhook, the reconciler and replay all feed events through Processor.
package payment

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/booking"
)

// HandledEventTypes are the event types slotpay acts on; others are recorded
// as ignored. The Stripe webhook endpoint needs only these.
var HandledEventTypes = []string{
	"checkout.session.completed",
	"checkout.session.async_payment_succeeded",
	"checkout.session.async_payment_failed",
	"checkout.session.expired",
	"charge.refunded",
	"charge.dispute.created",
}

// Bounds of an event's created time: Stripe's launch, and a date far
// enough ahead that no clock skew reaches it, yet inside timestamptz.
const (
	stripeEpoch = 1262304000  // 2010-01-01
	maxCreated  = 32503680000 // 3000-01-01
)

// stripeToken reports whether s looks like a Stripe id or event type.
func stripeToken(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// event is a Stripe event reduced to what slotpay acts on.
type event struct {
	ID         string
	Type       string
	APIVersion string
	Livemode   bool
	Created    time.Time

	// Identifiers used to find the booking (SPEC §2.1, matching).
	SessionID       string
	ReferenceID     *uuid.UUID // client_reference_id or metadata.booking_id
	PaymentIntentID string

	// Fact is what the event says; Handled is false for types slotpay does
	// not act on.
	Fact    booking.Fact
	Handled bool
}

// parseEvent decodes a verified event. Only the fields slotpay reads are
// decoded, so an event of any API version parses as long as they hold.
func parseEvent(raw []byte) (event, error) {
	var e stripe.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return event{}, apperr.Wrap(err, apperr.InvalidRequest, "the body is not a Stripe event")
	}
	if e.ID == "" || e.Type == "" || e.Data == nil || len(e.Data.Raw) == 0 {
		return event{}, apperr.New(apperr.InvalidRequest, "the body is not a Stripe event: id, type and data.object are required")
	}
	// Stripe's ids and types are short printable ASCII, and its events were
	// created after Stripe existed; anything else is not from Stripe.
	if !stripeToken(e.ID) || !stripeToken(string(e.Type)) || e.Created < stripeEpoch || e.Created > maxCreated {
		return event{}, apperr.New(apperr.InvalidRequest, "the body is not a Stripe event: malformed id, type or created")
	}
	ev := event{
		ID:         e.ID,
		Type:       string(e.Type),
		APIVersion: e.APIVersion,
		Livemode:   e.Livemode,
		Created:    time.Unix(e.Created, 0).UTC(),
	}
	var err error
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded",
		"checkout.session.async_payment_failed", "checkout.session.expired":
		err = ev.readSession(e.Data.Raw)
	case "charge.refunded":
		err = ev.readCharge(e.Data.Raw)
	case "charge.dispute.created":
		err = ev.readDispute(e.Data.Raw)
	}
	if err != nil {
		return event{}, apperr.Wrap(err, apperr.InvalidRequest, "the %s event's data.object cannot be read", ev.Type)
	}
	return ev, nil
}

func (ev *event) readSession(raw json.RawMessage) error {
	var s stripe.CheckoutSession
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s.ID == "" {
		return fmt.Errorf("checkout session without id")
	}
	ev.SessionID = s.ID
	if s.PaymentIntent != nil {
		ev.PaymentIntentID = s.PaymentIntent.ID
	}
	// client_reference_id comes first: slotpay sets both, and metadata can be
	// edited on the session afterwards.
	for _, ref := range []string{s.ClientReferenceID, s.Metadata["booking_id"]} {
		if id, err := uuid.Parse(ref); err == nil {
			ev.ReferenceID = &id
			break
		}
	}
	ev.Handled = true
	switch ev.Type {
	case "checkout.session.completed":
		switch s.PaymentStatus {
		case stripe.CheckoutSessionPaymentStatusPaid, stripe.CheckoutSessionPaymentStatusNoPaymentRequired:
			ev.Fact = booking.Fact{Kind: booking.SessionPaid, AmountTotal: s.AmountTotal, Currency: string(s.Currency)}
		case stripe.CheckoutSessionPaymentStatusUnpaid:
			ev.Fact = booking.Fact{Kind: booking.SessionUnpaid}
		default:
			return fmt.Errorf("unknown payment_status %q", s.PaymentStatus)
		}
	case "checkout.session.async_payment_succeeded":
		ev.Fact = booking.Fact{Kind: booking.SessionPaid, AmountTotal: s.AmountTotal, Currency: string(s.Currency)}
	case "checkout.session.async_payment_failed":
		ev.Fact = booking.Fact{Kind: booking.AsyncPaymentFailed}
	case "checkout.session.expired":
		ev.Fact = booking.Fact{Kind: booking.SessionExpired}
	}
	return nil
}

func (ev *event) readCharge(raw json.RawMessage) error {
	var c stripe.Charge
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.PaymentIntent == nil || c.PaymentIntent.ID == "" {
		return nil // not a Checkout payment: nothing of slotpay's
	}
	ev.PaymentIntentID = c.PaymentIntent.ID
	ev.Handled = true
	ev.Fact = booking.Fact{Kind: booking.ChargeRefunded, FullRefund: c.Refunded || (c.Amount > 0 && c.AmountRefunded >= c.Amount)}
	return nil
}

func (ev *event) readDispute(raw json.RawMessage) error {
	var d stripe.Dispute
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	if d.PaymentIntent == nil || d.PaymentIntent.ID == "" {
		return nil
	}
	ev.PaymentIntentID = d.PaymentIntent.ID
	ev.Handled = true
	ev.Fact = booking.Fact{Kind: booking.DisputeCreated}
	return nil
}
