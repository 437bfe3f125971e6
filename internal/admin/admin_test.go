package admin

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const goodPassword = "correct horse Battery 9"

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	hash, err := HashPassword(goodPassword)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$"), hash)

	ok, err := verifyPassword(hash, goodPassword)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = verifyPassword(hash, goodPassword+"x")
	require.NoError(t, err)
	require.False(t, ok)

	again, err := HashPassword(goodPassword)
	require.NoError(t, err)
	require.NotEqual(t, hash, again, "every hash has its own salt")

	_, err = verifyPassword("$2a$10$bcrypt", goodPassword)
	require.Error(t, err)
}

func TestDummyHashHasTheParametersOfRealHashes(t *testing.T) {
	t.Parallel()
	// The unknown-user path of Login verifies against dummyHash; it takes as
	// long as a real verification only while the parameters match.
	real, err := HashPassword(goodPassword)
	require.NoError(t, err)
	params := func(h string) string { return strings.Join(strings.Split(h, "$")[:4], "$") }
	require.Equal(t, params(real), params(dummyHash()))
}

func TestCheckPasswordStrength(t *testing.T) {
	t.Parallel()
	for name, pw := range map[string]string{
		"TooShort":       "Ab1!Ab1!Ab1",
		"OneClassLower":  "abcdefghijklmnop",
		"OneClassDigits": "123456789012345",
		"TooLong":        strings.Repeat("aB", MaxPasswordLength),
	} {
		t.Run("Refuses"+name, func(t *testing.T) {
			t.Parallel()
			require.Error(t, CheckPasswordStrength(pw))
		})
	}
	for _, pw := range []string{goodPassword, "abcdefghijk1", "ÄÖÜäöüßéèêëa"} {
		require.NoError(t, CheckPasswordStrength(pw), pw)
	}
}

func TestRoleAllows(t *testing.T) {
	t.Parallel()
	require.True(t, RoleAdmin.Allows(RoleOps))
	require.True(t, RoleOps.Allows(RoleOps))
	require.True(t, RoleOps.Allows(RoleReadonly))
	require.False(t, RoleOps.Allows(RoleAdmin))
	require.False(t, RoleReadonly.Allows(RoleOps))
	require.False(t, Role("root").Allows(RoleReadonly))
	_, err := ParseRole("root")
	require.Error(t, err)
}

func TestUsers(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	ctx := t.Context()

	u, err := CreateUser(ctx, tdb.Pool, " Ops@Example.com ", RoleOps, goodPassword, audit.CommandLine)
	require.NoError(t, err)
	require.Equal(t, "ops@example.com", u.Email)

	_, err = CreateUser(ctx, tdb.Pool, "OPS@example.com", RoleAdmin, goodPassword, audit.CommandLine)
	require.ErrorIs(t, err, ErrUserExists, "one account per address, whatever its case")

	_, err = CreateUser(ctx, tdb.Pool, "weak@example.com", RoleOps, "password", audit.CommandLine)
	require.Error(t, err)
	_, err = CreateUser(ctx, tdb.Pool, "not an email", RoleOps, goodPassword, audit.CommandLine)
	require.Error(t, err)

	sessions := NewSessions(tdb.Pool)
	ip := netip.MustParseAddr("192.0.2.1")
	s, err := sessions.Login(ctx, "ops@example.com", goodPassword, ip)
	require.NoError(t, err)

	// A new password ends the sessions opened with the old one.
	updated, err := UpdateUser(ctx, tdb.Pool, "ops@example.com", RoleAdmin, goodPassword+"!", audit.CommandLine)
	require.NoError(t, err)
	require.Equal(t, RoleAdmin, updated.Role)
	_, err = sessions.Authenticate(ctx, s.Token)
	require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
	_, err = sessions.Login(ctx, "ops@example.com", goodPassword+"!", ip)
	require.NoError(t, err)

	_, err = UpdateUser(ctx, tdb.Pool, "nobody@example.com", RoleAdmin, goodPassword, audit.CommandLine)
	require.Error(t, err)
}

// loginCodes runs n sign-ins at once and counts their outcomes.
func loginCodes(t *testing.T, sessions *Sessions, n int, email, password string, ipOf func(i int) netip.Addr) map[apperr.Code]int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		count = map[apperr.Code]int{}
	)
	for i := range n {
		wg.Go(func() {
			_, err := sessions.Login(t.Context(), email, password, ipOf(i))
			mu.Lock()
			count[apperr.CodeOf(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return count
}

func waitOf(t *testing.T, err error) time.Duration {
	t.Helper()
	require.Equal(t, apperr.RateLimited, apperr.CodeOf(err), "%v", err)
	throttled, ok := errors.AsType[*Throttled](err)
	require.True(t, ok)
	return throttled.RetryAfter()
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*Sessions, testkit.TestDB) {
		tdb := testkit.NewDatabase(t)
		_, err := CreateUser(t.Context(), tdb.Pool, "ops@example.com", RoleOps, goodPassword, audit.CommandLine)
		require.NoError(t, err)
		return NewSessions(tdb.Pool), tdb
	}
	attacker := netip.MustParseAddr("203.0.113.66")
	operator := netip.MustParseAddr("198.51.100.7")
	// failures records n failed attempts at once, as if made within the
	// last minute, without hashing n passwords.
	failures := func(t *testing.T, tdb testkit.TestDB, n int, email string, ip func(i int) string) {
		for i := range n {
			tdb.Exec(t, "INSERT INTO login_attempts (email, ip, at, success) VALUES ($1, $2, now() - interval '1 minute', false)", email, ip(i))
		}
	}

	t.Run("AttackerLocksOutOnlyThemselves", func(t *testing.T) {
		t.Parallel()
		sessions, _ := setup(t)
		ctx := t.Context()
		for range MaxPairFailures {
			_, err := sessions.Login(ctx, "ops@example.com", "wrong password 1", attacker)
			require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
		}
		_, err := sessions.Login(ctx, "ops@example.com", goodPassword, attacker)
		require.InDelta(t, ThrottleWindow.Seconds(), waitOf(t, err).Seconds(), 5, "refused from that address even with the right password")

		_, err = sessions.Login(ctx, "ops@example.com", goodPassword, operator)
		require.NoError(t, err, "the operator's own address is not refused")
		_, err = sessions.Login(ctx, "someone@example.com", "wrong password 1", attacker)
		require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err), "the pair is refused, not the address")
	})

	t.Run("ConcurrentAttemptsAreCountedBeforeHashing", func(t *testing.T) {
		t.Parallel()
		sessions, tdb := setup(t)
		// Many wrong guesses at once from one address: each is counted
		// before its hash, under one lock, so no more of them are hashed
		// (and recorded) than the limit.
		count := loginCodes(t, sessions, 12, "ops@example.com", "wrong password 1", func(int) netip.Addr { return attacker })
		require.Equal(t, map[apperr.Code]int{apperr.Unauthorized: MaxPairFailures, apperr.RateLimited: 12 - MaxPairFailures}, count)
		require.Equal(t, MaxPairFailures, tdb.Count(t, "SELECT count(*) FROM login_attempts"))
	})

	t.Run("AddressRefusedAfterTwentyFailures", func(t *testing.T) {
		t.Parallel()
		sessions, tdb := setup(t)
		failures(t, tdb, MaxIPFailures, "", func(int) string { return attacker.String() })
		tdb.Exec(t, "UPDATE login_attempts SET email = 'guess' || id || '@example.com'")
		_, err := sessions.Login(t.Context(), "ops@example.com", goodPassword, attacker)
		require.InDelta(t, (ThrottleWindow - time.Minute).Seconds(), waitOf(t, err).Seconds(), 5)
		_, err = sessions.Login(t.Context(), "ops@example.com", goodPassword, operator)
		require.NoError(t, err)
	})

	t.Run("EmailRefusedEverywhereAfterAHundredFailures", func(t *testing.T) {
		t.Parallel()
		sessions, tdb := setup(t)
		failures(t, tdb, MaxEmailFailures-1, "ops@example.com", func(i int) string { return fmt.Sprintf("10.0.%d.%d", i/250, i%250+1) })
		_, err := sessions.Login(t.Context(), "ops@example.com", goodPassword, operator)
		require.NoError(t, err, "99 failures from everywhere do not refuse the e-mail")
		failures(t, tdb, 1, "ops@example.com", func(int) string { return "10.9.9.9" })
		_, err = sessions.Login(t.Context(), "ops@example.com", goodPassword, operator)
		require.InDelta(t, (ThrottleWindow - time.Minute).Seconds(), waitOf(t, err).Seconds(), 5)
	})

	t.Run("FailuresOutsideTheWindowDoNotCount", func(t *testing.T) {
		t.Parallel()
		sessions, tdb := setup(t)
		failures(t, tdb, MaxIPFailures, "ops@example.com", func(int) string { return attacker.String() })
		tdb.Exec(t, "UPDATE login_attempts SET at = now() - $1::interval", (ThrottleWindow + time.Second).String())
		_, err := sessions.Login(t.Context(), "ops@example.com", goodPassword, attacker)
		require.NoError(t, err)
	})
}

func TestHashGate(t *testing.T) {
	t.Parallel()
	t.Run("AFloodWaitsThenIsRefused", func(t *testing.T) {
		t.Parallel()
		g := newHashGate(2, 50*time.Millisecond)
		require.NoError(t, g.acquire(t.Context()))
		require.NoError(t, g.acquire(t.Context()))
		require.ErrorIs(t, g.acquire(t.Context()), errHashBusy, "no third hash at once")
		g.release()
		require.NoError(t, g.acquire(t.Context()), "a released slot is taken again")
	})
	t.Run("TheQueueIsBounded", func(t *testing.T) {
		t.Parallel()
		g := newHashGate(1, time.Hour)
		require.NoError(t, g.acquire(t.Context()))
		g.waiting.Store(g.maxWaiting)
		require.ErrorIs(t, g.acquire(t.Context()), errHashBusy, "refused at once when the queue is full")
	})
	t.Run("AWaiterTakesTheNextFreeSlot", func(t *testing.T) {
		t.Parallel()
		g := newHashGate(1, time.Hour)
		require.NoError(t, g.acquire(t.Context()))
		done := make(chan error)
		go func() { done <- g.acquire(t.Context()) }()
		require.Eventually(t, func() bool { return g.waiting.Load() == 1 }, 10*time.Second, time.Millisecond)
		g.release()
		require.NoError(t, <-done)
	})
}

func TestSessionEnds(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	ctx := t.Context()
	_, err := CreateUser(ctx, tdb.Pool, "ops@example.com", RoleOps, goodPassword, audit.CommandLine)
	require.NoError(t, err)
	sessions := NewSessions(tdb.Pool)
	login := func(t *testing.T) Session {
		s, err := sessions.Login(ctx, "ops@example.com", goodPassword, netip.MustParseAddr("192.0.2.1"))
		require.NoError(t, err)
		return s
	}
	hashOf := func(s Session) []byte { h, _ := hashToken(s.Token); return h }

	t.Run("AfterAnHourUnused", func(t *testing.T) {
		s := login(t)
		tdb.Exec(t, "UPDATE admin_sessions SET last_seen_at = now() - interval '59 minutes' WHERE token_hash = $1", hashOf(s))
		_, err := sessions.Authenticate(ctx, s.Token)
		require.NoError(t, err, "used within the hour")
		require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM admin_sessions WHERE token_hash = $1 AND last_seen_at > now() - interval '1 minute'", hashOf(s)),
			"using a session restarts its idle hour")
		tdb.Exec(t, "UPDATE admin_sessions SET last_seen_at = now() - interval '61 minutes' WHERE token_hash = $1", hashOf(s))
		_, err = sessions.Authenticate(ctx, s.Token)
		require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
	})
	t.Run("AfterEightHoursInUse", func(t *testing.T) {
		s := login(t)
		tdb.Exec(t, "UPDATE admin_sessions SET created_at = now() - interval '9 hours', expires_at = now() - interval '1 hour' WHERE token_hash = $1", hashOf(s))
		_, err := sessions.Authenticate(ctx, s.Token)
		require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
	})
}

func TestLoginRefusedWhileHashingIsBusyDoesNotCount(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	_, err := CreateUser(t.Context(), tdb.Pool, "ops@example.com", RoleOps, goodPassword, audit.CommandLine)
	require.NoError(t, err)
	sessions := NewSessions(tdb.Pool)
	sessions.hash = newHashGate(1, 10*time.Millisecond)
	require.NoError(t, sessions.hash.acquire(t.Context()), "another sign-in is hashing")

	_, err = sessions.Login(t.Context(), "ops@example.com", goodPassword, netip.MustParseAddr("192.0.2.1"))
	require.Equal(t, time.Second, waitOf(t, err), "come back in a second")
	require.Equal(t, 0, tdb.Count(t, "SELECT count(*) FROM login_attempts"), "a password never checked is no failure")

	sessions.hash.release()
	_, err = sessions.Login(t.Context(), "ops@example.com", goodPassword, netip.MustParseAddr("192.0.2.1"))
	require.NoError(t, err)
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM login_attempts WHERE success"))
}
