package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
)

// SessionLifetime is how long a login lasts (SPEC §3).
const SessionLifetime = 8 * time.Hour

// Login throttling (SPEC §3): after this many failures for one email, or
// from one client address, within ThrottleWindow, further attempts are
// refused until the oldest of them leaves the window.
const (
	MaxEmailFailures = 5
	MaxIPFailures    = 20
	ThrottleWindow   = 15 * time.Minute
)

// errLoginFailed is the one answer to every wrong email, password or
// combination, so that it tells an attacker nothing.
var errLoginFailed = apperr.New(apperr.Unauthorized, "invalid email or password")

var errNoSession = apperr.New(apperr.Unauthorized, "sign in first: no valid session")

// Throttled is the cause of a rate_limited login refusal.
type Throttled struct{ Wait time.Duration }

func (t *Throttled) Error() string { return fmt.Sprintf("login throttled for %s", t.Wait) }

// RetryAfter is how long the client should wait.
func (t *Throttled) RetryAfter() time.Duration { return t.Wait }

// Sessions logs operators in and out and recognises their session tokens.
type Sessions struct {
	pool *pgxpool.Pool
}

// NewSessions returns Sessions stored in pool's database.
func NewSessions(pool *pgxpool.Pool) *Sessions { return &Sessions{pool: pool} }

// Session is a successful login: the token goes into the cookie, and only
// its hash into the database.
type Session struct {
	Token     string
	User      User
	ExpiresAt time.Time
}

// Login checks email and password from client address ip, and opens a
// session. Every failure is the same unauthorized error; a throttled caller
// is refused with rate_limited even when the password is right.
func (s *Sessions) Login(ctx context.Context, email, password string, ip netip.Addr) (Session, error) {
	email = normalizeEmail(email)
	if len(email) > 254 || len(password) > MaxPasswordLength {
		return Session{}, errLoginFailed
	}
	// A cheap check first, so that a throttled caller cannot make us hash.
	if err := checkThrottle(ctx, database.New(s.pool), email, ip); err != nil {
		return Session{}, err
	}
	user, err := database.New(s.pool).AdminUserGetByEmail(ctx, email)
	known := err == nil
	if err != nil && !database.IsNotFound(err) {
		return Session{}, fmt.Errorf("load admin user: %w", err)
	}
	// An unknown email is checked against a dummy hash with the same
	// parameters, so the answer takes as long as for a known one: timing
	// does not tell which emails have accounts. Do not short-cut this.
	hash := dummyHash()
	if known {
		hash = user.PasswordHash
	}
	ok, err := verifyPassword(hash, password)
	if err != nil {
		return Session{}, fmt.Errorf("verify password of admin user %s: %w", user.ID, err)
	}
	ok = ok && known

	var session Session
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		// Check and record under locks on the email and the address, always
		// taken in that order, so that concurrent attempts on any instance
		// cannot all pass the check before any is recorded. The locks are
		// held for a few statements, never across the hashing above.
		if err := q.LoginThrottleLock(ctx, "slotpay-login-email:"+email); err != nil {
			return fmt.Errorf("lock login email: %w", err)
		}
		if err := q.LoginThrottleLock(ctx, "slotpay-login-ip:"+ip.String()); err != nil {
			return fmt.Errorf("lock login address: %w", err)
		}
		if err := checkThrottle(ctx, q, email, ip); err != nil {
			// Not recorded: refused attempts must not keep the window open.
			return err
		}
		if err := q.LoginAttemptInsert(ctx, db.LoginAttemptInsertParams{Email: email, Ip: ip, Success: ok}); err != nil {
			return fmt.Errorf("record login attempt: %w", err)
		}
		if !ok {
			return nil
		}
		token, tokenHash, err := newToken()
		if err != nil {
			return err
		}
		row, err := q.AdminSessionInsert(ctx, db.AdminSessionInsertParams{
			TokenHash: tokenHash, UserID: user.ID,
			Lifetime: pgtype.Interval{Microseconds: SessionLifetime.Microseconds(), Valid: true},
		})
		if err != nil {
			return fmt.Errorf("open session: %w", err)
		}
		session = Session{Token: token, User: userOf(user), ExpiresAt: row.ExpiresAt}
		return nil
	})
	if err != nil {
		return Session{}, err
	}
	if !ok {
		return Session{}, errLoginFailed
	}
	return session, nil
}

func checkThrottle(ctx context.Context, q *db.Queries, email string, ip netip.Addr) error {
	seconds, err := q.LoginAttemptThrottledFor(ctx, db.LoginAttemptThrottledForParams{
		Email: email, Ip: ip,
		Span:      pgtype.Interval{Microseconds: ThrottleWindow.Microseconds(), Valid: true},
		EmailSkip: MaxEmailFailures - 1,
		IpSkip:    MaxIPFailures - 1,
	})
	if err != nil {
		return fmt.Errorf("check login throttle: %w", err)
	}
	if seconds > 0 {
		return apperr.Wrap(&Throttled{Wait: time.Duration(seconds) * time.Second}, apperr.RateLimited,
			"too many failed sign-in attempts; try again later")
	}
	return nil
}

// Authenticate returns the user of a live session token.
func (s *Sessions) Authenticate(ctx context.Context, token string) (User, error) {
	hash, ok := hashToken(token)
	if !ok {
		return User{}, errNoSession
	}
	row, err := database.New(s.pool).AdminSessionGetUser(ctx, hash)
	if database.IsNotFound(err) {
		return User{}, errNoSession
	}
	if err != nil {
		return User{}, fmt.Errorf("look up session: %w", err)
	}
	return userOf(row.AdminUser), nil
}

// Logout revokes a session on every instance. An unknown or already
// revoked token is not an error: the outcome is the same.
func (s *Sessions) Logout(ctx context.Context, token string) error {
	hash, ok := hashToken(token)
	if !ok {
		return nil
	}
	if err := database.New(s.pool).AdminSessionRevoke(ctx, hash); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// Prune deletes sessions long past their end and login attempts past their
// use for audit.
func (s *Sessions) Prune(ctx context.Context) error {
	q := database.New(s.pool)
	if _, err := q.AdminSessionDeleteOld(ctx); err != nil {
		return fmt.Errorf("prune sessions: %w", err)
	}
	if _, err := q.LoginAttemptDeleteOld(ctx); err != nil {
		return fmt.Errorf("prune login attempts: %w", err)
	}
	return nil
}

// tokenBytes is 256 bits, beyond guessing.
const tokenBytes = 32

var tokenEncoding = base64.RawURLEncoding

func newToken() (string, []byte, error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("session token: %w", err)
	}
	sum := sha256.Sum256(raw)
	return tokenEncoding.EncodeToString(raw), sum[:], nil
}

func hashToken(token string) ([]byte, bool) {
	raw, err := tokenEncoding.DecodeString(token)
	if err != nil || len(raw) != tokenBytes {
		return nil, false
	}
	sum := sha256.Sum256(raw)
	return sum[:], true
}
