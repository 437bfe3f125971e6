package httpapi

import (
	"net/http"
	"time"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/stripehook"
)

// refuseUnsignedWebhook answers 400 invalid_signature, before a byte of the
// body is read, a delivery whose Stripe-Signature is missing, malformed or
// outside the tolerance: it cannot verify whatever its body, so an anonymous
// client cannot make the server read (and hold) a megabyte per request for
// nothing. The connection is closed rather than drained, so a body that
// never ends costs nothing either. It reports whether it answered.
func (s *Server) refuseUnsignedWebhook(w http.ResponseWriter, r *http.Request) bool {
	_, err := stripehook.CheckHeader(r.Header.Get("Stripe-Signature"), s.cfg.WebhookTolerance, time.Now())
	if err == nil {
		return false
	}
	s.cfg.Metrics.WebhookRejected(metrics.RejectInvalidSignature)
	w.Header().Set("Connection", "close")
	s.writeError(w, r, apperr.Wrap(err, apperr.InvalidSignature, "invalid signature"))
	return true
}
