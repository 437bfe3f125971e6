package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/stripehook"
)

type webhookReceipt struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate,omitempty"`
}

// handleStripeWebhook is SPEC §4: read the raw body, verify its signature,
// then record and apply the event in one transaction. A 2xx means the event
// is durably recorded; any failure after verification is a 5xx that leaves
// nothing behind, so Stripe's retry processes the event afresh.
func (s *Server) handleStripeWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.writeError(w, r, apperr.New(apperr.PayloadTooLarge, "the event exceeds %d bytes", maxWebhookBody))
			return
		}
		s.writeError(w, r, apperr.Wrap(err, apperr.InvalidRequest, "the request body could not be read"))
		return
	}
	err = stripehook.Verify(body, r.Header.Get("Stripe-Signature"), s.cfg.WebhookSecrets, s.cfg.WebhookTolerance, time.Now())
	if err != nil {
		s.writeError(w, r, apperr.Wrap(err, apperr.InvalidSignature, "invalid signature"))
		return
	}

	res, err := s.processor.Process(ctx, body, payment.SourceWebhook)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID(ctx)),
		slog.String("stripe_event_id", res.EventID),
		slog.String("type", res.Type),
	}
	if res.Duplicate {
		attrs = append(attrs, slog.Bool("duplicate", true))
	} else {
		attrs = append(attrs, slog.String("outcome", string(res.Outcome)), slog.String("detail", res.Detail))
	}
	if res.BookingID != nil {
		attrs = append(attrs, slog.String("booking_id", res.BookingID.String()))
	}
	s.logger.LogAttrs(ctx, slog.LevelInfo, "stripe event", attrs...)
	writeJSON(w, http.StatusOK, webhookReceipt{Received: true, Duplicate: res.Duplicate})
}
