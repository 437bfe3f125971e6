package modelcheck_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/app"
	"github.com/slotpay/slotpay/internal/app/apptest"
	"github.com/slotpay/slotpay/internal/baseservice"
	"github.com/slotpay/slotpay/internal/checkout"
	slotpayconfig "github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/notify"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/reconcile"
	"github.com/slotpay/slotpay/internal/testkit"
)

const (
	webhookSecret = "whsec_test_modelcheck"
	// serverApp names the server's database connections, so that a fault
	// kills only those, never the checker's own.
	serverApp = "slotpay-modelcheck-server"
)

type config struct {
	seed    uint64
	steps   int
	defects map[defect]bool
}

// result is what one world found and covered.
type result struct {
	violations []string
	log        []string
	cov        coverage
}

// world is one slotpay server on its own database, against its own Stripe
// simulator, and the checker's record of what it did to them.
type world struct {
	t          testing.TB
	cfg        config
	db         testkit.TestDB
	serverPool *pgxpool.Pool
	stripe     *testkit.StripeFake
	processor  *payment.Processor
	checkouts  *checkout.Service
	reconciler *reconcile.Reconciler
	app        *app.App
	srvMu      sync.Mutex // guards srv, url and the collaborators, replaced by a restart
	srv        *httptest.Server
	url        string
	http       *http.Client
	resources  []db.Resource
	operator   uuid.UUID
	deliveries *deliveryRand
	// dashboard is the merchant acting in Stripe's Dashboard, beside slotpay.
	dashboard *client.API

	mu       sync.Mutex
	bookings []*tracked
	acked    map[string]bool // events a webhook answered 2xx
	// checkoutsRefused counts checkouts Stripe refused while no fault was
	// injected (the expires-at defect).
	checkoutsRefused int
	// liveness lists operations that should have succeeded and did not.
	liveness []string
	cov      coverage
}

// tracked is a booking as the checker knows it.
type tracked struct {
	id      uuid.UUID
	amount  int64
	session string
	settled bool // its async payment settled, one way or the other
	async   bool // paid with an asynchronous method
}

// deliveryRand serialises the world's delivery generator: rounds may run
// concurrently, a rand.Rand may not.
type deliveryRand struct {
	mu   sync.Mutex
	seed uint64
	n    uint64
}

func (d *deliveryRand) next() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	return d.n
}

func newWorld(t testing.TB, cfg config) *world {
	t.Helper()
	ctx := t.Context()
	opts := []testkit.FakeOption{testkit.EmitEvents(), testkit.FaultSeed(cfg.seed)}
	if cfg.defects[defectIdempotent5xx] {
		opts = append(opts, testkit.StoreEveryAnswer())
	}
	if cfg.defects[defectExpiresAt] {
		opts = append(opts, testkit.CheckExpiresAt())
	}
	w := &world{
		t: t, cfg: cfg, db: testkit.NewDatabase(t), stripe: testkit.NewStripeFake(t, opts...),
		acked: map[string]bool{}, deliveries: &deliveryRand{seed: cfg.seed},
	}
	w.cov.init()

	u, err := url.Parse(w.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", serverApp)
	q.Set("pool_max_conns", "8")
	u.RawQuery = q.Encode()
	w.serverPool, err = database.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.serverPool.Close)

	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	w.dashboard = testkit.StripeClient(t, w.stripe.URL)
	w.http = &http.Client{Timeout: 60 * time.Second}

	for range 2 {
		w.resources = append(w.resources, testkit.CreateResource(t, w.db, nil))
	}
	w.operator = uuid.Must(uuid.NewV7())
	if _, err := db.New(w.db.Pool).AdminUserInsert(ctx, db.AdminUserInsertParams{
		ID: w.operator, Email: "ops@example.com", Role: "ops", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=1$bm90$bm90",
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

// start runs a slotpay instance, wired by app.New as `serve` wires it, with
// its River client working jobs (refund requests, reconcile passes): at
// first, and again after a restart. A restart is a new process: new
// collaborators, a new listener, the same database and Stripe account.
func (w *world) start() error {
	srv := httptest.NewUnstartedServer(nil)
	public, err := url.Parse("http://" + srv.Listener.Addr().String())
	if err != nil {
		return err
	}
	cfg := apptest.Config(public)
	cfg.StripeSecretKey = "sk_test_modelcheck"
	cfg.StripeAPIBase = w.stripe.URL
	cfg.StripeWebhookSecret = []string{webhookSecret}
	cfg.WriteRateLimit = slotpayconfig.RateLimit{Off: true}
	// Every customer comes from 127.0.0.1: the per-address cap would cap
	// the whole model; the per-e-mail cap (3) stays, and §8.7 checks it.
	cfg.MaxHoldsPerClient = 10_000
	cfg.MaxHoldsPerEmail = slotpayconfig.DefaultMaxHoldsPerEmail
	arch := &baseservice.Archetype{
		Config: cfg, Logger: slog.New(slog.DiscardHandler), Pool: w.serverPool,
		// As serve configures it: stripe-go retries connection errors
		// twice, under the same idempotency key.
		Stripe: app.NewStripeClient(cfg),
	}
	a, err := app.New(arch, app.Options{})
	if err != nil {
		return err
	}
	if err := a.Start(context.WithoutCancel(w.t.Context())); err != nil {
		return err
	}
	handler, err := a.Handler()
	if err != nil {
		return err
	}
	srv.Config.Handler = handler
	srv.Start()
	w.t.Cleanup(func() {
		srv.Close()
		stopApp(w.t, a)
	})
	w.srvMu.Lock()
	defer w.srvMu.Unlock()
	w.srv, w.app, w.url = srv, a, srv.URL
	w.processor, w.checkouts, w.reconciler = a.Processor, a.Checkouts, a.Reconciler
	return nil
}

func stopApp(t testing.TB, a *app.App) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Logf("modelcheck: stop jobs: %v", err)
	}
}

// restart kills the server as a crash does: every client connection cut
// (answers in flight are lost; Stripe retries what it did not see
// answered), the process's database connections terminated, then a new
// instance started.
func (w *world) restart(ctx context.Context) error {
	w.srvMu.Lock()
	old, oldApp := w.srv, w.app
	w.srvMu.Unlock()
	old.CloseClientConnections()
	if _, err := w.db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, serverApp); err != nil {
		return err
	}
	// Waits for the old handlers and jobs, which fail on their dead
	// connections: a dead process applies nothing after the restart
	// (River gives its unfinished jobs to the new instance).
	old.Close()
	stopApp(w.t, oldApp)
	return w.start()
}

// server returns the running server's address and collaborators.
func (w *world) server() (string, *payment.Processor, *checkout.Service, *reconcile.Reconciler) {
	w.srvMu.Lock()
	defer w.srvMu.Unlock()
	return w.url, w.processor, w.checkouts, w.reconciler
}

// runWorld runs a seed's plan against a fresh world, waits until it is
// quiet, and checks the invariants.
func runWorld(t testing.TB, cfg config) result {
	t.Helper()
	w := newWorld(t, cfg)
	ctx := t.Context()
	plan := makePlan(cfg)
	var log []string
	for i, st := range plan {
		outcomes := make([]string, len(st))
		var wg sync.WaitGroup
		for j, o := range st {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outcomes[j] = o.String() + " → " + w.do(ctx, o)
			}()
		}
		wg.Wait()
		log = append(log, fmt.Sprintf("step %2d: %s", i+1, strings.Join(outcomes, " ‖ ")))
	}
	quiet := w.quiesce(ctx)
	log = append(log, "quiesce: "+quiet)
	violations := w.check(ctx)
	w.cov.worlds = 1
	for k, n := range w.stripe.InjectedFaults() {
		w.cov.faults["stripe_"+k] += n
	}
	w.interleavings(ctx)
	return result{violations: violations, log: log, cov: w.cov}
}

// quiesce lets the world settle as production would: faults end, Stripe
// delivers everything it has queued (retrying what failed), the reconciler
// and replay-events run, until nothing changes any more.
func (w *world) quiesce(ctx context.Context) string {
	w.stripe.ClearFaults()
	rounds := 0
	prevEmitted := -1
	for ; rounds < 20; rounds++ {
		for k := 0; w.stripe.QueuedEvents() > 0 && k < 100; k++ {
			w.deliver(ctx, 0, 0, w.concurrency(4))
		}
		w.settleJobs(ctx)
		_, _, _, reconciler := w.server()
		// A pooled connection a fault killed fails its next query: a
		// round counts as quiet only when both passes went through.
		passed := true
		if _, err := reconciler.Run(ctx); err != nil {
			w.t.Logf("quiesce: reconcile: %v", err)
			passed = false
		}
		if _, err := reconciler.Replay(ctx, time.Hour); err != nil {
			w.t.Logf("quiesce: replay: %v", err)
			passed = false
		}
		emitted := len(w.stripe.Emitted())
		if passed && w.stripe.QueuedEvents() == 0 && emitted == prevEmitted {
			break
		}
		prevEmitted = emitted
	}
	// The last round's passes may have changed statuses: their
	// notifications are finished before the world counts as quiet.
	w.settleJobs(ctx)
	return fmt.Sprintf("%d rounds, %d events emitted, %d queued", rounds+1, len(w.stripe.Emitted()), w.stripe.QueuedEvents())
}

// settledKinds are the jobs a quiet world has finished: refunds, and the
// notifications with their e-mails and merchant deliveries (§8.8).
var settledKinds = []string{
	payment.RefundArgs{}.Kind(), notify.Args{}.Kind(), notify.EmailArgs{}.Kind(), notify.DeliveryArgs{}.Kind(),
}

// settleJobs runs the refund and notification jobs that are waiting for a
// retry now (time cannot pass in a test; River's backoff would make them
// wait minutes) and waits, up to a deadline, until none is left to run.
func (w *world) settleJobs(ctx context.Context) {
	deadline := time.Now().Add(testkit.WaitTimeout)
	for time.Now().Before(deadline) {
		if _, err := w.db.Pool.Exec(ctx, `UPDATE river_job SET scheduled_at = now()
			WHERE kind = ANY($1) AND state IN ('retryable', 'scheduled')`, settledKinds); err != nil {
			w.t.Logf("quiesce: wake jobs: %v", err)
			return
		}
		if w.db.Count(w.t, `SELECT count(*) FROM river_job WHERE kind = ANY($1)
			AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`, settledKinds) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Logf("quiesce: jobs still queued after %s", testkit.WaitTimeout)
}

// concurrency is n when the race scenario is on, else 1: delivered one at a
// time, events cannot race each other.
func (w *world) concurrency(n int) int {
	if w.cfg.defects[defectRace] {
		return n
	}
	return 1
}

func (w *world) deliver(ctx context.Context, max int, dup float64, conc int) testkit.DeliveryReport {
	rep := w.stripe.DeliverEvents(ctx, testkit.Delivery{
		URL: w.baseURL() + "/v1/webhooks/stripe", Secret: webhookSecret,
		Rand: newRand(w.cfg.seed, 1000+w.deliveries.next()), Max: max, Duplicate: dup, Concurrency: conc,
		Client: w.http,
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range rep.Acknowledged {
		w.acked[id] = true
	}
	w.cov.faults["webhook_non_2xx"] += rep.Failed
	w.cov.faults["event_duplicates"] += rep.Duplicates
	w.cov.deliveries += rep.Sent
	return rep
}

// api calls slotpay's HTTP API and returns the status and decoded body.
func (w *world) api(ctx context.Context, method, path string, body any) (int, map[string]any) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.baseURL()+path, r)
	if err != nil {
		return 0, nil
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (w *world) baseURL() string {
	u, _, _, _ := w.server()
	return u
}

func (w *world) pick(i int) *tracked {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.bookings) == 0 {
		return nil
	}
	return w.bookings[i%len(w.bookings)]
}

// pickPaid picks among the bookings with a checkout session, most of the
// time the newest ones: the operations on payments then mostly meet a
// payment they can act on.
func (w *world) pickPaid(i int) *tracked {
	w.mu.Lock()
	defer w.mu.Unlock()
	var with []*tracked
	for _, b := range w.bookings {
		if b.session != "" {
			with = append(with, b)
		}
	}
	if len(with) == 0 {
		return nil
	}
	if i%4 != 0 && len(with) > 3 {
		with = with[len(with)-3:]
	}
	return with[i%len(with)]
}

// coverage is what a run exercised.
type coverage struct {
	worlds       int
	ops          map[string]int // by kind, attempted
	effective    map[string]int // by kind, that changed something
	faults       map[string]int
	deliveries   int
	orders       map[string]int // per-booking event-type order → bookings
	outOfOrder   int            // bookings whose events reached slotpay in another order than Stripe created them
	bookingsSeen int
}

func (c *coverage) init() {
	c.ops, c.effective, c.faults, c.orders = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
}

func (c *coverage) add(o coverage) {
	c.worlds += o.worlds
	c.deliveries += o.deliveries
	c.outOfOrder += o.outOfOrder
	c.bookingsSeen += o.bookingsSeen
	for k, v := range o.ops {
		c.ops[k] += v
	}
	for k, v := range o.effective {
		c.effective[k] += v
	}
	for k, v := range o.faults {
		c.faults[k] += v
	}
	for k, v := range o.orders {
		c.orders[k] += v
	}
}

func (c coverage) String() string {
	var b strings.Builder
	total, eff := 0, 0
	for _, k := range sortedKeys(c.ops) {
		total += c.ops[k]
		eff += c.effective[k]
	}
	fmt.Fprintf(&b, "operations: %d (%d took effect)\n", total, eff)
	for _, k := range sortedKeys(c.ops) {
		fmt.Fprintf(&b, "  %-18s %7d  took effect %7d\n", k, c.ops[k], c.effective[k])
	}
	fmt.Fprintf(&b, "webhook deliveries: %d\n", c.deliveries)
	b.WriteString("faults injected:\n")
	for _, k := range sortedKeys(c.faults) {
		if c.faults[k] > 0 {
			fmt.Fprintf(&b, "  %-18s %7d\n", k, c.faults[k])
		}
	}
	fmt.Fprintf(&b, "interleavings: %d bookings with events, %d distinct per-booking event orders, %d bookings whose events arrived in another order than Stripe created them\n",
		c.bookingsSeen, len(c.orders), c.outOfOrder)
	type kv struct {
		k string
		v int
	}
	var top []kv
	for k, v := range c.orders {
		top = append(top, kv{k, v})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].v > top[j].v || (top[i].v == top[j].v && top[i].k < top[j].k) })
	for i, e := range top {
		if i == 12 {
			fmt.Fprintf(&b, "  … %d more\n", len(top)-12)
			break
		}
		fmt.Fprintf(&b, "  %6d × %s\n", e.v, e.k)
	}
	return b.String()
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
