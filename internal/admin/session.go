package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
)

// A session ends SessionLifetime after sign-in, or SessionIdle after its
// last use, whichever comes first (SPEC §3).
const (
	SessionLifetime = 8 * time.Hour
	SessionIdle     = time.Hour
)

// errLoginFailed is the one answer to every wrong email, password or
// combination, so that it tells an attacker nothing.
var errLoginFailed = apperr.New(apperr.Unauthorized, "invalid email or password")

var errNoSession = apperr.New(apperr.Unauthorized, "sign in first: no valid session")

// Sessions logs operators in and out and recognises their session tokens.
type Sessions struct {
	pool *pgxpool.Pool
	hash *hashGate
}

// NewSessions returns Sessions stored in pool's database. Password hashing
// runs at most 2 × GOMAXPROCS at a time in this process.
func NewSessions(pool *pgxpool.Pool) *Sessions {
	return &Sessions{pool: pool, hash: newHashGate(defaultHashSlots(), hashWait)}
}

// Session is a successful login: the token goes into the cookie, and only
// its hash into the database.
type Session struct {
	Token     string
	User      User
	ExpiresAt time.Time
}

// Login checks email and password from client address ip, and opens a
// session. Every failure is the same unauthorized error; a throttled caller
// is refused with rate_limited even when the password is right, and so is
// one that arrives while the server is too busy hashing.
func (s *Sessions) Login(ctx context.Context, email, password string, ip netip.Addr) (Session, error) {
	email = normalizeEmail(email)
	if len(email) > 254 || len(password) > MaxPasswordLength {
		return Session{}, errLoginFailed
	}
	// The cheap check first, counted before the hash, so that neither a
	// throttled caller nor a crowd of concurrent ones can make us hash.
	var attempt int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
		attempt, err = reserveAttempt(ctx, tx, email, ip)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	user, ok, err := s.checkPassword(ctx, email, password)
	if errors.Is(err, errHashBusy) || (err != nil && ctx.Err() != nil) {
		// The password was never checked (the server was busy, or the
		// client left while waiting): the attempt does not count.
		if delErr := database.New(s.pool).LoginAttemptDelete(context.WithoutCancel(ctx), attempt); delErr != nil {
			return Session{}, fmt.Errorf("withdraw login attempt: %w", delErr)
		}
		return Session{}, err
	}
	if err != nil {
		return Session{}, err
	}
	if !ok {
		return Session{}, errLoginFailed
	}

	var session Session
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		if err := q.LoginAttemptSucceeded(ctx, attempt); err != nil {
			return fmt.Errorf("record login success: %w", err)
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
	return session, nil
}

// checkPassword reports whether password is the one of email's account,
// hashing in one of the gate's slots.
func (s *Sessions) checkPassword(ctx context.Context, email, password string) (db.AdminUser, bool, error) {
	user, err := database.New(s.pool).AdminUserGetByEmail(ctx, email)
	known := err == nil
	if err != nil && !database.IsNotFound(err) {
		return db.AdminUser{}, false, fmt.Errorf("load admin user: %w", err)
	}
	if err := s.hash.acquire(ctx); err != nil {
		return db.AdminUser{}, false, err
	}
	defer s.hash.release()
	// An unknown email is checked against a dummy hash with the same
	// parameters, so the answer takes as long as for a known one: timing
	// does not tell which emails have accounts. Do not short-cut this.
	hash := dummyHash()
	if known {
		hash = user.PasswordHash
	}
	ok, err := verifyPassword(hash, password)
	// argon2id's 19 MiB are garbage the moment it returns. Collected now,
	// before the slot is handed on, the next verification reuses those
	// pages; left to the GC's pacing, the heap would first grow to twice
	// its live size, and a flood would double the process's memory.
	runtime.GC()
	if err != nil {
		return db.AdminUser{}, false, fmt.Errorf("verify password of admin user %s: %w", user.ID, err)
	}
	return user, ok && known, nil
}

// Authenticate returns the user of a live session token.
func (s *Sessions) Authenticate(ctx context.Context, token string) (User, error) {
	hash, ok := hashToken(token)
	if !ok {
		return User{}, errNoSession
	}
	row, err := database.New(s.pool).AdminSessionTouch(ctx, db.AdminSessionTouchParams{
		TokenHash: hash,
		Idle:      pgtype.Interval{Microseconds: SessionIdle.Microseconds(), Valid: true},
	})
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
