package admin

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/apperr"
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

	u, err := CreateUser(ctx, tdb.Pool, " Ops@Example.com ", RoleOps, goodPassword)
	require.NoError(t, err)
	require.Equal(t, "ops@example.com", u.Email)

	_, err = CreateUser(ctx, tdb.Pool, "OPS@example.com", RoleAdmin, goodPassword)
	require.ErrorIs(t, err, ErrUserExists, "one account per address, whatever its case")

	_, err = CreateUser(ctx, tdb.Pool, "weak@example.com", RoleOps, "password")
	require.Error(t, err)
	_, err = CreateUser(ctx, tdb.Pool, "not an email", RoleOps, goodPassword)
	require.Error(t, err)

	sessions := NewSessions(tdb.Pool)
	ip := netip.MustParseAddr("192.0.2.1")
	s, err := sessions.Login(ctx, "ops@example.com", goodPassword, ip)
	require.NoError(t, err)

	// A new password ends the sessions opened with the old one.
	updated, err := UpdateUser(ctx, tdb.Pool, "ops@example.com", RoleAdmin, goodPassword+"!")
	require.NoError(t, err)
	require.Equal(t, RoleAdmin, updated.Role)
	_, err = sessions.Authenticate(ctx, s.Token)
	require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
	_, err = sessions.Login(ctx, "ops@example.com", goodPassword+"!", ip)
	require.NoError(t, err)

	_, err = UpdateUser(ctx, tdb.Pool, "nobody@example.com", RoleAdmin, goodPassword)
	require.Error(t, err)
}

func TestLoginThrottleHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	ctx := t.Context()
	_, err := CreateUser(ctx, tdb.Pool, "ops@example.com", RoleOps, goodPassword)
	require.NoError(t, err)
	sessions := NewSessions(tdb.Pool)

	// Many wrong guesses at once: the check and the record of each happen
	// under one lock, so no more failures are recorded than the limit.
	start := time.Now()
	var wg sync.WaitGroup
	codes := make(chan apperr.Code, 12)
	for i := range 12 {
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
		wg.Go(func() {
			_, err := sessions.Login(ctx, "ops@example.com", "wrong password 1", ip)
			codes <- apperr.CodeOf(err)
		})
	}
	wg.Wait()
	close(codes)
	count := map[apperr.Code]int{}
	for c := range codes {
		count[c]++
	}
	require.Equal(t, map[apperr.Code]int{apperr.Unauthorized: MaxEmailFailures, apperr.RateLimited: 12 - MaxEmailFailures}, count)
	require.Equal(t, MaxEmailFailures, tdb.Count(t, "SELECT count(*) FROM login_attempts"))

	_, err = sessions.Login(ctx, "ops@example.com", goodPassword, netip.MustParseAddr("198.51.100.7"))
	require.Equal(t, apperr.RateLimited, apperr.CodeOf(err), "throttled even with the right password")
	throttled, ok := err.(*apperr.Error).Err.(*Throttled)
	require.True(t, ok)
	// The window runs from the first failure, somewhere after start: however
	// long the hashing took on a loaded machine, what is left lies in here.
	require.LessOrEqual(t, throttled.RetryAfter(), ThrottleWindow)
	require.GreaterOrEqual(t, throttled.RetryAfter(), ThrottleWindow-time.Since(start)-time.Second)
}
