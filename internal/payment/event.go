// Package payment records verified Stripe events in the payment ledger and
// applies them to bookings through the state machine, exactly once each.
// The webhook, the reconciler and replay all feed events through Processor.
package payment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

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
	"refund.failed",
	"refund.updated",
	"charge.refund.updated",
	"charge.dispute.created",
	"charge.dispute.updated",
	"charge.dispute.closed",
	"charge.dispute.funds_withdrawn",
	"charge.dispute.funds_reinstated",
}

// Bounds of an event's created time: Stripe's launch, and a date far
// enough ahead that no clock skew reaches it, yet inside timestamptz.
const (
	stripeEpoch = 1262304000  // 2010-01-01
	maxCreated  = 32503680000 // 3000-01-01
)

// event is a Stripe event reduced to what slotpay acts on.
type event struct {
	ID         string
	Type       string
	APIVersion string
	Livemode   bool
	Created    time.Time

	// Identifiers used to find the booking (SPEC §2.1, matching).
	SessionID string
	// ReferenceID is the booking a session slotpay created names: set only
	// when metadata.booking_id and client_reference_id agree. NamedID is a
	// booking the session names otherwise (client_reference_id alone, which
	// a Payment Link's customer can edit): such a session pays nothing.
	ReferenceID     *uuid.UUID
	NamedID         *uuid.UUID
	PaymentIntentID string

	// Fact is what the event says; Handled is false for types slotpay does
	// not act on.
	Fact    booking.Fact
	Handled bool
}

// The wire shapes below hold only the fields slotpay reads, so an event of
// any API version decodes as long as those fields keep their meaning, and a
// payload is decoded once.

type envelope struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	APIVersion *string `json:"api_version"`
	Livemode   bool    `json:"livemode"`
	Created    int64   `json:"created"`
	Data       struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

type sessionObject struct {
	ID                string            `json:"id"`
	Status            string            `json:"status"`
	PaymentStatus     string            `json:"payment_status"`
	AmountTotal       int64             `json:"amount_total"`
	Currency          string            `json:"currency"`
	ClientReferenceID string            `json:"client_reference_id"`
	Metadata          map[string]string `json:"metadata"`
	PaymentIntent     expandable        `json:"payment_intent"`
	Livemode          bool              `json:"livemode"`
}

type chargeObject struct {
	PaymentIntent  expandable `json:"payment_intent"`
	Amount         int64      `json:"amount"`
	AmountRefunded int64      `json:"amount_refunded"`
	Refunded       bool       `json:"refunded"`
}

type disputeObject struct {
	PaymentIntent expandable `json:"payment_intent"`
	Status        string     `json:"status"`
}

type refundObject struct {
	ID            string     `json:"id"`
	PaymentIntent expandable `json:"payment_intent"`
	Status        string     `json:"status"`
}

// expandable is a Stripe reference: an id, an expanded object, or null.
type expandable struct {
	ID     string
	Status string // of an expanded payment intent
}

func (e *expandable) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &e.ID)
	}
	var obj struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	e.ID, e.Status = obj.ID, obj.Status
	return nil
}

// parseEvent decodes a verified event.
func parseEvent(raw []byte) (event, error) {
	var e envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		return event{}, apperr.Wrap(err, apperr.InvalidRequest, "the body is not a Stripe event")
	}
	if e.ID == "" || e.Type == "" || len(e.Data.Object) == 0 || bytes.Equal(e.Data.Object, []byte("null")) {
		return event{}, apperr.New(apperr.InvalidRequest, "the body is not a Stripe event: id, type and data.object are required")
	}
	// Stripe's ids and types are short printable ASCII, and its events were
	// created after Stripe existed; anything else is not from Stripe.
	if !stripeToken(e.ID) || !stripeToken(e.Type) || e.Created < stripeEpoch || e.Created > maxCreated {
		return event{}, apperr.New(apperr.InvalidRequest, "the body is not a Stripe event: malformed id, type or created")
	}
	ev := event{
		ID:       e.ID,
		Type:     e.Type,
		Livemode: e.Livemode,
		Created:  time.Unix(e.Created, 0).UTC(),
	}
	if e.APIVersion != nil {
		ev.APIVersion = *e.APIVersion
	}
	var err error
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded",
		"checkout.session.async_payment_failed", "checkout.session.expired":
		err = ev.readSession(e.Data.Object)
	case "charge.refunded":
		err = ev.readCharge(e.Data.Object)
	case "refund.failed", "refund.updated", "charge.refund.updated":
		err = ev.readRefund(e.Data.Object)
	case "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
		"charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated":
		err = ev.readDispute(e.Data.Object)
	}
	if err != nil {
		return event{}, apperr.Wrap(err, apperr.InvalidRequest, "the %s event's data.object cannot be read", ev.Type)
	}
	return ev, nil
}

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

func (ev *event) readSession(raw json.RawMessage) error {
	var s sessionObject
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if !stripeToken(s.ID) {
		return fmt.Errorf("checkout session without a valid id")
	}
	ev.SessionID = s.ID
	ev.PaymentIntentID = s.PaymentIntent.ID
	// slotpay sets both; only the API key's holder can set metadata, while
	// client_reference_id is also what a Payment Link takes from its URL.
	ref, refErr := uuid.Parse(s.ClientReferenceID)
	meta, metaErr := uuid.Parse(s.Metadata["booking_id"])
	switch {
	case refErr == nil && metaErr == nil && ref == meta:
		ev.ReferenceID = &ref
	case refErr == nil:
		ev.NamedID = &ref
	case metaErr == nil:
		ev.NamedID = &meta
	}
	ev.Handled = true
	paid := booking.Fact{Kind: booking.SessionPaid, AmountTotal: s.AmountTotal, Currency: s.Currency}
	switch ev.Type {
	case "checkout.session.completed":
		switch s.PaymentStatus {
		case "paid", "no_payment_required":
			ev.Fact = paid
		case "unpaid":
			ev.Fact = booking.Fact{Kind: booking.SessionUnpaid}
		default:
			return fmt.Errorf("unknown payment_status %q", s.PaymentStatus)
		}
	case "checkout.session.async_payment_succeeded":
		ev.Fact = paid
	case "checkout.session.async_payment_failed":
		ev.Fact = booking.Fact{Kind: booking.AsyncPaymentFailed}
	case "checkout.session.expired":
		ev.Fact = booking.Fact{Kind: booking.SessionExpired}
	}
	return nil
}

func (ev *event) readCharge(raw json.RawMessage) error {
	var c chargeObject
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.PaymentIntent.ID == "" {
		return nil // not a Checkout payment: nothing of slotpay's
	}
	ev.PaymentIntentID = c.PaymentIntent.ID
	ev.Handled = true
	ev.Fact = booking.Fact{Kind: booking.ChargeRefunded, FullRefund: c.Refunded || (c.Amount > 0 && c.AmountRefunded >= c.Amount), At: ev.Created}
	return nil
}

func (ev *event) readRefund(raw json.RawMessage) error {
	var r refundObject
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	if r.PaymentIntent.ID == "" {
		return nil // not a refund of a Checkout payment
	}
	ev.PaymentIntentID = r.PaymentIntent.ID
	ev.Handled = true
	kind := booking.RefundChanged
	if r.Status == "failed" || r.Status == "canceled" {
		kind = booking.RefundFailed
	}
	ev.Fact = booking.Fact{Kind: kind, RefundStatus: r.Status, At: ev.Created}
	return nil
}

func (ev *event) readDispute(raw json.RawMessage) error {
	var d disputeObject
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	if d.PaymentIntent.ID == "" {
		return nil
	}
	ev.PaymentIntentID = d.PaymentIntent.ID
	ev.Handled = true
	ev.Fact = booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: d.Status, At: ev.Created}
	return nil
}
