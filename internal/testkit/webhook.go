package testkit

import (
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// SignatureHeader returns the Stripe-Signature header Stripe would send with
// payload at time at: "t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<payload>">".
// It uses stripe-go's own signer, so the tests check slotpay against Stripe's
// scheme, not against a copy of our own reading of it.
func SignatureHeader(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload:   payload,
		Secret:    secret,
		Timestamp: at,
	}).Header
}
