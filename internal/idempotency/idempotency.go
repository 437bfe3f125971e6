// Package idempotency makes POST requests safe to retry (SPEC §3): the first
// response to an Idempotency-Key is stored in PostgreSQL for 24 hours and
// replayed for the same request; another request under the same key, or one
// that arrives while the first is in flight, is refused.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
)

// Header is the request header that carries the key.
const Header = "Idempotency-Key"

// lease bounds how long a key stays in flight if the instance serving it dies
// before answering; longer than any request may take.
const lease = time.Minute

// Option configures Middleware.
type Option func(*options)

type options struct {
	scope  func(*http.Request) string
	secret *secretField
}

// secretField is a response field kept out of storage (SecretField).
type secretField struct {
	name   string
	derive func(context.Context, uuid.UUID) (string, error)
}

// SecretField keeps the string field name of a stored response body (a
// JSON object) out of the database: it is stored as null, and a replay
// fills it in again with derive for the body's "id". A secret that can be
// derived again (a booking's manage_token) is then never at rest here,
// while a replay still answers exactly what the first request did.
func SecretField(name string, derive func(ctx context.Context, id uuid.UUID) (string, error)) Option {
	return func(o *options) { o.secret = &secretField{name: name, derive: derive} }
}

// redact returns body with the field's value replaced by null, byte for
// byte otherwise (encoding/json writes `"name":"value"`).
func (f *secretField) redact(body []byte) []byte {
	var fields map[string]json.RawMessage
	if f == nil || json.Unmarshal(body, &fields) != nil || fields[f.name] == nil {
		return body
	}
	return bytes.Replace(body, []byte(`"`+f.name+`":`+string(fields[f.name])), []byte(`"`+f.name+`":null`), 1)
}

// restore is redact undone, with the secret derived again.
func (f *secretField) restore(ctx context.Context, body []byte) ([]byte, error) {
	var fields struct {
		ID uuid.UUID `json:"id"`
	}
	redacted := []byte(`"` + f.name + `":null`)
	if f == nil || !bytes.Contains(body, redacted) || json.Unmarshal(body, &fields) != nil {
		return body, nil
	}
	secret, err := f.derive(ctx, fields.ID)
	if err != nil {
		return nil, fmt.Errorf("derive %s for a replay: %w", f.name, err)
	}
	value, err := json.Marshal(secret)
	if err != nil {
		return nil, err
	}
	return bytes.Replace(body, redacted, append([]byte(`"`+f.name+`":`), value...), 1), nil
}

// ScopeBy gives each key the scope scope(r) returns: keys of different
// scopes (the back office's operators) never meet. The default scope is
// the empty string.
func ScopeBy(scope func(*http.Request) string) Option {
	return func(o *options) { o.scope = scope }
}

// Middleware applies Idempotency-Key to POST requests. The body must already
// be readable again (the caller buffers it); writeError renders refusals.
func Middleware(pool *pgxpool.Pool, logger *slog.Logger, writeError func(http.ResponseWriter, *http.Request, error), opts ...Option) func(http.Handler) http.Handler {
	q := database.New(pool)
	o := options{scope: func(*http.Request) string { return "" }}
	for _, opt := range opts {
		opt(&o)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get(Header)
			if r.Method != http.MethodPost || key == "" {
				next.ServeHTTP(w, r)
				return
			}
			if len(key) > 255 {
				writeError(w, r, apperr.New(apperr.InvalidRequest, "Idempotency-Key must be 1 to 255 characters"))
				return
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				writeError(w, r, apperr.Wrap(err, apperr.InvalidRequest, "the request body could not be read"))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			hash := requestHash(r.Method, r.URL.Path, body)
			k := scopedKey{scope: o.scope(r), key: key}
			// Storing or freeing the key must happen even if the client
			// has gone away meanwhile.
			ctx := context.WithoutCancel(r.Context())

			claimed, recovered, err := claim(r, q, k, hash)
			if err != nil {
				writeError(w, r, err)
				return
			}
			if !claimed {
				replayOrRefuse(w, r, q, k, hash, o.secret, writeError)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), claimKey{}, heldKey{key: k, hash: hash, recovered: recovered}))

			rec := &recorder{ResponseWriter: w, status: http.StatusOK}
			stored := false
			defer func() {
				// A 5xx, a 429 or a panic frees the key, so that a retry
				// runs afresh.
				if !stored {
					if err := q.IdempotencyKeyRelease(ctx, db.IdempotencyKeyReleaseParams{Scope: k.scope, Key: k.key, RequestHash: hash}); err != nil {
						logger.LogAttrs(ctx, slog.LevelError, "release idempotency key", slog.String("error", err.Error()))
					}
				}
			}()
			next.ServeHTTP(rec, r)
			// A 429 (a hold cap reached) says "not now", not "no": the
			// retry after Retry-After must run afresh, as at Stripe, which
			// does not store rate-limited answers either.
			if rec.status >= 500 || rec.status == http.StatusTooManyRequests {
				return
			}
			status := int32(rec.status)
			err = q.IdempotencyKeyStoreResponse(ctx, db.IdempotencyKeyStoreResponseParams{
				Scope: k.scope, Key: k.key, RequestHash: hash, ResponseStatus: &status, ResponseBody: o.secret.redact(rec.body.Bytes()),
			})
			if err != nil {
				// The client has its answer; a retry within the lease is
				// told the key is in use, after it runs afresh.
				logger.LogAttrs(ctx, slog.LevelError, "store idempotent response", slog.String("error", err.Error()))
				return
			}
			stored = true
		})
	}
}

type scopedKey struct{ scope, key string }

// claim takes the key for this request, or reports that it is taken. When
// it takes over from a first run that died after creating a booking, it
// returns that booking.
func claim(r *http.Request, q *db.Queries, k scopedKey, hash []byte) (bool, *uuid.UUID, error) {
	recovered, err := q.IdempotencyKeyClaim(r.Context(), db.IdempotencyKeyClaimParams{
		Scope: k.scope, Key: k.key, RequestHash: hash, LockedUntil: new(time.Now().Add(lease)),
	})
	if database.IsNotFound(err) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	return true, recovered, nil
}

// heldKey is the key a request holds, kept in its context.
type heldKey struct {
	key       scopedKey
	hash      []byte
	recovered *uuid.UUID
}

type claimKey struct{}

// RecordBooking notes, in the transaction tx that creates it, the booking a
// request under an Idempotency-Key created: the key's recovery point. It
// does nothing for a request without a key.
func RecordBooking(ctx context.Context, q *db.Queries, bookingID uuid.UUID) error {
	c, ok := ctx.Value(claimKey{}).(heldKey)
	if !ok {
		return nil
	}
	err := q.IdempotencyKeyRecordBooking(ctx, db.IdempotencyKeyRecordBookingParams{
		Scope: c.key.scope, Key: c.key.key, RequestHash: c.hash, BookingID: &bookingID,
	})
	if err != nil {
		return fmt.Errorf("record booking under idempotency key: %w", err)
	}
	return nil
}

// RecoveredBooking is the booking an earlier run of this very request
// created before its instance died without storing the response: the
// handler answers with it instead of creating another.
func RecoveredBooking(ctx context.Context) (uuid.UUID, bool) {
	c, ok := ctx.Value(claimKey{}).(heldKey)
	if !ok || c.recovered == nil {
		return uuid.UUID{}, false
	}
	return *c.recovered, true
}

func replayOrRefuse(w http.ResponseWriter, r *http.Request, q *db.Queries, k scopedKey, hash []byte, secret *secretField,
	writeError func(http.ResponseWriter, *http.Request, error),
) {
	row, err := q.IdempotencyKeyGet(r.Context(), db.IdempotencyKeyGetParams{Scope: k.scope, Key: k.key})
	switch {
	case database.IsNotFound(err):
		// The first request failed and freed the key between our claim and
		// this read; the client may simply retry.
		writeError(w, r, apperr.New(apperr.IdempotencyKeyInUse, "a request with this Idempotency-Key was just being processed; retry"))
	case err != nil:
		writeError(w, r, fmt.Errorf("read idempotency key: %w", err))
	case !bytes.Equal(row.RequestHash, hash):
		writeError(w, r, apperr.New(apperr.IdempotencyKeyReused, "this Idempotency-Key was used for a different request"))
	case row.ResponseStatus == nil:
		writeError(w, r, apperr.New(apperr.IdempotencyKeyInUse, "a request with this Idempotency-Key is still being processed"))
	default:
		body, err := secret.restore(r.Context(), row.ResponseBody)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(int(*row.ResponseStatus))
		_, _ = w.Write(withRequestID(body, w.Header().Get("X-Request-Id")))
	}
}

// withRequestID gives a replayed error envelope this request's id: the
// stored one names a request the client no longer holds, and X-Request-Id,
// which the logs know this replay by, must agree with the body. Any other
// body is replayed as stored.
func withRequestID(body []byte, id string) []byte {
	var env struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if id == "" || json.Unmarshal(body, &env) != nil || env.Error["request_id"] == nil {
		return body
	}
	env.Error["request_id"], _ = json.Marshal(id)
	out, err := json.Marshal(env)
	if err != nil {
		return body
	}
	return append(out, '\n')
}

// requestHash identifies "the same request": method, path and body.
func requestHash(method, path string, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", method, path)
	h.Write(body)
	return h.Sum(nil)
}

// recorder passes the response through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
