package testkit

import (
	"testing"
	"time"
)

// The states below are ones no request can reach in a test's lifetime (a
// day-old key, a session past its end) or that another instance leaves
// behind (a key whose first request is still in flight). Tests name the
// state; the SQL that makes it lives here only.

// IdempotencyKeyInFlight makes the stored key look like its first request
// is still being served, under a lease until until: a past until is the
// lease of an instance that died.
func IdempotencyKeyInFlight(t testing.TB, d TestDB, key string, until time.Time) {
	t.Helper()
	d.Exec(t, `UPDATE idempotency_keys SET response_status = NULL, response_body = NULL, locked_until = $2
		WHERE key = $1`, key, until)
}

// AgeIdempotencyKeys makes every stored key age old.
func AgeIdempotencyKeys(t testing.TB, d TestDB, age time.Duration) {
	t.Helper()
	d.Exec(t, "UPDATE idempotency_keys SET created_at = $1", time.Now().Add(-age))
}

// AgeLoginAttempts moves every recorded sign-in attempt age into the past.
func AgeLoginAttempts(t testing.TB, d TestDB, age time.Duration) {
	t.Helper()
	d.Exec(t, "UPDATE login_attempts SET at = at - make_interval(secs => $1)", age.Seconds())
}

// EndAdminSessions makes every back-office session one that began life
// ago and ended a second ago.
func EndAdminSessions(t testing.TB, d TestDB, life time.Duration) {
	t.Helper()
	now := time.Now()
	d.Exec(t, "UPDATE admin_sessions SET created_at = $1, expires_at = $2", now.Add(-life-time.Second), now.Add(-time.Second))
}

// LoginAttemptOpts is one sign-in attempt a test needs on record.
type LoginAttemptOpts struct {
	// Email is what was typed (stored as given).
	Email string
	// IP is the address it came from.
	IP string
	// Age is how long ago it was made; zero is now.
	Age time.Duration
	// Success marks a right password; the zero value is a failure.
	Success bool
}

// CreateLoginAttempt records a sign-in attempt without hashing a password,
// so that a test can fill the throttle's window quickly.
func CreateLoginAttempt(t testing.TB, d TestDB, opts LoginAttemptOpts) {
	t.Helper()
	d.Exec(t, "INSERT INTO login_attempts (email, ip, at, success) VALUES ($1, $2, now() - make_interval(secs => $3), $4)",
		opts.Email, opts.IP, opts.Age.Seconds(), opts.Success)
}

// AdminSessionOpts is the state a test needs one back-office session in.
// Zero fields keep what the session has.
type AdminSessionOpts struct {
	// LastSeenAt back-dates the session's last use.
	LastSeenAt time.Time
	// CreatedAt and ExpiresAt move the session's life (set both).
	CreatedAt, ExpiresAt time.Time
}

// SetAdminSession puts the session whose token hashes to tokenHash in the
// state opts says.
func SetAdminSession(t testing.TB, d TestDB, tokenHash []byte, opts AdminSessionOpts) {
	t.Helper()
	if !opts.LastSeenAt.IsZero() {
		d.Exec(t, "UPDATE admin_sessions SET last_seen_at = $2 WHERE token_hash = $1", tokenHash, opts.LastSeenAt)
	}
	if !opts.CreatedAt.IsZero() || !opts.ExpiresAt.IsZero() {
		d.Exec(t, "UPDATE admin_sessions SET created_at = $2, expires_at = $3 WHERE token_hash = $1", tokenHash, opts.CreatedAt, opts.ExpiresAt)
	}
}
