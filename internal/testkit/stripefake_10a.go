package testkit

import (
	"net/http"
	"net/url"
)

// GET /v1/refunds?payment_intent=…, which slotpay reads back before it
// retries a refund (SPEC §2.2). Added for issue 10a's read-back; issue 10b's
// simulator (stripesim.go) serves the same route under the same name, with
// refund statuses: when both are merged, keep 10b's and delete this file and
// its case in StripeFake.route.
func (f *StripeFake) listRefunds(params url.Values) fakeAnswer {
	pi := params.Get("payment_intent")
	data := []any{}
	for i := len(f.refunds) - 1; i >= 0; i-- { // newest first, as Stripe lists
		r := f.refunds[i]
		if pi != "" && r.PaymentIntent != pi {
			continue
		}
		s := f.sessions[f.byPI[r.PaymentIntent]]
		data = append(data, map[string]any{
			"id": r.ID, "object": "refund", "amount": r.Amount, "charge": s.chargeID, "currency": s.Currency,
			"metadata": nonNilMap(r.Metadata), "payment_intent": r.PaymentIntent, "status": "succeeded",
		})
	}
	return jsonAnswer(http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": false, "url": "/v1/refunds"})
}
