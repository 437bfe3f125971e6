package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/testkit"
)

var binary string

// TestMain builds the real binary once, for the tests where a real process
// is the point (signals, a terminal, serve beside a command); the others
// call run in this process.
func TestMain(m *testing.M) { testkit.MainWithBinary(m, &binary) }

type result struct {
	code   int
	stdout string
	stderr string
}

// runCommand runs the program in this process as main would, with env as
// its whole environment, and returns its exit code and output.
func runCommand(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr strings.Builder
	err := run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	code := exitCode(err, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// runBinary runs the real binary, its stdin not a terminal.
func runBinary(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testkit.WaitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	good := map[string]string{
		"DATABASE_URL":          tdb.URL,
		"STRIPE_API_BASE":       "http://127.0.0.1:12111",
		"STRIPE_WEBHOOK_SECRET": "whsec_test",
		"LISTEN_ADDR":           "127.0.0.1:0",
	}
	cases := map[string]struct {
		change map[string]string
		want   string
	}{
		"MissingWebhookSecret": {map[string]string{"STRIPE_WEBHOOK_SECRET": ""}, "slotpay: STRIPE_WEBHOOK_SECRET: is required"},
		"MissingSecretKey":     {map[string]string{"STRIPE_API_BASE": ""}, "slotpay: STRIPE_SECRET_KEY: is required"},
		"NotASecretKey":        {map[string]string{"STRIPE_SECRET_KEY": "pk_test_123"}, "slotpay: STRIPE_SECRET_KEY: must be a Stripe secret"},
		"UnreachableDatabase":  {map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/slotpay?sslmode=disable"}, "slotpay: DATABASE_URL: cannot reach the database at postgres://postgres@127.0.0.1:1/slotpay"},
		"PasswordNotPrinted":   {map[string]string{"DATABASE_URL": "postgres://postgres:hunter2@127.0.0.1:1/slotpay?sslmode=disable"}, "slotpay: DATABASE_URL: cannot reach the database at postgres://postgres:xxxxx@127.0.0.1:1/slotpay"},
		"QueryPasswordNotPrinted": {map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/slotpay?sslmode=disable&password=hunter2"},
			"slotpay: DATABASE_URL: cannot reach the database at postgres://postgres@127.0.0.1:1/slotpay?password=xxxxx&sslmode=disable"},
		"UnreadableURLNotPrinted": {map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/slotpay?sslmode=sometimes&sslpassword=hunter2"},
			"slotpay: DATABASE_URL: cannot read the connection string postgres://postgres@127.0.0.1:1/slotpay?sslmode=sometimes&sslpassword=xxxxx"},
		"BadDuration":          {map[string]string{"WEBHOOK_TOLERANCE": "five minutes"}, "slotpay: WEBHOOK_TOLERANCE: not a duration"},
		"CheckoutTTLTooShort":  {map[string]string{"CHECKOUT_TTL": "10m"}, "slotpay: CHECKOUT_TTL: must be between 30m0s and 24h0m0s"},
		"BadPublicURL":         {map[string]string{"PUBLIC_BASE_URL": "localhost"}, "slotpay: PUBLIC_BASE_URL: must be an absolute http(s) URL"},
		"BadCookieSecure":      {map[string]string{"COOKIE_SECURE": "maybe"}, "slotpay: COOKIE_SECURE: must be true or false"},
		"BadLogLevel":          {map[string]string{"LOG_LEVEL": "loud"}, "slotpay: LOG_LEVEL: must be debug, info, warn or error"},
		"BadWriteRateLimit":    {map[string]string{"WRITE_RATE_LIMIT": "sixty a minute"}, "slotpay: WRITE_RATE_LIMIT: must be REQUESTS/WINDOW"},
		"BadMaxHoldsPerClient": {map[string]string{"MAX_HOLDS_PER_CLIENT": "0"}, "slotpay: MAX_HOLDS_PER_CLIENT: must be a whole number"},
		"BadMaxHoldsPerEmail":  {map[string]string{"MAX_HOLDS_PER_EMAIL": "three"}, "slotpay: MAX_HOLDS_PER_EMAIL: must be a whole number"},
		"BadMetricsAddr":       {map[string]string{"METRICS_ADDR": "9090"}, "slotpay: METRICS_ADDR: must be host:port"},
		"PprofWithoutMetrics":  {map[string]string{"METRICS_PPROF": "true"}, "slotpay: METRICS_PPROF: needs METRICS_ADDR"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			for k, v := range good {
				env[k] = v
			}
			for k, v := range c.change {
				env[k] = v
			}
			r := runCommand(t, env, "serve")
			require.Equal(t, 1, r.code)
			require.True(t, strings.HasPrefix(r.stderr, c.want), "stderr: %q", r.stderr)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			require.NotContains(t, r.stderr, "hunter2")
		})
	}
}

func TestMigrateAndSeedDemo(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": tdb.URL}

	r := runCommand(t, env, "migrate", "status")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "00001_schema.sql")
	require.Contains(t, r.stdout, "applied")

	for range 2 {
		r = runCommand(t, env, "seed-demo")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "resource studio-a 0193a5e0-7b1a-7c3e-9f00-00000000a001")
	}
	require.Equal(t, 2, tdb.Count(t, "SELECT count(*) FROM resources WHERE slug IN ('studio-a', 'meeting-room')"))

	r = runCommand(t, env, "migrate", "down")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "rolled back")
	r = runCommand(t, env, "migrate", "status")
	require.Contains(t, r.stdout, "pending")
	r = runCommand(t, env, "migrate", "up")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "applied ")
	r = runCommand(t, env, "migrate", "status")
	require.NotContains(t, r.stdout, "pending")

	r = runCommand(t, env, "migrate", "sideways")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "usage")
}

// TestMigrateUpAppliesRiversMigrations: River's job tables are part of the
// schema `migrate up` manages, and `migrate status` lists them.
func TestMigrateUpAppliesRiversMigrations(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	m, err := database.RiverMigrator(tdb.Pool)
	require.NoError(t, err)
	_, err = m.Migrate(t.Context(), rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
	require.NoError(t, err)
	env := map[string]string{"DATABASE_URL": tdb.URL}

	r := runCommand(t, env, "migrate", "status")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "river 001  pending")
	require.Error(t, database.CheckSchema(t.Context(), tdb.Pool), "not ready without River's tables")

	r = runCommand(t, env, "migrate", "up")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "applied river 001")
	r = runCommand(t, env, "migrate", "status")
	require.Contains(t, r.stdout, "river 001  applied")
	require.NotContains(t, r.stdout, "pending")
	require.NoError(t, database.CheckSchema(t.Context(), tdb.Pool))
}

// serveEnv is the environment of a serve instance on a free port over tdb.
func serveEnv(t *testing.T, tdb testkit.TestDB) (addr string, env []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr = ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr, []string{
		"DATABASE_URL=" + tdb.URL,
		"STRIPE_API_BASE=" + testkit.StripeMock(t),
		"STRIPE_WEBHOOK_SECRET=whsec_test",
		"LISTEN_ADDR=" + addr,
		"PUBLIC_BASE_URL=http://" + addr,
	}
}

// deliverStripeEvent posts body to the webhook of the server at base, signed
// as Stripe signs it with serveEnv's secret, and returns the answer's status.
func deliverStripeEvent(t *testing.T, base string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/webhooks/stripe", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", testkit.SignatureHeader(body, "whsec_test", time.Now()))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	testkit.WaitFor(t, "serve to be ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// startServe runs the real binary's `slotpay serve` over tdb and waits until
// it is ready, for tests that signal the process or read its memory. It
// returns the base URL, the process, its output and its environment; extra
// KEY=VALUE pairs are added to the environment (the last of a key wins).
func startServe(t *testing.T, tdb testkit.TestDB, extra ...string) (string, *exec.Cmd, *testkit.Output, []string) {
	t.Helper()
	addr, env := serveEnv(t, tdb)
	env = append(env, extra...)
	cmd := exec.Command(binary, "serve")
	cmd.Env = env
	stdout := &testkit.Output{}
	cmd.Stdout = stdout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitReady(t, addr)
	return "http://" + addr, cmd, stdout, env
}

// serveInProcess runs `slotpay serve` in this process through run over tdb
// until the test ends, when it must stop cleanly; it waits until the
// instance is ready and returns its base URL and environment.
func serveInProcess(t *testing.T, tdb testkit.TestDB, extra ...string) (string, []string) {
	t.Helper()
	addr, env := serveEnv(t, tdb)
	env = append(env, extra...)
	getenv := func(k string) string { return envOf(env)[k] }
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	out := &testkit.Output{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, out, out) }()
	t.Cleanup(func() {
		stop() // what SIGTERM does to main's context
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v\n%s", err, out)
			}
		case <-time.After(shutdownGrace + testkit.WaitTimeout):
			t.Errorf("serve did not stop:\n%s", out)
		}
	})
	waitReady(t, addr)
	return "http://" + addr, env
}

// envOf turns startServe's environment, with extra KEY=VALUE pairs on top,
// into runBinary's map: a command run beside serve sees the same settings.
func envOf(env []string, extra ...string) map[string]string {
	m := map[string]string{}
	for _, kv := range append(env, extra...) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// TestServeStopsCleanlyOnSIGTERM: the service answers, then on SIGTERM stops
// accepting, finishes, closes the pool and exits 0 within the grace period.
func TestServeStopsCleanlyOnSIGTERM(t *testing.T) {
	t.Parallel()
	_, cmd, stdout, _ := startServe(t, testkit.NewDatabase(t))

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, stdout.String())
	case <-time.After(shutdownGrace + testkit.WaitTimeout):
		t.Fatal("serve did not stop after SIGTERM")
	}
	require.Contains(t, stdout.String(), `"msg":"stopped"`)
	require.NotContains(t, stdout.String(), "whsec_test", "no secret in the logs")
}

// TestDevPay: `slotpay dev pay` delivers the signed event Stripe would send
// for a paid session, and the booking is confirmed through the real webhook.
func TestDevPay(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	res := testkit.CreateResource(t, tdb, nil)
	base, env := serveInProcess(t, tdb)

	post := func(path, body string) map[string]any {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.Less(t, resp.StatusCode, 300, out)
		return out
	}
	booking := post("/v1/bookings", fmt.Sprintf(`{"resource_id":%q,"starts_at":%q,"ends_at":%q,"customer":{"email":"ada@example.com","name":"Ada"}}`,
		res.ID, testkit.TomorrowAt(10).Format(time.RFC3339), testkit.TomorrowAt(11).Format(time.RFC3339)))
	id := booking["id"].(string)

	envMap := func(extra ...string) map[string]string { return envOf(env, extra...) }
	r := runCommand(t, envMap(), "dev", "pay", id)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "no checkout session yet")

	post("/v1/bookings/"+id+"/checkout", "")
	r = runCommand(t, envMap("STRIPE_SECRET_KEY=sk_live_123"), "dev", "pay", id)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "refuses to run with a live Stripe key")

	r = runCommand(t, envMap(), "dev", "pay", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "200 OK")
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND status = 'confirmed'", id))
}

// TestReconcileCommand: `slotpay reconcile` runs one pass through River (its
// own client works the job when no serve instance is up) and prints what the
// pass did.
func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	res := testkit.CreateResource(t, tdb, nil)
	testkit.CreateBooking(t, tdb, testkit.BookingOpts{Resource: &res, HoldExpiresAt: time.Now().Add(-time.Second)})
	env := map[string]string{
		"DATABASE_URL":          tdb.URL,
		"STRIPE_API_BASE":       testkit.StripeMock(t),
		"STRIPE_WEBHOOK_SECRET": "whsec_test",
	}
	r := runCommand(t, env, "reconcile")
	require.Equal(t, 0, r.code, r.stderr)
	var s struct {
		Skipped      bool `json:"skipped"`
		HoldsExpired int  `json:"holds_expired"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), r.stdout)
	require.Equal(t, 1, s.HoldsExpired)
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND state = 'completed'"))
}
