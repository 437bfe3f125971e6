package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	nethttpmiddleware "github.com/oapi-codegen/nethttp-middleware"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/metrics"
)

var errNoRoute = apperr.New(apperr.NotFound, "no such route")

type ctxKey int

const (
	requestIDKey ctxKey = iota
	clientIPKey
	principalKey
	sessionTokenKey
)

// requestInfo is what a request's context carries for its log line: its
// id, and what its handler adds to the line (logAlso).
type requestInfo struct {
	id    string
	attrs []slog.Attr
}

// info is the request's requestInfo; nil outside withRequestID.
func info(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestIDKey).(*requestInfo)
	return ri
}

func requestID(ctx context.Context) string {
	if ri := info(ctx); ri != nil {
		return ri.id
	}
	return ""
}

// logAlso adds attrs to the request's one log line, which observe writes
// when the request ends: a request is one line, with what it did.
func logAlso(ctx context.Context, attrs ...slog.Attr) {
	if ri := info(ctx); ri != nil {
		ri.attrs = append(ri.attrs, attrs...)
	}
}

// withRequestID gives every request an id, in its context and in the
// X-Request-Id response header. Ids are always generated here: one taken from
// a client could be forged into the logs.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := "req_" + hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, &requestInfo{id: id})))
	})
}

// responseObserver is the one ResponseWriter wrapper: it remembers the
// status a handler answered with, for the access log and the request
// metrics alike.
type responseObserver struct {
	http.ResponseWriter
	status int
}

func (o *responseObserver) WriteHeader(status int) {
	if o.status == 0 {
		o.status = status
	}
	o.ResponseWriter.WriteHeader(status)
}

func (o *responseObserver) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	return o.ResponseWriter.Write(b)
}

// Flush keeps streaming responses working for handlers that type-assert
// http.Flusher; http.ResponseController finds the rest through Unwrap.
func (o *responseObserver) Flush() {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	if f, ok := o.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (o *responseObserver) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// code is the status the client got: a handler that wrote nothing answered
// 200.
func (o *responseObserver) code() int {
	if o.status == 0 {
		return http.StatusOK
	}
	return o.status
}

// observe looks at each response once and reports it twice: one access log
// line, and the request's duration by route pattern and status (metrics.Route
// further in tells it the pattern).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r, route := metrics.TrackRoute(r)
		obs := &responseObserver{ResponseWriter: w}
		next.ServeHTTP(obs, r)
		took, status := time.Since(start), obs.code()
		s.cfg.Metrics.ObserveRequest(route(), status, took)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("request_id", requestID(r.Context())),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", took),
		}
		if ri := info(r.Context()); ri != nil {
			attrs = append(attrs, ri.attrs...)
		}
		s.logger.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

// withRecovery answers a panic with internal_error instead of a dropped
// connection, and logs it.
func (s *Server) withRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody reads the whole body up front, at most limit bytes, so that
// validation and Idempotency-Key hashing see the same bytes.
func (s *Server) limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				s.writeError(w, r, apperr.New(apperr.PayloadTooLarge, "the request body exceeds %d bytes", limit))
				return
			}
			s.writeError(w, r, apperr.Wrap(err, apperr.InvalidRequest, "the request body could not be read"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// requireJSON refuses a request body that is not declared as JSON.
func requireJSON(writeError func(http.ResponseWriter, *http.Request, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Method != http.MethodGet {
			mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mediaType != "application/json" {
				writeError(w, r, apperr.New(apperr.UnsupportedMedia, "the request body must be application/json"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// uuidFormat accepts every RFC 9562 version, UUIDv7 included; kin-openapi's
// predefined uuid format stops at version 5.
var uuidFormat = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func init() {
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(uuidFormat.String()))
}

// requestValidator validates requests against the embedded spec and answers
// failures with the error envelope.
func requestValidator(writeError func(http.ResponseWriter, *http.Request, error)) (func(http.Handler) http.Handler, error) {
	spec, err := genapi.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("load embedded spec: %w", err)
	}
	// Servers name where the API is published, not where this process
	// listens; host checks would refuse every other deployment.
	spec.Servers = nil
	return nethttpmiddleware.OapiRequestValidatorWithOptions(spec, &nethttpmiddleware.Options{
		DoNotValidateServers:  true,
		SilenceServersWarning: true,
		Options: openapi3filter.Options{
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         false,
		},
		ErrorHandlerWithOpts: func(_ context.Context, err error, w http.ResponseWriter, r *http.Request, _ nethttpmiddleware.ErrorHandlerOpts) {
			writeError(w, r, validationError(err))
		},
	}), nil
}

// writeBadRequest answers errors of the generated code's own parameter and
// body decoding.
func (s *Server) writeBadRequest(w http.ResponseWriter, r *http.Request, err error) {
	s.writeError(w, r, apperr.Wrap(err, apperr.InvalidRequest, "the request could not be decoded"))
}
