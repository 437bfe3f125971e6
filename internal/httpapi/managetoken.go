package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/managetoken"
)

// The customer's manage_token (SPEC §3.1) arrives as Authorization: Bearer.
// It is a header, never a cookie, so a browser never sends it on its own:
// another site cannot ride it, and CrossOriginProtection stays what guards
// the cookie-authenticated back office.

type bearerKey struct{}

// withBearer puts the request's bearer token, if any, in its context for
// the handlers, which check it against the booking's stored hash.
func withBearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			next.ServeHTTP(w, r)
			return
		}
		scheme, token, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			token = "" // sent, but not a bearer token: matches nothing
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bearerKey{}, strings.TrimSpace(token))))
	})
}

// bearerFrom returns the bearer token, and whether an Authorization header
// was sent at all.
func bearerFrom(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(bearerKey{}).(string)
	return t, ok
}

// bearerScope keeps Idempotency-Keys sent with a manage_token apart from
// those sent without one or with another: a stored answer for the owner of a
// booking is never replayed to a request that could not have made it.
func bearerScope(r *http.Request) (string, bool) {
	t, ok := bearerFrom(r.Context())
	if !ok {
		return "", false
	}
	sum := sha256.Sum256([]byte(t))
	return "bearer:" + hex.EncodeToString(sum[:16]), true
}

// authorize refuses a request whose bearer token is not the booking's
// manage_token; missing, malformed and wrong are told apart by nobody.
func authorize(ctx context.Context, b db.Booking) error {
	token, _ := bearerFrom(ctx)
	if managetoken.Check(token, b.ManageTokenHash) != nil {
		return apperr.New(apperr.Unauthorized, "a valid manage_token is required as Authorization: Bearer")
	}
	return nil
}
