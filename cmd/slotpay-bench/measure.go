package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/internal/testkit"
)

type dataset struct {
	name    string
	history bool
}

// load is the outcome of one phase of requests.
type load struct {
	n        int
	elapsed  time.Duration
	lat      []time.Duration // sorted
	statuses map[int]int
	errors   int
	// cpu is what each part of the machine spent during the phase.
	cpu cpuTimes
	// By request, when any asked to keep its answer.
	reqs   []request
	codes  []int
	bodies [][]byte
}

func (l load) perSecond() float64 { return float64(l.n) / l.elapsed.Seconds() }

func (l load) pct(p float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	return l.lat[min(len(l.lat)-1, int(float64(len(l.lat))*p))]
}

type result struct {
	dataset    dataset
	unique     map[int]load // by concurrency
	duplicates load
	// pgbench on the minimal transaction (the limit) and on slotpay's
	// own statements.
	minimal, same pgbenchRun
	distinct      load
	checkout      load
	contended     load
	avail         load
	peakRSS       int64
	// notifyDrain is how long River took, after the c=32 phase, to do the
	// notifyJobs jobs still waiting then (its notifications).
	notifyDrain time.Duration
	notifyJobs  int
	// notes are answers other than the expected ones: reported, not hidden.
	notes []string
}

// concurrencies of the unique-event phases; the last is the one compared
// with pgbench.
var concurrencies = []int{1, 8, 32}

const topConcurrency = 32

func (e *environment) measure(ctx context.Context, ds dataset) (*result, error) {
	label := "empty"
	if ds.history {
		label = "history"
	}
	fmt.Fprintf(e.log, "bench: %s: preparing the database\n", ds.name)
	pool, dbURL, err := e.createDatabase(ctx, label)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := seedResources(ctx, pool); err != nil {
		return nil, err
	}
	if ds.history {
		start := time.Now()
		if err := loadHistory(ctx, pool); err != nil {
			return nil, err
		}
		fmt.Fprintf(e.log, "bench: %s: history loaded in %s\n", ds.name, time.Since(start).Round(time.Second))
	}
	n := e.o.events
	pgbenchTx := (n + topConcurrency - 1) / topConcurrency
	if err := seedPendingBookings(ctx, pool, eventsResource, "cs_bench_", 1, n*len(concurrencies)); err != nil {
		return nil, err
	}
	if err := seedPendingBookings(ctx, pool, pgbenchResource, "cs_pgbench_", 1, pgbenchTx*topConcurrency); err != nil {
		return nil, err
	}
	if err := seedPendingBookings(ctx, pool, minimalResource, "cs_minimal_", 1, pgbenchTx*topConcurrency); err != nil {
		return nil, err
	}
	availDay := time.Now().UTC().AddDate(0, 0, 3).Truncate(24 * time.Hour)
	if err := seedAvailabilityDay(ctx, pool, availDay); err != nil {
		return nil, err
	}
	// Statistics for what the bench seeded. The ledger, the history and
	// River's jobs of the empty dataset stay as a new deployment's are,
	// never analysed: statistics that say "empty" (an ANALYZE of the empty
	// tables) make PostgreSQL plan a sequential scan for lookups in them,
	// among them the foreign-key check of every status change against
	// payment_events, and a connection keeps a cached plan until the
	// statistics change. With autovacuum on (PostgreSQL's default), its
	// ANALYZE replaces them as the tables grow; this machine runs with
	// autovacuum off, so they would stay, and the empty run would measure
	// a scan of the whole ledger per event (seqScans below reports one).
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE resources, bookings"); err != nil {
		return nil, err
	}
	// The phases start from a checkpoint: none of them pays for writing out
	// what the seeding (hundreds of megabytes, with the history) left in
	// the buffers.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, err
	}

	srv, err := e.startServer(ctx, dbURL, ds)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	r := &result{dataset: ds, unique: map[int]load{}}

	var top [][]byte
	for i, c := range concurrencies {
		events, err := completions(ctx, pool, "cs_bench_", 1+i*n, n)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(e.log, "bench: %s: %d unique events at concurrency %d\n", ds.name, len(events), c)
		if err := settle(ctx, pool); err != nil {
			return nil, err
		}
		var profiled chan error
		if c == topConcurrency && srv.pprof != "" {
			// As long as the phase is expected to last (at the c=8 rate):
			// a profile of the server at c=32 and nothing else.
			seconds := int(0.8 * float64(n) / r.unique[8].perSecond())
			profiled = make(chan error, 1)
			go func() { profiled <- e.cpuProfile(ctx, srv.pprof, max(1, min(seconds, 20))) }()
		}
		l := e.webhooks(ctx, srv, events, c)
		if profiled != nil {
			if err := <-profiled; err != nil {
				return nil, fmt.Errorf("cpu profile: %w", err)
			}
			fmt.Fprintf(e.log, "bench: %s: cpu profile of the server at c=%d in %s (go tool pprof -top %s)\n", ds.name, c, e.o.cpuProfile, e.o.cpuProfile)
		}
		if err := expect(l, map[int]int{http.StatusOK: n}); err != nil {
			return nil, fmt.Errorf("unique events at c=%d: %w", c, err)
		}
		r.unique[c] = l
		e.progress(ds, fmt.Sprintf("unique c=%d", c), l)
		if c == topConcurrency {
			// How long the notifications of the phase's confirmations take
			// to be sent after it (River's throughput; the log mailer).
			var jobs int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'scheduled', 'retryable')`).Scan(&jobs); err != nil {
				return nil, err
			}
			start := time.Now()
			if err := settle(ctx, pool); err != nil {
				return nil, err
			}
			r.notifyDrain, r.notifyJobs = time.Since(start), jobs
		}
		top = events
	}
	if err := countConfirmed(ctx, pool, eventsResource, n*len(concurrencies)); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.log, "bench: %s: the c=%d events again (duplicates)\n", ds.name, topConcurrency)
	if err := settle(ctx, pool); err != nil {
		return nil, err
	}
	r.duplicates = e.webhooks(ctx, srv, top, topConcurrency)
	if err := expect(r.duplicates, map[int]int{http.StatusOK: n}); err != nil {
		return nil, fmt.Errorf("duplicates: %w", err)
	}

	e.progress(ds, "duplicates", r.duplicates)
	if err := appliedOnce(ctx, pool, eventsResource, n*len(concurrencies)); err != nil {
		return nil, fmt.Errorf("after the duplicates: %w", err)
	}
	// The limit first, then slotpay's own statements, each confirming its
	// own bookings with the same payload as the webhooks'.
	for _, p := range []struct {
		run              *pgbenchRun
		name, script     string
		resource, prefix string
	}{
		{&r.minimal, "minimal", minimalScript, minimalResource, "minimal"},
		{&r.same, "same", pgbenchScript, pgbenchResource, "pgbench"},
	} {
		fmt.Fprintf(e.log, "bench: %s: pgbench, the %s transaction, %d clients × %d\n", ds.name, p.name, topConcurrency, pgbenchTx)
		if err := settle(ctx, pool); err != nil {
			return nil, err
		}
		if *p.run, err = e.pgbench(ctx, pool, p.prefix, p.script, pgbenchTx, top[0], srv.pid()); err != nil {
			return nil, err
		}
		fmt.Fprintf(e.log, "bench: %s: pgbench %s: %.0f tps\n", ds.name, p.name, p.run.tps)
		if err := countConfirmed(ctx, pool, p.resource, pgbenchTx*topConcurrency); err != nil {
			return nil, fmt.Errorf("pgbench %s: %w", p.name, err)
		}
	}

	fmt.Fprintf(e.log, "bench: %s: booking creation\n", ds.name)
	if err := settle(ctx, pool); err != nil {
		return nil, err
	}
	if r.distinct, err = e.bookDistinct(ctx, pool, srv.base); err != nil {
		return nil, err
	}
	e.progress(ds, "distinct slots", r.distinct)
	if r.distinct.statuses[http.StatusCreated] != e.o.bookings {
		r.notes = append(r.notes, fmt.Sprintf("distinct slots: answers %v, want %d×201", r.distinct.statuses, e.o.bookings))
	}
	// Each new booking goes to Checkout (stripe-mock), as its customer
	// would: the server's memory is measured over this too.
	r.checkout = e.checkoutAll(ctx, srv.base, r.distinct)
	e.progress(ds, "checkout", r.checkout)
	if r.checkout.statuses[http.StatusOK] != r.distinct.statuses[http.StatusCreated] || r.checkout.errors > 0 {
		r.notes = append(r.notes, fmt.Sprintf("checkout: answers %v (%d connection errors), want %d×200", r.checkout.statuses, r.checkout.errors, r.distinct.statuses[http.StatusCreated]))
	}
	if r.contended, err = e.bookContended(ctx, pool, srv.base); err != nil {
		return nil, err
	}
	e.progress(ds, "contended slot", r.contended)
	// More than one winner would break SPEC §8.1: no number is worth that.
	if wins := r.contended.statuses[http.StatusCreated]; wins > 1 {
		return nil, fmt.Errorf("contended slot: %d winners", wins)
	}
	if r.contended.statuses[http.StatusCreated] != 1 || r.contended.statuses[http.StatusConflict] != e.o.contended-1 {
		r.notes = append(r.notes, fmt.Sprintf("contended slot: answers %v, want 1×201 and %d×409", r.contended.statuses, e.o.contended-1))
	}

	fmt.Fprintf(e.log, "bench: %s: availability of one day\n", ds.name)
	if r.avail, err = e.availability(ctx, pool, srv.base, availDay); err != nil {
		return nil, err
	}
	e.progress(ds, "availability", r.avail)
	if err := expect(r.avail, map[int]int{http.StatusOK: e.o.bookings}); err != nil {
		return nil, fmt.Errorf("availability: %w", err)
	}
	if r.peakRSS, err = srv.peakRSS(); err != nil {
		return nil, err
	}
	// The server's connections report their statistics as they close.
	srv.stop()
	if note, err := seqScans(ctx, pool); err != nil {
		return nil, err
	} else if note != "" {
		r.notes = append(r.notes, note)
	}
	return r, nil
}

// seqScans reports the ledger read by sequential scans more than a few
// times over: every lookup the webhook path makes in payment_events has an
// index, so a plan that scans the table instead costs a read of the whole
// ledger per event (the bench's own checks scan it once or twice).
func seqScans(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var scans, read, rows int64
	err := pool.QueryRow(ctx, `SELECT seq_scan, seq_tup_read, n_live_tup FROM pg_stat_user_tables WHERE relname = 'payment_events'`).Scan(&scans, &read, &rows)
	if err != nil {
		return "", fmt.Errorf("statistics of payment_events: %w", err)
	}
	if read > 3*max(rows, 1) {
		return fmt.Sprintf("payment_events was read by %d sequential scans, %d rows in all (the table has %d): a cached plan scans the ledger", scans, read, rows), nil
	}
	return "", nil
}

// settle waits until the server's River workers have done the jobs waiting
// (the notifications of the confirmations so far), so that each phase is
// measured with only its own background work beside it: the duplicates
// phase does not pay for the e-mails of the unique events before it, nor
// pgbench for the webhooks'.
func settle(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		var waiting int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running')
			OR (state IN ('scheduled', 'retryable') AND scheduled_at < now() + interval '5 seconds')`).Scan(&waiting)
		if err != nil {
			return fmt.Errorf("settle: River's jobs: %w", err)
		}
		if waiting == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("settle: %d River jobs still waiting: %w", waiting, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// progress prints a phase's numbers as soon as they are known.
func (e *environment) progress(ds dataset, phase string, l load) {
	fmt.Fprintf(e.log, "bench: %s: %s: %.0f/s p50 %s p99 %s answers %v errors %d\n",
		ds.name, phase, l.perSecond(), l.pct(0.5), l.pct(0.99), l.statuses, l.errors)
}

// webhooks delivers signed events to srv as Stripe does, c at a time, and
// measures what each part of the machine spent meanwhile. Signing happens
// before the clock starts: it is Stripe's work, not slotpay's.
func (e *environment) webhooks(ctx context.Context, srv *server, events [][]byte, c int) load {
	now := time.Now()
	reqs := make([]request, len(events))
	for i, ev := range events {
		reqs[i] = request{method: http.MethodPost, url: srv.base + "/v1/webhooks/stripe", body: ev, header: http.Header{
			"Content-Type":     {"application/json; charset=utf-8"},
			"Stripe-Signature": {testkit.SignatureHeader(ev, webhookSecret, now)},
		}}
	}
	before := readCPU(srv.pid())
	l := drive(ctx, reqs, c)
	l.cpu = readCPU(srv.pid()).sub(before)
	return l
}

func (e *environment) bookDistinct(ctx context.Context, pool *pgxpool.Pool, base string) (load, error) {
	ids := make([]string, distinctResources)
	for i := range ids {
		id, err := resourceID(ctx, pool, fmt.Sprintf("bench-distinct-%d", i+1))
		if err != nil {
			return load{}, err
		}
		ids[i] = id.String()
	}
	first := time.Now().UTC().AddDate(0, 0, 2).Truncate(24 * time.Hour)
	reqs := make([]request, e.o.bookings)
	for i := range reqs {
		slot := i / distinctResources
		start := first.AddDate(0, 0, slot/23).Add(time.Duration(slot%23) * time.Hour)
		reqs[i] = bookingRequest(base, ids[i%distinctResources], start, i)
		reqs[i].keepBody = true
	}
	return drive(ctx, reqs, topConcurrency), nil
}

// checkoutAll starts Checkout for every booking that booked answered 201,
// from the customer's own address.
func (e *environment) checkoutAll(ctx context.Context, base string, booked load) load {
	var reqs []request
	for i, body := range booked.bodies {
		var created struct {
			ID string `json:"id"`
		}
		if booked.codes[i] != http.StatusCreated || json.Unmarshal(body, &created) != nil {
			continue
		}
		reqs = append(reqs, request{method: http.MethodPost, url: base + "/v1/bookings/" + created.ID + "/checkout",
			header: http.Header{"X-Forwarded-For": {booked.reqs[i].header.Get("X-Forwarded-For")}}})
	}
	return drive(ctx, reqs, topConcurrency)
}

func (e *environment) bookContended(ctx context.Context, pool *pgxpool.Pool, base string) (load, error) {
	id, err := resourceID(ctx, pool, contendedResource)
	if err != nil {
		return load{}, err
	}
	start := time.Now().UTC().AddDate(0, 0, 2).Truncate(24 * time.Hour).Add(10 * time.Hour)
	reqs := make([]request, e.o.contended)
	for i := range reqs {
		reqs[i] = bookingRequest(base, id.String(), start, i)
	}
	return drive(ctx, reqs, topConcurrency), nil
}

// bookingRequest is customer n's request for a slot. Each customer has an
// address and an e-mail of their own (the address forwarded by the proxy the
// bench plays), as in a deployment where many people book at once: the hold
// caps of SPEC §3.2 count per address and per e-mail.
func bookingRequest(base, resourceID string, start time.Time, n int) request {
	body := fmt.Sprintf(`{"resource_id":%q,"starts_at":%q,"ends_at":%q,"customer":{"email":"customer%d@example.com","name":"Ada"}}`,
		resourceID, start.Format(time.RFC3339), start.Add(time.Hour).Format(time.RFC3339), n)
	return request{method: http.MethodPost, url: base + "/v1/bookings", body: []byte(body),
		header: http.Header{
			"Content-Type":    {"application/json"},
			"X-Forwarded-For": {fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)},
		}}
}

func (e *environment) availability(ctx context.Context, pool *pgxpool.Pool, base string, day time.Time) (load, error) {
	id, err := resourceID(ctx, pool, availResource)
	if err != nil {
		return load{}, err
	}
	req := request{method: http.MethodGet, url: fmt.Sprintf("%s/v1/resources/%s/availability?date=%s", base, id, day.Format(time.DateOnly))}
	reqs := make([]request, e.o.bookings)
	for i := range reqs {
		reqs[i] = req
	}
	return drive(ctx, reqs, 8), nil
}

type request struct {
	method, url string
	body        []byte
	header      http.Header
	keepBody    bool // the answer's body is kept in load.bodies
}

// expect fails a phase whose answers are not what correctness demands: a
// fast wrong answer is not a result.
func expect(l load, want map[int]int) error {
	if l.errors > 0 || !mapsEqual(l.statuses, want) {
		return fmt.Errorf("answers %v (%d connection errors), want %v", l.statuses, l.errors, want)
	}
	return nil
}

func mapsEqual(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// appliedOnce checks the ledger and the history of resource's bookings:
// every event recorded once and applied, every booking confirmed by exactly
// one status change.
func appliedOnce(ctx context.Context, pool *pgxpool.Pool, resource string, want int) error {
	var applied, changes, confirmed int
	err := pool.QueryRow(ctx, `
		WITH b AS (SELECT b.id FROM bookings b JOIN resources r ON r.id = b.resource_id WHERE r.slug = $1)
		SELECT (SELECT count(*) FROM payment_events WHERE booking_id IN (SELECT id FROM b) AND outcome = 'applied'),
		       (SELECT count(*) FROM booking_status_changes WHERE booking_id IN (SELECT id FROM b) AND to_status = 'confirmed'),
		       (SELECT count(DISTINCT booking_id) FROM booking_status_changes WHERE booking_id IN (SELECT id FROM b) AND to_status = 'confirmed')`,
		resource).Scan(&applied, &changes, &confirmed)
	if err == nil && (applied != want || changes != want || confirmed != want) {
		err = fmt.Errorf("%s: %d events applied, %d changes to confirmed of %d bookings, want %d of each", resource, applied, changes, confirmed, want)
	}
	return err
}

func countConfirmed(ctx context.Context, pool *pgxpool.Pool, resource string, want int) error {
	var got int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM bookings b JOIN resources r ON r.id = b.resource_id
		WHERE r.slug = $1 AND b.status = 'confirmed'`, resource).Scan(&got)
	if err == nil && got != want {
		err = fmt.Errorf("%d bookings of %s confirmed, want %d", got, resource, want)
	}
	return err
}

// minimalScript is the limit (issue 12): the smallest transaction that does
// a confirmation's durable work. It records the event with its payload
// (ON CONFLICT DO NOTHING, as a duplicate must), confirms the booking by its
// session key, records the status change and commits: no matching, no
// locks, no outcome, no serialisation.
const minimalScript = `BEGIN;
INSERT INTO payment_events (stripe_event_id, type, api_version, livemode, stripe_created_at, source, checkout_session_id, payment_intent_id, outcome, payload) VALUES ('evt_minimal_' || nextval('minimal_seq'), 'checkout.session.completed', '2023-10-16', false, now(), 'webhook', NULL, NULL, 'applied', :payload) ON CONFLICT (stripe_event_id) DO NOTHING RETURNING substr(stripe_event_id, 13) AS n \gset
UPDATE bookings SET status = 'confirmed', updated_at = now() WHERE checkout_session_id = 'cs_minimal_' || :n RETURNING id AS booking \gset
INSERT INTO booking_status_changes (booking_id, from_status, to_status, cause, stripe_event_id) VALUES (:booking, 'pending_payment', 'confirmed', 'checkout.session.completed', 'evt_minimal_' || :n);
COMMIT;
`

// pgbenchScript is, statement for statement, what slotpay's processor runs
// for a checkout.session.completed that confirms a booking (payment.Process,
// sql/queries/ledger.sql and bookings.sql), as prepared statements like
// pgx's: record the event; find and lock the booking; link the payment
// intent, reading the events that waited for it; change the status and
// record the change; record the outcome. Each transaction confirms its own
// booking.
const pgbenchScript = `BEGIN;
INSERT INTO payment_events (stripe_event_id, type, api_version, livemode, stripe_created_at, source, checkout_session_id, payment_intent_id, outcome, payload) VALUES ('evt_pgbench_' || nextval('pgbench_seq'), 'checkout.session.completed', '2023-10-16', false, now(), 'webhook', NULL, NULL, 'ignored', :payload) ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id AS event_row, substr(stripe_event_id, 13) AS n \gset
SELECT id AS booking, status FROM bookings WHERE id = COALESCE((SELECT s.id FROM bookings s WHERE s.checkout_session_id = 'cs_pgbench_' || :n), NULL::uuid) FOR UPDATE \gset
WITH linked AS (UPDATE bookings SET payment_intent_id = 'pi_pgbench_' || :n, updated_at = now() WHERE bookings.id = :booking AND bookings.payment_intent_id IS NULL) SELECT * FROM payment_events WHERE outcome = 'unmatched' AND payment_intent_id = 'pi_pgbench_' || :n ORDER BY stripe_created_at, id;
WITH moved AS (UPDATE bookings SET status = 'confirmed', updated_at = now() WHERE bookings.id = :booking AND bookings.status = 'pending_payment' RETURNING *), recorded AS (INSERT INTO booking_status_changes (booking_id, from_status, to_status, cause, stripe_event_id) SELECT moved.id, 'pending_payment', 'confirmed', 'checkout.session.completed', 'evt_pgbench_' || :n FROM moved) SELECT * FROM moved;
UPDATE payment_events SET outcome = 'applied', detail = '', booking_id = :booking, resolved_at = CASE WHEN outcome = 'unmatched' AND 'applied' <> 'unmatched' THEN now() ELSE resolved_at END WHERE id = :event_row;
COMMIT;
`

var (
	tpsLine     = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	latencyLine = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
)

// pgbenchRun is what pgbench reported: transactions per second, its average
// latency and, from its per-transaction log (-l), the 99th percentile, in
// milliseconds: the tail PostgreSQL itself has on this machine, which bounds
// the webhook's p99 from below.
type pgbenchRun struct {
	tps, latency, p99 float64
	n                 int
	// PostgreSQL's CPU time during the run, and pgbench's own.
	postgres, client time.Duration
}

// pgbench runs script at the top concurrency. The script numbers its
// transactions with the sequence <prefix>_seq, so that each confirms its
// own booking; the ledger row carries a real event's payload, as slotpay's
// does.
func (e *environment) pgbench(ctx context.Context, pool *pgxpool.Pool, prefix, script string, perClient int, payload []byte, serverPID int) (pgbenchRun, error) {
	if _, err := pool.Exec(ctx, "CREATE SEQUENCE "+prefix+"_seq"); err != nil {
		return pgbenchRun{}, err
	}
	file := filepath.Join(e.tmp, prefix+".sql")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		return pgbenchRun{}, err
	}
	cfg := pool.Config().ConnConfig
	cmd := exec.CommandContext(ctx, e.o.pgbench, "-n", "-M", "prepared", "-f", file,
		"-c", strconv.Itoa(topConcurrency), "-j", "2", "-t", strconv.Itoa(perClient),
		"-D", "payload="+string(payload),
		"-l", "--log-prefix", filepath.Join(e.tmp, prefix+"_log"),
		"-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)), "-U", cfg.User, cfg.Database)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+cfg.Password)
	before := readCPU(serverPID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return pgbenchRun{}, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	r := pgbenchRun{n: perClient * topConcurrency, postgres: readCPU(serverPID).sub(before).postgres,
		client: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	m, l := tpsLine.FindSubmatch(out), latencyLine.FindSubmatch(out)
	if m == nil || l == nil {
		return pgbenchRun{}, fmt.Errorf("pgbench printed no tps or latency:\n%s", out)
	}
	r.tps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.latency, _ = strconv.ParseFloat(string(l[1]), 64)
	if r.p99, err = pgbenchP99(filepath.Join(e.tmp, prefix+"_log")); err != nil {
		return pgbenchRun{}, err
	}
	return r, nil
}

// pgbenchP99 reads pgbench's per-transaction logs (one file per thread,
// named prefix.<pid>[.<thread>]; the third field of a line is the
// transaction's latency in microseconds) and returns their 99th percentile
// in milliseconds.
func pgbenchP99(prefix string) (float64, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("pgbench wrote no transaction log at %s.*: %v", prefix, err)
	}
	var us []float64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		for line := range strings.Lines(string(data)) {
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			v, err := strconv.ParseFloat(fields[2], 64)
			if err != nil {
				return 0, fmt.Errorf("pgbench log %s: %q: %w", f, line, err)
			}
			us = append(us, v)
		}
	}
	slices.Sort(us)
	return us[(len(us)*99)/100] / 1000, nil
}

// cpuProfile saves a CPU profile of the server of the given seconds to
// -cpuprofile, from its METRICS_ADDR listener (METRICS_PPROF).
func (e *environment) cpuProfile(ctx context.Context, base string, seconds int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", req.URL, resp.Status)
	}
	f, err := os.Create(e.o.cpuProfile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printTable(w io.Writer, results []*result) {
	var b strings.Builder
	row := func(name string, cell func(*result) string) {
		fmt.Fprintf(&b, "| %-50s |", name)
		for _, r := range results {
			fmt.Fprintf(&b, " %24s |", cell(r))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| %-50s |", "measurement")
	for _, r := range results {
		fmt.Fprintf(&b, " %24s |", r.dataset.name)
	}
	b.WriteString("\n|" + strings.Repeat("-", 52) + "|")
	for range results {
		b.WriteString(strings.Repeat("-", 25) + ":|")
	}
	b.WriteString("\n")
	for _, c := range concurrencies {
		row(fmt.Sprintf("webhook unique, c=%d: events/s", c), func(r *result) string { return fmt.Sprintf("%.0f", r.unique[c].perSecond()) })
		row(fmt.Sprintf("webhook unique, c=%d: p50 / p99 ms", c), func(r *result) string {
			return ms(r.unique[c].pct(0.50)) + " / " + ms(r.unique[c].pct(0.99))
		})
	}
	row(fmt.Sprintf("webhook duplicates, c=%d: events/s", topConcurrency), func(r *result) string { return fmt.Sprintf("%.0f", r.duplicates.perSecond()) })
	row(fmt.Sprintf("webhook duplicates, c=%d: p50 / p99 ms", topConcurrency), func(r *result) string {
		return ms(r.duplicates.pct(0.50)) + " / " + ms(r.duplicates.pct(0.99))
	})
	row(fmt.Sprintf("pgbench minimal tx, -c %d -j 2: tps", topConcurrency), func(r *result) string { return fmt.Sprintf("%.0f", r.minimal.tps) })
	row(fmt.Sprintf("pgbench minimal tx, -c %d: latency avg / p99 ms", topConcurrency), func(r *result) string {
		return fmt.Sprintf("%.1f / %.1f", r.minimal.latency, r.minimal.p99)
	})
	row(fmt.Sprintf("RATIO webhook c=%d ÷ minimal (target ≥ 0.70)", topConcurrency), func(r *result) string {
		return fmt.Sprintf("%.2f", r.unique[topConcurrency].perSecond()/r.minimal.tps)
	})
	row(fmt.Sprintf("CPU ms per event, c=%d: PostgreSQL / server / load", topConcurrency), func(r *result) string {
		l := r.unique[topConcurrency]
		return perEvent(l.cpu.postgres, l.n) + " / " + perEvent(l.cpu.server, l.n) + " / " + perEvent(l.cpu.bench, l.n)
	})
	row(fmt.Sprintf("CPU ms per duplicate, c=%d: PostgreSQL / server / load", topConcurrency), func(r *result) string {
		l := r.duplicates
		return perEvent(l.cpu.postgres, l.n) + " / " + perEvent(l.cpu.server, l.n) + " / " + perEvent(l.cpu.bench, l.n)
	})
	row("CPU ms per tx, pgbench minimal: PostgreSQL / pgbench", func(r *result) string {
		return perEvent(r.minimal.postgres, r.minimal.n) + " / " + perEvent(r.minimal.client, r.minimal.n)
	})
	row(fmt.Sprintf("cores busy, webhook c=%d / duplicates / pgbench minimal", topConcurrency), func(r *result) string {
		busy := func(l load) float64 {
			return (l.cpu.postgres + l.cpu.server + l.cpu.bench).Seconds() / l.elapsed.Seconds()
		}
		pg := (r.minimal.postgres + r.minimal.client).Seconds() / (float64(r.minimal.n) / r.minimal.tps)
		return fmt.Sprintf("%.2f / %.2f / %.2f", busy(r.unique[topConcurrency]), busy(r.duplicates), pg)
	})
	row(fmt.Sprintf("notifications after c=%d: jobs waiting / s to send", topConcurrency), func(r *result) string {
		return fmt.Sprintf("%d / %.1f", r.notifyJobs, r.notifyDrain.Seconds())
	})
	row(fmt.Sprintf("pgbench slotpay's SQL, -c %d -j 2: tps", topConcurrency), func(r *result) string { return fmt.Sprintf("%.0f", r.same.tps) })
	row(fmt.Sprintf("pgbench slotpay's SQL, -c %d: latency avg ms", topConcurrency), func(r *result) string { return fmt.Sprintf("%.1f", r.same.latency) })
	row(fmt.Sprintf("ratio webhook c=%d ÷ slotpay's SQL", topConcurrency), func(r *result) string {
		return fmt.Sprintf("%.2f", r.unique[topConcurrency].perSecond()/r.same.tps)
	})
	row(fmt.Sprintf("duplicates ÷ unique at c=%d (target ≥ 3)", topConcurrency), func(r *result) string {
		return fmt.Sprintf("%.1f", r.duplicates.perSecond()/r.unique[topConcurrency].perSecond())
	})
	outcomes := func(l load) string {
		var parts []string
		for _, code := range slices.Sorted(mapKeys(l.statuses)) {
			parts = append(parts, fmt.Sprintf("%d×%d", l.statuses[code], code))
		}
		return strings.Join(parts, " ")
	}
	for _, p := range []struct {
		name string
		l    func(*result) load
	}{
		{"book distinct slots", func(r *result) load { return r.distinct }},
		{"book one contended slot", func(r *result) load { return r.contended }},
		{"checkout of the distinct bookings", func(r *result) load { return r.checkout }},
	} {
		row(fmt.Sprintf("%s, c=%d: requests/s", p.name, topConcurrency), func(r *result) string { return fmt.Sprintf("%.0f", p.l(r).perSecond()) })
		row(fmt.Sprintf("%s, c=%d: p99 ms", p.name, topConcurrency), func(r *result) string { return ms(p.l(r).pct(0.99)) })
		row(fmt.Sprintf("%s, c=%d: outcomes", p.name, topConcurrency), func(r *result) string { return outcomes(p.l(r)) })
	}
	row("availability of one day, c=8: p50 / p99 ms", func(r *result) string { return ms(r.avail.pct(0.50)) + " / " + ms(r.avail.pct(0.99)) })
	row("server peak RSS (VmHWM) over the run, MB", func(r *result) string { return fmt.Sprintf("%.1f", float64(r.peakRSS)/(1<<20)) })
	if len(results) == 2 {
		row("throughput at c=32 vs empty (target ≥ -10%)", func(r *result) string {
			base := results[0].unique[topConcurrency].perSecond()
			return fmt.Sprintf("%+.1f%%", 100*(r.unique[topConcurrency].perSecond()-base)/base)
		})
	}
	for _, r := range results {
		for _, n := range r.notes {
			fmt.Fprintf(&b, "\nnote (%s): %s", r.dataset.name, n)
		}
	}
	_, _ = io.WriteString(w, b.String()+"\n")
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64)
}

func mapKeys(m map[int]int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
