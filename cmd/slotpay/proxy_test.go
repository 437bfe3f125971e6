package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

// findHAProxy returns Debian's haproxy, which `make test` installs when it
// is missing and it can (see the Makefile). Outside CI the test skips
// without it; in CI a missing proxy is a failure, not a pass.
func findHAProxy(t *testing.T) string {
	t.Helper()
	for _, candidate := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if path, err := exec.LookPath(candidate); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("haproxy is not installed; CI must run this test (apt-get install -y haproxy, or make haproxy)")
	}
	t.Skip("haproxy is not installed (make haproxy installs it)")
	return ""
}

// startHAProxy runs a real HAProxy in front of backend ("host:port"), in
// HTTP mode with `option forwardfor`, as the documented TLS proxy would be,
// and returns its base URL once it answers.
func startHAProxy(t *testing.T, haproxy, backend string) string {
	t.Helper()
	front := freeAddr(t)
	cfg := fmt.Sprintf(`global
    maxconn 512
defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend public
    bind %s
    default_backend slotpay
backend slotpay
    server slotpay %s
`, front, backend)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	cmd := exec.Command(haproxy, "-db", "-f", path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + front
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 15*time.Second, 50*time.Millisecond, "haproxy did not come up: %s", &out)
	return base
}

// TestBehindHAProxyClientsAreCountedApart runs the binary behind a real
// HAProxy, with clients connecting to the proxy from 127.0.0.2 (an attacker,
// who also forges X-Forwarded-For) and 127.0.0.3 (an operator and a
// customer). With TRUSTED_PROXIES naming the proxy, sign-in throttling, hold
// caps and the write limit count the real clients; without it they count the
// proxy, so the attacker's failures lock everyone out, and slotpay says so
// in its log.
func TestBehindHAProxyClientsAreCountedApart(t *testing.T) {
	t.Parallel()
	haproxy := findHAProxy(t)
	const password = "correct horse Battery 9"
	attacker, operator := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")

	// start runs slotpay behind its own HAProxy with the extra settings and
	// an operator account.
	start := func(t *testing.T, extra ...string) (string, testkit.TestDB, *testkit.Output) {
		tdb := testkit.NewDatabase(t)
		backend, _, stdout, env := startServe(t, tdb, extra...)
		r := runBinary(t, envOf(env, "SLOTPAY_ADMIN_PASSWORD="+password),
			"admin", "create-user", "--email", "ops@example.com", "--role", "ops")
		require.Equal(t, 0, r.code, r.stderr)
		return startHAProxy(t, haproxy, strings.TrimPrefix(backend, "http://")), tdb, stdout
	}
	// send posts body to path through client; forged, when set, is an
	// X-Forwarded-For the client writes itself.
	send := func(t *testing.T, client *http.Client, url, body, forged string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if forged != "" {
			req.Header.Set("X-Forwarded-For", forged)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	signIn := func(t *testing.T, client *http.Client, base, pw, forged string) int {
		return send(t, client, base+"/v1/admin/session", fmt.Sprintf(`{"email":"ops@example.com","password":%q}`, pw), forged).StatusCode
	}

	t.Run("TrustedProxies", func(t *testing.T) {
		t.Parallel()
		base, tdb, stdout := start(t, "TRUSTED_PROXIES=127.0.0.1/32", "MAX_HOLDS_PER_CLIENT=2", "WRITE_RATE_LIMIT=12/1m")
		res := testkit.CreateResource(t, tdb, nil)
		hold := func(client *http.Client, hour int, email, forged string) int {
			body := fmt.Sprintf(`{"resource_id":%q,"starts_at":%q,"ends_at":%q,"customer":{"email":%q,"name":"C"}}`, res.ID,
				testkit.TomorrowAt(hour).Format(time.RFC3339), testkit.TomorrowAt(hour+1).Format(time.RFC3339), email)
			return send(t, client, base+"/v1/bookings", body, forged).StatusCode
		}

		// Sign-in throttling: five failures refuse the attacker's address
		// for that e-mail, forged headers or not; the operator, at
		// another address, signs in.
		for i := range 5 {
			require.Equal(t, http.StatusUnauthorized, signIn(t, attacker, base, "wrong password 1", fmt.Sprintf("198.51.100.%d", i)))
		}
		require.Equal(t, http.StatusTooManyRequests, signIn(t, attacker, base, password, "198.51.100.99"))
		require.Equal(t, http.StatusOK, signIn(t, operator, base, password, ""))
		require.Equal(t, 5, tdb.Count(t, "SELECT count(*) FROM login_attempts WHERE ip = '127.0.0.2' AND NOT success"))

		// Hold caps: two open holds per client.
		require.Equal(t, http.StatusCreated, hold(attacker, 9, "a1@example.com", "198.51.100.1"))
		require.Equal(t, http.StatusCreated, hold(attacker, 10, "a2@example.com", "198.51.100.2"))
		require.Equal(t, http.StatusTooManyRequests, hold(attacker, 11, "a3@example.com", "198.51.100.3"))
		require.Equal(t, http.StatusCreated, hold(operator, 11, "c1@example.com", ""))
		require.Equal(t, 2, tdb.Count(t, "SELECT count(*) FROM bookings WHERE client_addr = '127.0.0.2'"),
			"the refused hold rolled back; two holds and no more")

		// The write limit: twelve a minute per client. The attacker has
		// sent nine writes; three more, then refused.
		for range 3 {
			require.Equal(t, http.StatusBadRequest, send(t, attacker, base+"/v1/bookings", `{}`, "").StatusCode)
		}
		limited := send(t, attacker, base+"/v1/bookings", `{}`, "")
		require.Equal(t, http.StatusTooManyRequests, limited.StatusCode)
		require.NotEmpty(t, limited.Header.Get("Retry-After"))
		require.Equal(t, http.StatusBadRequest, send(t, operator, base+"/v1/bookings", `{}`, "").StatusCode,
			"the operator's own count")
		require.NotContains(t, stdout.String(), "TRUSTED_PROXIES is empty")
	})

	t.Run("NoTrustedProxies", func(t *testing.T) {
		t.Parallel()
		base, _, stdout := start(t)
		for range 5 {
			require.Equal(t, http.StatusUnauthorized, signIn(t, attacker, base, "wrong password 1", ""))
		}
		require.Equal(t, http.StatusTooManyRequests, signIn(t, operator, base, password, ""),
			"every client is the proxy: the attacker locked the operator out")
		require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "TRUSTED_PROXIES is empty") }, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, 1, strings.Count(stdout.String(), "TRUSTED_PROXIES is empty"), "said once")
	})
}
