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
