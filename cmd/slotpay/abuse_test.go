package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

// maxSignInFloodRSS is the memory the server may reach under a flood of
// sign-ins (SPEC §3: password hashing is bounded, memory stays bounded).
// Idle, the process holds about 30 MB; each argon2id verification needs
// 19 MiB while it runs, and with GOMAXPROCS=2 four run at a time.
const maxSignInFloodRSS = 192 << 20

// TestSignInFloodKeepsMemoryBounded is the attack of issue 11: many
// concurrent wrong-password sign-ins for an operator's e-mail, each from an
// address of its own, against the real binary. Every one of them used to
// run argon2id at once (64 took the process to 1.25 GB); now at most
// 2 × GOMAXPROCS hash at a time and the peak resident set stays bounded.
func TestSignInFloodKeepsMemoryBounded(t *testing.T) {
	for _, n := range []int{64, 256} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			tdb := testkit.NewDatabase(t)
			// Four hashing slots (2 × GOMAXPROCS) whatever the machine:
			// the bound is per slot, and 192 MB is four slots' worth
			// with room for the rest of the process.
			base, cmd, stdout, env := startServe(t, tdb, "GOMAXPROCS=2")
			r := runBinary(t, envOf(env, "SLOTPAY_ADMIN_PASSWORD=correct horse Battery 9"),
				"admin", "create-user", "--email", "ops@example.com", "--role", "ops")
			require.Equal(t, 0, r.code, r.stderr)

			statuses := signInFlood(t, base, n, "ops@example.com", "wrong password 123")
			peak := peakRSS(t, cmd.Process.Pid)
			t.Logf("%d concurrent wrong sign-ins: answers %v, peak RSS %d MiB", n, statuses, peak>>20)
			for status := range statuses {
				require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, status, stdout.String())
			}
			require.Less(t, peak, int64(maxSignInFloodRSS), "peak RSS %d MiB", peak>>20)
		})
	}
}

// signInFlood sends n sign-ins at once, the i-th from loopback address
// 127.0.x.y of its own, and counts the answers by status.
func signInFlood(t *testing.T, base string, n int, email, password string) map[int]int {
	t.Helper()
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)
	start := make(chan struct{})
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		wg       sync.WaitGroup
	)
	for i := range n {
		client := clientFrom(t, loopbackAddr(i))
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/admin/session", strings.NewReader(body))
			if !assertNoError(t, err) {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if !assertNoError(t, err) {
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// loopbackAddr is the i-th address of 127.0.0.0/8 after 127.0.0.1: Linux
// routes the whole range to the loopback interface, so each is a client
// address of its own.
func loopbackAddr(i int) string {
	n := i + 2
	return fmt.Sprintf("127.0.%d.%d", n>>8&255, n&255)
}

// clientFrom is an HTTP client whose connections come from the local
// address addr.
func clientFrom(t *testing.T, addr string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 10 * time.Second}
	transport := &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}
}

// peakRSS is a process's high-water resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	require.NoError(t, sc.Err())
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestMetricsAddrKeepsMetricsOffThePublicListener: with METRICS_ADDR set,
// /metrics (confirmed bookings, that is revenue; sign-in failures) is served
// there and only there.
func TestMetricsAddrKeepsMetricsOffThePublicListener(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	base, _, _, _ := startServe(t, testkit.NewDatabase(t), "METRICS_ADDR="+metricsAddr)

	status, body := getStatus(t, base+"/metrics")
	require.Equal(t, http.StatusNotFound, status, "not on LISTEN_ADDR")
	require.Contains(t, body, `"code":"not_found"`)
	status, body = getStatus(t, "http://"+metricsAddr+"/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "slotpay_")
	status, _ = getStatus(t, "http://"+metricsAddr+"/v1/resources")
	require.Equal(t, http.StatusNotFound, status, "nothing but /metrics on METRICS_ADDR")

	base, _, _, _ = startServe(t, testkit.NewDatabase(t))
	status, _ = getStatus(t, base+"/metrics")
	require.Equal(t, http.StatusOK, status, "without METRICS_ADDR, on LISTEN_ADDR")
}

// TestPprofOnlyOnTheMetricsListenerAndOnlyWhenAsked: Go's profiler (which
// shows the process's command line and memory) is served on METRICS_ADDR
// with METRICS_PPROF=true, never on the public listener, and not at all by
// default.
func TestPprofOnlyOnTheMetricsListenerAndOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	base, _, _, _ := startServe(t, testkit.NewDatabase(t), "METRICS_ADDR="+metricsAddr, "METRICS_PPROF=true")
	status, _ := getStatus(t, "http://"+metricsAddr+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusOK, status, "on METRICS_ADDR when asked")
	status, _ = getStatus(t, base+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusNotFound, status, "never on LISTEN_ADDR")

	otherAddr := freeAddr(t)
	startServe(t, testkit.NewDatabase(t), "METRICS_ADDR="+otherAddr)
	status, _ = getStatus(t, "http://"+otherAddr+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusNotFound, status, "not by default")
}

// TestServingLogRedactsTheDatabaseURL: pgx honours a password in the query
// string; the "serving" line must not print it.
func TestServingLogRedactsTheDatabaseURL(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	withSecrets := tdb.URL + "&password=hunter2&sslpassword=hunter2"
	require.Contains(t, withSecrets, "?", "the test database URL has a query string")
	_, _, stdout, _ := startServe(t, tdb, "DATABASE_URL="+withSecrets)
	logs := stdout.String()
	require.Contains(t, logs, `"msg":"serving"`)
	require.Contains(t, logs, "password=xxxxx")
	require.NotContains(t, logs, "hunter2")
}

// TestWriteRateLimitFromTheEnvironment: WRITE_RATE_LIMIT sets the limit of
// state-changing requests per client; off lifts it.
func TestWriteRateLimitFromTheEnvironment(t *testing.T) {
	t.Parallel()
	post := func(base string) *http.Response {
		resp, err := http.Post(base+"/v1/bookings", "application/json", strings.NewReader(`{}`))
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	base, _, _, _ := startServe(t, testkit.NewDatabase(t), "WRITE_RATE_LIMIT=2/1m")
	for range 2 {
		resp := post(base)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "2", resp.Header.Get("X-RateLimit-Limit"))
	}
	resp := post(base)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
	require.Equal(t, "60", resp.Header.Get("Retry-After"))
	require.NotEmpty(t, resp.Header.Get("X-RateLimit-Reset"))

	base, _, _, _ = startServe(t, testkit.NewDatabase(t), "WRITE_RATE_LIMIT=off")
	for range 70 {
		resp := post(base)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "no limit")
		require.Empty(t, resp.Header.Get("X-RateLimit-Limit"))
	}
}
