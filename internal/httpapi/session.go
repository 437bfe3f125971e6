package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/apperr"
)

// sessionCookie is the back office's session cookie (SPEC §3).
const sessionCookie = "slotpay_session"

// principal is the operator a request acts for, and the session it came in.
type principal struct {
	user  admin.User
	token string
}

// requireRole lets a request through only with a live session whose role
// includes least: 401 without one, 403 with too low a role. It runs before
// body reading, validation and Idempotency-Key, so an anonymous caller
// learns nothing and stores nothing.
func (s *Server) requireRole(least admin.Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := cookieToken(r)
		user, err := s.sessions.Authenticate(r.Context(), token)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !user.Role.Allows(least) {
			s.writeError(w, r, apperr.New(apperr.Forbidden, "this needs the role %s or above", least))
			return
		}
		if r.Method != http.MethodGet {
			// The audit trail of operator actions: who did what. The
			// user id, never the email, as logs leave the database's
			// access control behind.
			s.logger.LogAttrs(r.Context(), slog.LevelInfo, "admin action",
				slog.String("request_id", requestID(r.Context())),
				slog.String("admin_user_id", user.ID.String()),
				slog.String("role", string(user.Role)),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path))
		}
		ctx := context.WithValue(r.Context(), principalKey, principal{user: user, token: token})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// withSessionToken hands the cookie's token, if any, to a handler that
// works without a valid session (sign-out).
func withSessionToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), sessionTokenKey, cookieToken(r))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func cookieToken(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

func principalFrom(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalKey).(principal)
	return p, ok
}

// newSessionCookie is the cookie for token, alive for maxAge (a negative
// maxAge deletes it). HttpOnly keeps it from scripts; SameSite=Strict keeps
// browsers from sending it with requests another site starts; Secure keeps
// it off plain HTTP unless COOKIE_SECURE=false (local development).
func (s *Server) newSessionCookie(token string, maxAge time.Duration) string {
	c := &http.Cookie{
		Name:     sessionCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		HttpOnly: true,
		Secure:   s.cfg.CookieSecure,
		SameSite: http.SameSiteStrictMode,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	}
	return c.String()
}
