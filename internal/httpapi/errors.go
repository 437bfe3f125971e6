package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
)

// statusOf maps every error code to its HTTP status (SPEC §3). It is the only
// place that does.
var statusOf = map[apperr.Code]int{
	apperr.InvalidRequest:       http.StatusBadRequest,
	apperr.InvalidSignature:     http.StatusBadRequest,
	apperr.Unauthorized:         http.StatusUnauthorized,
	apperr.Forbidden:            http.StatusForbidden,
	apperr.NotFound:             http.StatusNotFound,
	apperr.SlotUnavailable:      http.StatusConflict,
	apperr.InvalidState:         http.StatusConflict,
	apperr.IdempotencyKeyInUse:  http.StatusConflict,
	apperr.PayloadTooLarge:      http.StatusRequestEntityTooLarge,
	apperr.UnsupportedMedia:     http.StatusUnsupportedMediaType,
	apperr.IdempotencyKeyReused: http.StatusUnprocessableEntity,
	apperr.RateLimited:          http.StatusTooManyRequests,
	apperr.Internal:             http.StatusInternalServerError,
	apperr.PaymentProvider:      http.StatusBadGateway,
}

type envelope struct {
	Error envelopeBody `json:"error"`
}

type envelopeBody struct {
	Code      apperr.Code `json:"code"`
	Message   string      `json:"message"`
	RequestID string      `json:"request_id"`
}

// writeError answers with the error envelope. Expected errors carry their
// own safe message; anything else is logged with its detail and answered
// as internal_error without it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	// Driver errors arrive as apperr errors already (database.Interpret),
	// so the status is a lookup; anything without a code is internal.
	code, message := apperr.Internal, "internal error"
	if appErr, ok := errors.AsType[*apperr.Error](err); ok {
		code, message = appErr.Code, appErr.Message
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if database.IsDataException(err) {
		// Validation upstream should have refused the value PostgreSQL
		// refused: worth a line in the log.
		s.logger.LogAttrs(ctx, slog.LevelWarn, "value refused by the database",
			slog.String("request_id", requestID(ctx)), slog.String("error", err.Error()))
	}
	if errors.Is(err, errMethodNotAllowed) {
		status = http.StatusMethodNotAllowed
	}
	if wait, ok := errors.AsType[waitError](err); ok && code == apperr.RateLimited {
		w.Header().Set("Retry-After", retryAfterSeconds(wait.RetryAfter()))
	}
	switch {
	case status >= 500:
		s.logger.LogAttrs(ctx, slog.LevelError, "request failed",
			slog.String("request_id", requestID(ctx)), slog.String("code", string(code)), slog.String("error", err.Error()))
	case code == apperr.InvalidSignature:
		s.logger.LogAttrs(ctx, slog.LevelWarn, "webhook refused",
			slog.String("request_id", requestID(ctx)), slog.String("reason", err.Error()))
	}
	writeJSON(w, status, envelope{Error: envelopeBody{Code: code, Message: message, RequestID: requestID(ctx)}})
}

// validationError turns a kin-openapi request validation failure into a
// client-safe apperr: the parameter or body field at fault and why, without
// echoing the whole schema.
func validationError(err error) error {
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return apperr.New(apperr.NotFound, "no such route")
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return apperr.Wrap(errMethodNotAllowed, apperr.InvalidRequest, "method not allowed on this route")
	}
	var reqErr *openapi3filter.RequestError
	if !errors.As(err, &reqErr) {
		return apperr.Wrap(err, apperr.InvalidRequest, "the request does not match the API contract")
	}
	var schemaErr *openapi3.SchemaError
	if errors.As(reqErr.Err, &schemaErr) {
		where := "body"
		if reqErr.Parameter != nil {
			where = reqErr.Parameter.Name
		}
		if ptr := schemaErr.JSONPointer(); len(ptr) > 0 {
			where = joinPointer(ptr)
		}
		return apperr.Wrap(err, apperr.InvalidRequest, "%s: %s", where, schemaErr.Reason)
	}
	if reqErr.Parameter != nil {
		return apperr.Wrap(err, apperr.InvalidRequest, "parameter %q in %s: %s", reqErr.Parameter.Name, reqErr.Parameter.In, reqErr.Reason)
	}
	if reqErr.RequestBody != nil {
		if reqErr.Reason != "" {
			return apperr.Wrap(err, apperr.InvalidRequest, "request body: %s", reqErr.Reason)
		}
		return apperr.Wrap(err, apperr.InvalidRequest, "request body is not valid JSON for this operation")
	}
	return apperr.Wrap(err, apperr.InvalidRequest, "the request does not match the API contract")
}

// errMethodNotAllowed has no code of its own in SPEC §3; it is answered 405
// with code invalid_request.
var errMethodNotAllowed = errors.New("method not allowed")

func joinPointer(ptr []string) string {
	out := ""
	for i, p := range ptr {
		if i > 0 {
			out += "."
		}
		out += p
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":{"code":"internal_error","message":"internal error","request_id":""}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
