//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

const webhookSecret = "whsec_faults"

var binary string

// TestMain builds the real binary once: these tests run it as an operator
// would and read its exit code and output.
func TestMain(m *testing.M) { testkit.MainWithBinary(m, &binary) }

// instance is one `slotpay serve` process on a fixed address, so that a
// restarted one is reached at the same URL.
type instance struct {
	t      *testing.T
	addr   string
	env    []string
	cmd    *exec.Cmd
	stdout *testkit.Output
}

func newInstance(t *testing.T, databaseURL string) *instance {
	t.Helper()
	return newInstanceWithStripe(t, databaseURL, testkit.StripeMock(t))
}

// newInstanceWithStripe is newInstance talking to the Stripe API at
// stripeURL (a testkit.StripeFake, for tests that need Stripe's state).
func newInstanceWithStripe(t *testing.T, databaseURL, stripeURL string) *instance {
	t.Helper()
	addr := freeAddr(t)
	in := &instance{t: t, addr: addr, env: []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + databaseURL,
		"STRIPE_API_BASE=" + stripeURL,
		"STRIPE_WEBHOOK_SECRET=" + webhookSecret,
		"LISTEN_ADDR=" + addr,
		"PUBLIC_BASE_URL=http://" + addr,
		// Every test customer comes from 127.0.0.1: these tests race
		// holds across instances, not against the per-client hold cap.
		"MAX_HOLDS_PER_CLIENT=1000",
	}}
	in.start()
	t.Cleanup(func() {
		if in.cmd != nil {
			_ = in.cmd.Process.Kill()
			_ = in.cmd.Wait()
		}
	})
	return in
}

func (in *instance) url() string { return "http://" + in.addr }

func (in *instance) start() {
	t := in.t
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = in.env
	in.stdout = &testkit.Output{}
	cmd.Stdout, cmd.Stderr = in.stdout, in.stdout
	require.NoError(t, cmd.Start())
	in.cmd = cmd
	require.Eventually(t, func() bool {
		resp, err := http.Get(in.url() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, testkit.WaitTimeout, 20*time.Millisecond, "serve did not become ready:\n%s", in.stdout)
}

// kill ends the process with SIGKILL: no shutdown, no deferred cleanup,
// transactions cut wherever they are.
func (in *instance) kill() {
	require.NoError(in.t, in.cmd.Process.Signal(syscall.SIGKILL))
	_ = in.cmd.Wait()
	in.cmd = nil
}

// pendingBookings creates n pending_payment bookings of one resource, each
// with its Checkout Session linked, and returns their completion events.
func pendingBookings(t *testing.T, tdb testkit.TestDB, n int) [][]byte {
	t.Helper()
	res := testkit.CreateResource(t, tdb, nil)
	prefix := testkit.RandomID("cs_test_") + "_"
	base := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	events := make([][]byte, 0, n)
	for i := range n {
		b := testkit.CreateBooking(t, tdb, testkit.BookingOpts{
			Resource:          &res,
			StartsAt:          base.Add(time.Duration(i) * time.Hour),
			EndsAt:            base.Add(time.Duration(i+1) * time.Hour),
			HoldExpiresAt:     time.Now().Add(24 * time.Hour),
			CheckoutSessionID: prefix + strconv.Itoa(i),
		})
		events = append(events, testkit.CheckoutSessionCompleted(*b.CheckoutSessionID, b.ID.String(), b.AmountTotal, b.Currency).JSON(t))
	}
	return events
}

// delivery is what Stripe saw of one event.
type delivery struct {
	acked    atomic.Bool  // a 2xx was received: Stripe stops retrying
	attempts atomic.Int32 // tries, the successful one included
}

// stream delivers events as Stripe does: signed at each attempt, retried
// with backoff after a non-2xx answer or a connection error, never again
// after a 2xx. workers deliveries are in flight at once, each worker pausing
// pace between events so that the stream outlasts a fault injected in it.
type stream struct {
	events     [][]byte
	deliveries []delivery
	acked      atomic.Int64
	failures   atomic.Int64 // non-2xx answers and connection errors
	client     *http.Client
}

func newStream(events [][]byte) *stream {
	return &stream{
		events:     events,
		deliveries: make([]delivery, len(events)),
		client:     &http.Client{Timeout: 10 * time.Second},
	}
}

func (s *stream) run(ctx context.Context, url func() string, workers int, pace time.Duration) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(s.events) {
					return
				}
				s.deliver(ctx, url, i)
				time.Sleep(pace)
			}
		})
	}
	wg.Wait()
}

func (s *stream) deliver(ctx context.Context, url func() string, i int) {
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		s.deliveries[i].attempts.Add(1)
		status, _, err := post(ctx, s.client, url()+"/v1/webhooks/stripe", s.events[i])
		if err == nil && status/100 == 2 {
			s.deliveries[i].acked.Store(true)
			s.acked.Add(1)
			return
		}
		s.failures.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// post sends one signed delivery of event and returns the status and body.
func post(ctx context.Context, client *http.Client, url string, event []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(event))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", testkit.SignatureHeader(event, webhookSecret, time.Now()))
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// waitAcked blocks until at least n events are acknowledged.
func (s *stream) waitAcked(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return s.acked.Load() >= int64(n) }, 60*time.Second, 5*time.Millisecond)
}

func eventIDs(t *testing.T, events [][]byte) []string {
	t.Helper()
	ids := make([]string, len(events))
	for i, ev := range events {
		var e struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(ev, &e))
		ids[i] = e.ID
	}
	return ids
}

// requireAppliedExactlyOnce is the invariant after the faults: each event
// has one ledger row, applied, and caused one transition, and each booking
// was confirmed once.
func requireAppliedExactlyOnce(t *testing.T, tdb testkit.TestDB, events [][]byte) {
	t.Helper()
	ids := eventIDs(t, events)
	n := len(ids)
	require.Equal(t, n, tdb.Count(t, "SELECT count(*) FROM payment_events"), "one ledger row per event, nothing else")
	require.Equal(t, n, tdb.Count(t, "SELECT count(DISTINCT stripe_event_id) FROM payment_events WHERE stripe_event_id = ANY($1) AND outcome = 'applied'", ids))
	require.Equal(t, n, tdb.Count(t, "SELECT count(*) FROM booking_status_changes WHERE stripe_event_id = ANY($1)", ids), "one transition per event")
	require.Equal(t, n, tdb.Count(t, "SELECT count(DISTINCT stripe_event_id) FROM booking_status_changes WHERE stripe_event_id = ANY($1) AND to_status = 'confirmed'", ids))
	require.Equal(t, n, tdb.Count(t, "SELECT count(*) FROM bookings WHERE status = 'confirmed'"))
	require.Equal(t, n, tdb.Count(t, "SELECT count(*) FROM booking_status_changes WHERE to_status = 'confirmed'"), "each booking confirmed once")
}

// requireAckedRecorded: every event answered 2xx is in the ledger. The
// stream never resends an acknowledged event, so a 2xx given for an event
// that was not durably recorded shows up here as a missing row.
func requireAckedRecorded(t *testing.T, tdb testkit.TestDB, s *stream) {
	t.Helper()
	ids := eventIDs(t, s.events)
	var acked []string
	for i := range s.deliveries {
		if s.deliveries[i].acked.Load() {
			acked = append(acked, ids[i])
		}
	}
	require.Equal(t, len(acked), tdb.Count(t, "SELECT count(*) FROM payment_events WHERE stripe_event_id = ANY($1)", acked))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}
