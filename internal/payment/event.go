// Package payment records verified Stripe events in the payment ledger and
// applies them to bookings through the state machine, exactly once each.
// The webhook, the reconciler and replay all feed events through Processor.
package payment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
// any API version decodes as long as those fields keep their meaning. A
// payload is decoded in one pass, data.object with the envelope: the body
// is a few kilobytes, and the webhook path's CPU time is what bounds its
// throughput (docs/BENCHMARKS.md).

type envelope struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	APIVersion *string `json:"api_version"`
	Livemode   bool    `json:"livemode"`
	Created    int64   `json:"created"`
	Data       struct {
		Object *object `json:"object"`
	} `json:"data"`
}

// object is data.object with the fields slotpay reads of each object type
// it handles: a Checkout Session, a charge, a refund, a dispute. The names
// they share mean the same in each (an id, a status, the payment intent),
// and no object has a field by another's name with another type.
type object struct {
	ID            string     `json:"id"`
	Status        string     `json:"status"`
	PaymentIntent expandable `json:"payment_intent"`
	Livemode      bool       `json:"livemode"`

	// A Checkout Session's.
	PaymentStatus     string            `json:"payment_status"`
	AmountTotal       int64             `json:"amount_total"`
	Currency          string            `json:"currency"`
	ClientReferenceID string            `json:"client_reference_id"`
	Metadata          map[string]string `json:"metadata"`

	// A charge's.
	Amount         int64 `json:"amount"`
	AmountRefunded int64 `json:"amount_refunded"`
	Refunded       bool  `json:"refunded"`
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

// parseEvent decodes a verified event. A body that is not JSON fails with
// the *json.SyntaxError (the webhook answers it as unreadable).
func parseEvent(raw []byte) (event, error) {
	var e envelope
	err := json.Unmarshal(raw, &e)
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && strings.HasPrefix(te.Field, "data.object.") && !handledType(e.Type) {
		// A field of an object slotpay does not read, by a name it reads
		// in another type: the rest is decoded, and the event is ignored.
		err = nil
	}
	if err != nil {
		return event{}, apperr.Wrap(err, apperr.InvalidRequest, "the body is not a Stripe event")
	}
	if e.ID == "" || e.Type == "" || e.Data.Object == nil {
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
	o := e.Data.Object
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded",
		"checkout.session.async_payment_failed", "checkout.session.expired":
		err = ev.readSession(o)
	case "charge.refunded":
		ev.readCharge(o)
	case "refund.failed", "refund.updated", "charge.refund.updated":
		ev.readRefund(o)
	case "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
		"charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated":
		ev.readDispute(o)
	}
	if err != nil {
		return event{}, apperr.Wrap(err, apperr.InvalidRequest, "the %s event's data.object cannot be read", ev.Type)
	}
	return ev, nil
}

func handledType(t string) bool { return slices.Contains(HandledEventTypes, t) }

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

func (ev *event) readSession(s *object) error {
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

func (ev *event) readCharge(c *object) {
	if c.PaymentIntent.ID == "" {
		return // not a Checkout payment: nothing of slotpay's
	}
	ev.PaymentIntentID = c.PaymentIntent.ID
	ev.Handled = true
	ev.Fact = booking.Fact{Kind: booking.ChargeRefunded, FullRefund: c.Refunded || (c.Amount > 0 && c.AmountRefunded >= c.Amount), At: ev.Created}
}

func (ev *event) readRefund(r *object) {
	if r.PaymentIntent.ID == "" {
		return // not a refund of a Checkout payment
	}
	ev.PaymentIntentID = r.PaymentIntent.ID
	ev.Handled = true
	kind := booking.RefundChanged
	if r.Status == "failed" || r.Status == "canceled" {
		kind = booking.RefundFailed
	}
	ev.Fact = booking.Fact{Kind: kind, RefundStatus: r.Status, At: ev.Created}
}

func (ev *event) readDispute(d *object) {
	if d.PaymentIntent.ID == "" {
		return
	}
	ev.PaymentIntentID = d.PaymentIntent.ID
	ev.Handled = true
	ev.Fact = booking.Fact{Kind: booking.DisputeChanged, DisputeStatus: d.Status, At: ev.Created}
}
