package testkit

import (
	"bytes"
	"embed"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// Stripe's own example objects, copied from stripe-mock's
// embedded/openapi/fixtures3.json so that test events have every field a real
// one has, not just the few we thought of:
//
//	F=$(go env GOMODCACHE)/github.com/stripe/stripe-mock@v0.203.0/embedded/openapi/fixtures3.json
//	for r in checkout.session charge dispute event refund; do
//		jq ".resources[\"$r\"]" $F > testdata/${r/./_}.json
//	done
//
//go:embed testdata/*.json
var fixtures embed.FS

// Event is a Stripe webhook event to send to slotpay. Zero fields get
// defaults; Object overrides fields of the fixture object of the event's type.
type Event struct {
	ID         string    // default: "evt_test_" + random
	Type       string    // e.g. "checkout.session.completed"
	APIVersion string    // default: the version stripe-go v76 pins, "2023-10-16"
	Livemode   bool      // also sets the object's livemode
	Created    time.Time // default: time.Now()
	// Object replaces top-level fields of the fixture object; a nil value
	// makes the field JSON null.
	Object map[string]any
}

// JSON returns the event's body as Stripe would post it.
func (e Event) JSON(t testing.TB) []byte {
	t.Helper()
	if e.ID == "" {
		e.ID = RandomID("evt_test_")
	}
	if e.APIVersion == "" {
		e.APIVersion = stripe.APIVersion
	}
	if e.Created.IsZero() {
		e.Created = time.Now()
	}

	obj := map[string]any{}
	if name := objectFixture(e.Type); name != "" {
		obj = fixture(t, name)
	}
	// Set before the overrides, so that a test can still build an object
	// whose livemode disagrees with its event's.
	obj["livemode"] = e.Livemode
	for k, v := range e.Object {
		obj[k] = v
	}

	event := fixture(t, "event")
	event["id"] = e.ID
	event["type"] = e.Type
	event["api_version"] = e.APIVersion
	event["created"] = e.Created.Unix()
	event["livemode"] = e.Livemode
	event["data"] = map[string]any{"object": obj}
	event["request"] = map[string]any{"id": nil, "idempotency_key": nil}
	event["pending_webhooks"] = 1

	b, err := json.Marshal(event)
	if err != nil {
		t.Fatalf("testkit: encode event %s: %v", e.Type, err)
	}
	return b
}

// objectFixture names the fixture whose shape events of eventType carry;
// events of other types carry only what Event.Object gives them.
func objectFixture(eventType string) string {
	switch {
	case strings.HasPrefix(eventType, "checkout.session."):
		return "checkout_session"
	case strings.HasPrefix(eventType, "charge.dispute."):
		return "dispute"
	case strings.HasPrefix(eventType, "refund."), strings.HasPrefix(eventType, "charge.refund."):
		return "refund"
	case strings.HasPrefix(eventType, "charge."):
		return "charge"
	}
	return ""
}

// fixture decodes a fresh copy of a fixture on every call, so callers may
// change it freely.
func fixture(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := fixtures.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	// UseNumber keeps fixture numbers exactly as written when re-encoded.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("testkit: decode fixture %s: %v", name, err)
	}
	return m
}

// CheckoutSessionCompleted is the event of a customer having paid
// amountTotal for booking bookingID through Checkout Session sessionID.
func CheckoutSessionCompleted(sessionID, bookingID string, amountTotal int64, currency string) Event {
	now := time.Now()
	return Event{
		Type:    "checkout.session.completed",
		Created: now,
		Object: map[string]any{
			"id":                  sessionID,
			"object":              "checkout.session",
			"client_reference_id": bookingID,
			"metadata":            map[string]any{"booking_id": bookingID},
			"mode":                "payment",
			"payment_status":      "paid",
			"status":              "complete",
			"amount_subtotal":     amountTotal,
			"amount_total":        amountTotal,
			"currency":            currency,
			"payment_intent":      RandomID("pi_test_"),
			"created":             now.Add(-5 * time.Minute).Unix(),
			"expires_at":          now.Add(25 * time.Minute).Unix(),
		},
	}
}

// ChargeRefunded is the event of amountRefunded of a charge of amount having
// been refunded; the charge counts as refunded only when nothing is left.
func ChargeRefunded(paymentIntentID string, amount, amountRefunded int64, currency string) Event {
	return Event{
		Type: "charge.refunded",
		Object: map[string]any{
			"id":              RandomID("ch_test_"),
			"object":          "charge",
			"payment_intent":  paymentIntentID,
			"amount":          amount,
			"amount_captured": amount,
			"amount_refunded": amountRefunded,
			"currency":        currency,
			"captured":        true,
			"paid":            true,
			"status":          "succeeded",
			"refunded":        amount == amountRefunded,
			"created":         time.Now().Add(-time.Hour).Unix(),
		},
	}
}

// DisputeCreated is the event of the customer's bank disputing a payment.
func DisputeCreated(paymentIntentID string, amount int64, currency string) Event {
	return Dispute("charge.dispute.created", paymentIntentID, amount, currency, "needs_response")
}

// Dispute is a charge.dispute.* event (eventType: charge.dispute.created,
// .updated, .closed, .funds_withdrawn, .funds_reinstated) carrying the
// dispute in status (needs_response, under_review, won, lost, …).
func Dispute(eventType, paymentIntentID string, amount int64, currency, status string) Event {
	return Event{
		Type: eventType,
		Object: map[string]any{
			"id":             RandomID("dp_test_"),
			"object":         "dispute",
			"charge":         RandomID("ch_test_"),
			"payment_intent": paymentIntentID,
			"amount":         amount,
			"currency":       currency,
			"reason":         "fraudulent",
			"status":         status,
			"created":        time.Now().Unix(),
		},
	}
}

// Refund is an event about one refund of a payment intent (eventType:
// refund.failed, refund.updated or charge.refund.updated, whose object is
// the refund) in status (pending, succeeded, failed, canceled).
func Refund(eventType, paymentIntentID string, amount int64, currency, status string) Event {
	obj := map[string]any{
		"id":             RandomID("re_test_"),
		"object":         "refund",
		"charge":         RandomID("ch_test_"),
		"payment_intent": paymentIntentID,
		"amount":         amount,
		"currency":       currency,
		"status":         status,
		"created":        time.Now().Add(-time.Minute).Unix(),
	}
	if status == "failed" {
		obj["failure_reason"] = "expired_or_canceled_card"
	}
	return Event{Type: eventType, Object: obj}
}
