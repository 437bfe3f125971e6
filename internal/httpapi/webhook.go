package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/metrics"
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
	if s.refuseUnsignedWebhook(w, r) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.cfg.Metrics.WebhookRejected(metrics.RejectPayloadTooLarge)
			s.writeError(w, r, apperr.New(apperr.PayloadTooLarge, "the event exceeds %d bytes", maxWebhookBody))
			return
		}
		s.cfg.Metrics.WebhookRejected(metrics.RejectUnreadableBody)
		s.writeError(w, r, apperr.Wrap(err, apperr.InvalidRequest, "the request body could not be read"))
		return
	}
	err = stripehook.Verify(body, r.Header.Get("Stripe-Signature"), s.cfg.WebhookSecrets, s.cfg.WebhookTolerance, time.Now())
	if err != nil {
		s.cfg.Metrics.WebhookRejected(metrics.RejectInvalidSignature)
		s.writeError(w, r, apperr.Wrap(err, apperr.InvalidSignature, "invalid signature"))
		return
	}

	// Stripe sends UTF-8 JSON. A signed body that is not cannot be a
	// Stripe event, and PostgreSQL could not store it in the ledger. The
	// processor's decoding is the JSON check (one pass over the body, not
	// two): a syntax error comes back from it before anything is recorded.
	if !utf8.Valid(body) {
		s.rejectUnreadable(w, r)
		return
	}
	res, err := s.processor.Process(ctx, body, payment.SourceWebhook)
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		s.rejectUnreadable(w, r)
		return
	}
	if err != nil {
		s.cfg.Metrics.WebhookRejected(metrics.RejectProcessingError)
	}
	if database.IsDataException(err) {
		// A value PostgreSQL refuses (a NUL in a string, a date out of
		// range) fails again on every retry, so it is not a server fault;
		// but it is a signed event, so an operator must hear of it.
		s.logger.LogAttrs(ctx, slog.LevelError, "signed webhook body cannot be stored",
			slog.String("request_id", requestID(ctx)), slog.String("error", err.Error()))
		s.writeError(w, r, apperr.Wrap(err, apperr.InvalidRequest, "the event holds values that cannot be stored"))
		return
	}
	if err != nil && apperr.CodeOf(err) != apperr.InvalidRequest {
		// Whatever its code (a constraint refusing a second confirmation,
		// say), a failure to apply a well-formed signed event is ours:
		// answered 500 so that Stripe retries it.
		err = apperr.Wrap(err, apperr.Internal, "internal error")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// What the event did goes on the request's log line (observe).
	attrs := []slog.Attr{
		slog.String("stripe_event_id", res.EventID),
		slog.String("type", res.Type),
	}
	if res.Duplicate {
		s.cfg.Metrics.WebhookDuplicate()
		attrs = append(attrs, slog.Bool("duplicate", true))
	} else {
		// The processor counts outcomes, whatever their source.
		attrs = append(attrs, slog.String("outcome", string(res.Outcome)), slog.String("detail", res.Detail))
	}
	if res.BookingID != nil {
		attrs = append(attrs, slog.String("booking_id", res.BookingID.String()))
	}
	logAlso(ctx, attrs...)
	writeJSON(w, http.StatusOK, webhookReceipt{Received: true, Duplicate: res.Duplicate})
}

// rejectUnreadable answers a signed body that is not UTF-8 JSON.
func (s *Server) rejectUnreadable(w http.ResponseWriter, r *http.Request) {
	s.cfg.Metrics.WebhookRejected(metrics.RejectUnreadableBody)
	s.writeError(w, r, apperr.New(apperr.InvalidRequest, "the body is not a Stripe event"))
}
