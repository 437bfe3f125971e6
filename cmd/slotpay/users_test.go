package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

func TestAdminCreateUser(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	env := func(password string) map[string]string {
		return map[string]string{"DATABASE_URL": tdb.URL, "SLOTPAY_ADMIN_PASSWORD": password}
	}
	const password = "correct horse Battery 9"

	t.Run("CreatesWithThePasswordFromTheEnvironment", func(t *testing.T) {
		r := runCommand(t, env(password), "admin", "create-user", "--email", "Ops@Example.com", "--role", "ops")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "created with role ops")
		require.NotContains(t, r.stdout+r.stderr, password)
		require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM admin_users WHERE email = 'ops@example.com' AND role = 'ops' AND password_hash LIKE '$argon2id$%'"))
	})
	t.Run("RefusesAnExistingEmailWithoutUpdate", func(t *testing.T) {
		r := runCommand(t, env(password), "admin", "create-user", "--email", "ops@example.com", "--role", "admin")
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, "--update")
	})
	t.Run("UpdatesRoleAndPassword", func(t *testing.T) {
		r := runCommand(t, env(password+"!"), "admin", "create-user", "--email", "ops@example.com", "--role", "admin", "--update")
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM admin_users WHERE role = 'admin'"))
	})
	t.Run("RefusesAWeakPassword", func(t *testing.T) {
		r := runCommand(t, env("password"), "admin", "create-user", "--email", "weak@example.com", "--role", "ops")
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, "at least 12 characters")
	})
	t.Run("RefusesWithoutPasswordOrTerminal", func(t *testing.T) {
		// The real binary, whose stdin is surely no terminal.
		r := runBinary(t, env(""), "admin", "create-user", "--email", "none@example.com", "--role", "ops")
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, "SLOTPAY_ADMIN_PASSWORD")
	})
	t.Run("RefusesAnUnknownRole", func(t *testing.T) {
		r := runCommand(t, env(password), "admin", "create-user", "--email", "root@example.com", "--role", "root")
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, "role must be readonly, ops or admin")
	})
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM admin_users"))
}
