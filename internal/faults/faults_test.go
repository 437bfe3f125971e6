//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

// Stream shape: long enough (~4 s) that a fault lands in the middle of it,
// with deliveries in flight when it does.
const (
	streamEvents  = 240
	streamWorkers = 6
	streamPace    = 80 * time.Millisecond
)

// TestPostgresRestartMidStream: PostgreSQL restarts while Stripe delivers.
// Deliveries cut by the restart fail with a 5xx (or the connection drops)
// and leave no trace; every 2xx was recorded; after Stripe's retries every
// event is applied exactly once.
func TestPostgresRestartMidStream(t *testing.T) {
	t.Parallel()
	pg := newCluster(t)
	tdb := pg.database("slotpay")
	events := pendingBookings(t, tdb, streamEvents)
	srv := newInstance(t, tdb.URL)

	s := newStream(events)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { s.run(ctx, srv.url, streamWorkers, streamPace); close(done) }()

	s.waitAcked(t, streamEvents/3)
	pg.restart()
	ackedAtRestart := s.acked.Load()
	<-done

	t.Logf("restart after %d of %d events acknowledged; %d deliveries failed and were retried", ackedAtRestart, streamEvents, s.failures.Load())
	require.Less(t, ackedAtRestart, int64(streamEvents), "the restart landed mid-stream")
	require.Positive(t, s.failures.Load(), "some deliveries failed during the restart and were retried:\n%s", srv.stdout)
	require.Equal(t, int64(streamEvents), s.acked.Load(), "every event was acknowledged in the end")
	requireAckedRecorded(t, tdb, s)
	requireAppliedExactlyOnce(t, tdb, events)
	requireRedeliveriesAreDuplicates(t, srv.url(), events)
	requireAppliedExactlyOnce(t, tdb, events)
}

// TestServerKilledMidStream: the server dies by SIGKILL while Stripe
// delivers, with transactions open, and a new process takes its place on
// the same address.
func TestServerKilledMidStream(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	events := pendingBookings(t, tdb, streamEvents)
	srv := newInstance(t, tdb.URL)

	s := newStream(events)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { s.run(ctx, srv.url, streamWorkers, streamPace); close(done) }()

	s.waitAcked(t, streamEvents/3)
	srv.kill()
	ackedAtKill := s.acked.Load()
	time.Sleep(300 * time.Millisecond) // Stripe meets a closed port meanwhile
	srv.start()
	<-done

	t.Logf("SIGKILL after %d of %d events acknowledged; %d deliveries failed and were retried", ackedAtKill, streamEvents, s.failures.Load())
	require.Less(t, ackedAtKill, int64(streamEvents), "the kill landed mid-stream")
	require.Positive(t, s.failures.Load(), "some deliveries failed while the server was down")
	require.Equal(t, int64(streamEvents), s.acked.Load(), "every event was acknowledged in the end")
	requireAckedRecorded(t, tdb, s)
	requireAppliedExactlyOnce(t, tdb, events)
	requireRedeliveriesAreDuplicates(t, srv.url(), events)
}

// TestThreeInstancesOneDatabase: three serve processes on one database get
// every event at once (Stripe retrying while a first delivery is still in
// flight looks like this) and every slot request at once: one ledger row
// and one transition per event, and one winner per slot.
func TestThreeInstancesOneDatabase(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	const nEvents, nSlots = 60, 30
	events := pendingBookings(t, tdb, nEvents)
	res := testkit.CreateResource(t, tdb, nil)
	instances := []*instance{newInstance(t, tdb.URL), newInstance(t, tdb.URL), newInstance(t, tdb.URL)}
	client := &http.Client{Timeout: 30 * time.Second}

	type answer struct {
		status    int
		duplicate bool
	}
	eventAnswers := make([][]answer, nEvents)
	slotAnswers := make([][]int, nSlots)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, ev := range events {
		eventAnswers[i] = make([]answer, len(instances))
		for j, in := range instances {
			wg.Go(func() {
				<-start
				status, body, err := post(t.Context(), client, in.url()+"/v1/webhooks/stripe", ev)
				if !assertNoError(t, err) {
					return
				}
				var receipt struct {
					Duplicate bool `json:"duplicate"`
				}
				_ = json.Unmarshal(body, &receipt)
				eventAnswers[i][j] = answer{status, receipt.Duplicate}
			})
		}
	}
	for i := range nSlots {
		slotAnswers[i] = make([]int, len(instances))
		// Tomorrow has 12 one-hour slots; the day after has 12 more…
		day := testkit.TomorrowAt(9).AddDate(0, 0, i/12)
		starts := day.Add(time.Duration(i%12) * time.Hour)
		body := fmt.Sprintf(`{"resource_id":%q,"starts_at":%q,"ends_at":%q,"customer":{"email":"c%d@example.com","name":"C"}}`,
			res.ID, starts.Format(time.RFC3339), starts.Add(time.Hour).Format(time.RFC3339), i)
		for j, in := range instances {
			wg.Go(func() {
				<-start
				resp, err := client.Post(in.url()+"/v1/bookings", "application/json", strings.NewReader(body))
				if !assertNoError(t, err) {
					return
				}
				resp.Body.Close()
				slotAnswers[i][j] = resp.StatusCode
			})
		}
	}
	close(start)
	wg.Wait()

	for i, answers := range eventAnswers {
		firsts := 0
		for _, a := range answers {
			require.Equal(t, http.StatusOK, a.status, "event %d", i)
			if !a.duplicate {
				firsts++
			}
		}
		require.Equal(t, 1, firsts, "event %d: exactly one delivery applied it, the others were duplicates", i)
	}
	requireAppliedExactlyOnce(t, tdb, events)

	for i, answers := range slotAnswers {
		wins, conflicts := 0, 0
		for _, status := range answers {
			switch status {
			case http.StatusCreated:
				wins++
			case http.StatusConflict:
				conflicts++
			}
		}
		require.Equal(t, 1, wins, "slot %d: one winner, answers %v", i, answers)
		require.Equal(t, len(instances)-1, conflicts, "slot %d: the others refused with 409, answers %v", i, answers)
	}
	require.Equal(t, nSlots, tdb.Count(t, "SELECT count(*) FROM bookings WHERE resource_id = $1", res.ID))
}

// requireRedeliveriesAreDuplicates: Stripe may deliver an acknowledged event
// again; every such delivery changes nothing.
func requireRedeliveriesAreDuplicates(t *testing.T, url string, events [][]byte) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	for _, ev := range events[:20] {
		status, body, err := post(t.Context(), client, url+"/v1/webhooks/stripe", ev)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"received":true,"duplicate":true}`, string(body))
	}
}

func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("request: %v", err)
		return false
	}
	return true
}
