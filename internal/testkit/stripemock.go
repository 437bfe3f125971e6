package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// stripeMock is the one stripe-mock process of this test binary. It is
// stateless, so tests can share it freely.
var stripeMock struct {
	once sync.Once
	url  string
	err  error
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// StripeMock returns the base URL of a stripe-mock server shared by every test
// of the binary, starting it on first use. Main stops it.
func StripeMock(t testing.TB) string {
	t.Helper()
	stripeMock.once.Do(func() {
		stripeMock.url, stripeMock.err = startStripeMock()
	})
	if stripeMock.err != nil {
		t.Fatalf("testkit: stripe-mock: %v", stripeMock.err)
	}
	return stripeMock.url
}

func startStripeMock() (string, error) {
	// go tool runs the version pinned by go.mod's tool directive, and -n
	// only prints the path of the cached binary, so repeat runs cost no build.
	out, err := exec.Command("go", "tool", "-n", "stripe-mock").Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n stripe-mock: %w%s", err, exitStderr(err))
	}
	bin := strings.TrimSpace(string(out))

	httpAddr, err := freeAddr()
	if err != nil {
		return "", err
	}
	httpsAddr, err := freeAddr()
	if err != nil {
		return "", err
	}
	// Both addresses are required: given only one, stripe-mock still binds
	// its default port 12112 on every interface for the other, and parallel
	// test binaries collide there. -strict-version-check stays off because
	// its spec is newer than the API version stripe-go v76 sends.
	output := &headBuffer{limit: 64 << 10}
	cmd, err := startRetryingBusy(func() *exec.Cmd {
		cmd := exec.Command(bin, "-http-addr", httpAddr, "-https-addr", httpsAddr)
		cmd.Stdout, cmd.Stderr = output, output
		cmd.SysProcAttr = dieWithParent()
		return cmd
	})
	if err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() //nolint:errcheck // the exit is reported through done
	stripeMock.cmd, stripeMock.done = cmd, done

	url := "http://" + httpAddr
	if err := waitForStripeMock(url, done); err != nil {
		stopStripeMock()
		return "", fmt.Errorf("%w; its output:\n%s", err, output)
	}
	return url, nil
}

// startRetryingBusy starts the command newCmd makes, making it again while
// exec answers ETXTBSY: a parallel `go tool -n` (another test binary, or
// another checkout sharing the build cache) can hold the cached binary open
// for writing for a moment after its path was printed.
func startRetryingBusy(newCmd func() *exec.Cmd) (*exec.Cmd, error) {
	deadline := time.Now().Add(WaitTimeout)
	for {
		cmd := newCmd()
		err := cmd.Start()
		if !errors.Is(err, syscall.ETXTBSY) || time.Now().After(deadline) {
			return cmd, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForStripeMock polls until stripe-mock answers an API request; it takes
// a moment to load its OpenAPI spec.
func waitForStripeMock(url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/charges", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer sk_test_123")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("stripe-mock exited before answering")
		case <-ctx.Done():
			return fmt.Errorf("stripe-mock did not answer at %s: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func stopStripeMock() {
	if stripeMock.cmd == nil {
		return
	}
	stripeMock.cmd.Process.Kill() //nolint:errcheck // it may have exited already
	<-stripeMock.done
	stripeMock.cmd = nil
}

// freeAddr asks the kernel for a free loopback port. Another process could
// take it before stripe-mock binds it, but the window is tiny.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// headBuffer keeps the first limit bytes written to it: enough to explain a
// failed start, without growing with every request stripe-mock logs.
type headBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StripeClient returns a stripe-go client that talks to the stripe-mock at
// baseURL (as returned by StripeMock) and never retries, so a test sees each
// failure at once.
func StripeClient(t testing.TB, baseURL string) *client.API {
	t.Helper()
	// The base URL is the host only: stripe-go's paths start with /v1 (it
	// trims a trailing /v1 from the configured URL anyway).
	b := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(baseURL),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	sc := &client.API{}
	sc.Init("sk_test_123", &stripe.Backends{API: b, Connect: b, Uploads: b})
	return sc
}
