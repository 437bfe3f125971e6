// Package apperr is slotpay's one error type: a code a client can act on and a
// message that is safe to show. Anything else that reaches the HTTP layer is an
// internal error: logged with detail, answered without it.
package apperr

import (
	"errors"
	"fmt"
)

// Code is the machine-readable error code of the API's error envelope.
type Code string

const (
	InvalidRequest       Code = "invalid_request"
	InvalidSignature     Code = "invalid_signature"
	Unauthorized         Code = "unauthorized"
	Forbidden            Code = "forbidden"
	NotFound             Code = "not_found"
	SlotUnavailable      Code = "slot_unavailable"
	InvalidState         Code = "invalid_state"
	IdempotencyKeyInUse  Code = "idempotency_key_in_use"
	PayloadTooLarge      Code = "payload_too_large"
	UnsupportedMedia     Code = "unsupported_media_type"
	IdempotencyKeyReused Code = "idempotency_key_reused"
	RateLimited          Code = "rate_limited"
	Internal             Code = "internal_error"
	PaymentProvider      Code = "payment_provider_error"
)

// Error is an expected failure with a client-safe message.
type Error struct {
	Code    Code
	Message string
	// Err is the underlying cause, kept for logs and errors.Is; never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an Error with a formatted client-safe message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error that keeps cause for logs.
func Wrap(cause error, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// CodeOf reports the code of the first Error in err's chain, or Internal.
func CodeOf(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return Internal
}
