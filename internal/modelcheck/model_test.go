package modelcheck_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// defect names a defect of slotpay (issue 10, and one this checker found)
// whose scenario the checker can produce. The defects are fixed, so their
// scenarios are on by default, but for stillFound; MODELCHECK_DEFECTS=all
// turns every one on, none or a comma-separated list narrows a run, e.g. to
// show on old code what a fix restored.
type defect string

const (
	// Issue 10 §1: an event processed while the completion that links its
	// payment intent is still in its transaction is recorded unmatched and
	// never applied. Gates concurrent webhook delivery, and delivery beside
	// reconcile and replay; sequentially the race cannot happen.
	defectRace defect = "race"
	// Issue 10 §2: a Payment Link session whose client_reference_id is a
	// booking id pays that booking. Gates the Payment Link operation.
	defectProvenance defect = "provenance"
	// Issue 10 §3: a refund that fails after charge.refunded leaves the
	// booking refunded. Gates the refund-fails operation.
	defectRefundFailure defect = "refund-failure"
	// Issue 10 §4: Stripe replays a stored 5xx under the same key for 24 h,
	// and slotpay retries under that key. Gates StoreEveryAnswer in the
	// simulator.
	defectIdempotent5xx defect = "idempotent-5xx"
	// Issue 10 §5: disputes stop at creation; no dispute_status, a lost
	// dispute leaves the booking reading paid. Gates the dispute_status
	// check.
	defectDispute defect = "dispute"
	// Issue 10 §6: expires_at is sent at just under Stripe's 30-minute
	// minimum. Gates CheckExpiresAt in the simulator and the check that a
	// checkout with no fault injected succeeds.
	defectExpiresAt defect = "expires-at"
	// Found by this checker (make soak, seeds 587 and 670 of the first
	// 30-minute run), not in issue 10's list: a charge.refunded that
	// arrives while the booking is still processing (the async payment
	// succeeded and was refunded at Stripe, the success event not yet
	// applied) does not fit the status, is recorded ignored and never
	// applied; async_payment_succeeded then confirms a refunded payment
	// (SPEC §8.5, §8.6). Gates a Dashboard refund of a booking slotpay
	// still has processing.
	defectRefundWhileProcessing defect = "refund-while-processing"
)

// stillFound are the scenarios of defects not fixed yet, off by default
// (MODELCHECK_DEFECTS=all turns them on). None: the dispute and expires-at
// scenarios the first 30-minute soak still found violations in are closed
// (a charge has at most one dispute in the simulator, as at Stripe; a
// reserved expires_at is reused only with minutes to spare, and a key whose
// request failed is never sent again).
var stillFound []defect

var allDefects = []defect{defectRace, defectProvenance, defectRefundFailure, defectIdempotent5xx, defectDispute, defectExpiresAt, defectRefundWhileProcessing}

func defectsFromEnv(t testing.TB) map[defect]bool {
	on := map[defect]bool{}
	v := strings.TrimSpace(os.Getenv("MODELCHECK_DEFECTS"))
	if v == "" {
		for _, d := range allDefects {
			on[d] = !slices.Contains(stillFound, d)
		}
		return on
	}
	if v == "none" {
		return on
	}
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if name == "all" {
			for _, d := range allDefects {
				on[d] = true
			}
			continue
		}
		if !slices.Contains(allDefects, defect(name)) {
			t.Fatalf("MODELCHECK_DEFECTS: unknown defect %q (known: all, none, %v)", name, allDefects)
		}
		on[defect(name)] = true
	}
	return on
}

func envInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// TestModel is the short budget make test runs: a few fixed seeds (or the
// one MODELCHECK_SEED names). A failing seed prints its reproduction,
// shrunk to the shortest failing prefix of its plan.
func TestModel(t *testing.T) {
	t.Parallel()
	defects := defectsFromEnv(t)
	steps := envInt(t, "MODELCHECK_STEPS", 40)
	seeds := []uint64{1, 2, 3}
	if s := os.Getenv("MODELCHECK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MODELCHECK_SEED: %v", err)
		}
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			cfg := config{seed: seed, steps: steps, defects: defects}
			res := runWorld(t, cfg)
			if len(res.violations) > 0 {
				t.Fatal(reproduction(t, cfg, res))
			}
		})
	}
}

// TestModelSoak runs seed after seed for SOAK_DURATION (make soak), two
// worlds at a time, and prints what it covered and what it found.
func TestModelSoak(t *testing.T) {
	d := os.Getenv("SOAK_DURATION")
	if d == "" {
		t.Skip("SOAK_DURATION not set (make soak sets it)")
	}
	duration, err := time.ParseDuration(d)
	if err != nil {
		t.Fatalf("SOAK_DURATION: %v", err)
	}
	defects := defectsFromEnv(t)
	steps := envInt(t, "MODELCHECK_STEPS", 60)
	next := uint64(envInt(t, "MODELCHECK_SEED_START", 1))
	parallel := envInt(t, "MODELCHECK_PARALLEL", 2)
	deadline := time.Now().Add(duration)
	started := time.Now()

	var (
		mu       sync.Mutex
		total    coverage
		failures []string
		first    = next
		last     uint64
	)
	total.init()
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				mu.Lock()
				seed := next
				next++
				mu.Unlock()
				cfg := config{seed: seed, steps: steps, defects: defects}
				var res result
				// A world of its own per seed: its database is dropped
				// when the subtest ends, so a long soak does not pile
				// databases up.
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					res = runWorld(t, cfg)
					if len(res.violations) > 0 {
						msg := reproduction(t, cfg, res)
						mu.Lock()
						failures = append(failures, msg)
						mu.Unlock()
						t.Error(msg)
					}
				})
				mu.Lock()
				total.add(res.cov)
				if seed > last {
					last = seed
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var on []string
	for _, d := range allDefects {
		if defects[d] {
			on = append(on, string(d))
		}
	}
	fmt.Printf("\nmodelcheck soak: %s, seeds %d..%d (%d worlds, %d steps each), known-defect scenarios on: %v\n",
		time.Since(started).Round(time.Second), first, last, total.worlds, steps, on)
	fmt.Print(total.String())
	fmt.Printf("violations: %d seeds failed\n", len(failures))
	for _, f := range failures {
		fmt.Println(f)
	}
}

// reproduction shrinks a failing run to the shortest prefix of its plan that
// still fails (runs are concurrent, so a prefix may pass by luck; the
// search keeps the shortest it saw fail) and describes it.
func reproduction(t *testing.T, cfg config, res result) string {
	best := res
	bestSteps := cfg.steps
	lo, hi := 1, cfg.steps-1
	for tries := 0; lo <= hi && tries < 6; tries++ {
		mid := (lo + hi) / 2
		c := cfg
		c.steps = mid
		var r result
		t.Run(fmt.Sprintf("shrink-%d-steps", mid), func(t *testing.T) { r = runWorld(t, c) })
		if len(r.violations) > 0 {
			best, bestSteps, hi = r, mid, mid-1
		} else {
			lo = mid + 1
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "modelcheck: seed %d violates SPEC §8 (shrunk from %d to %d steps)\n", cfg.seed, cfg.steps, bestSteps)
	fmt.Fprintf(&b, "reproduce: MODELCHECK_SEED=%d MODELCHECK_STEPS=%d MODELCHECK_DEFECTS=%s go test -race -count=1 ./internal/modelcheck -run 'TestModel$' -v\n",
		cfg.seed, bestSteps, defectList(cfg.defects))
	b.WriteString("violations:\n")
	for _, v := range best.violations {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	b.WriteString("operations (one line per step; ops of a step ran concurrently):\n")
	for _, l := range best.log {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}

func defectList(on map[defect]bool) string {
	var names []string
	for _, d := range allDefects {
		if on[d] {
			names = append(names, string(d))
		}
	}
	if len(names) == 0 {
		return `""`
	}
	return strings.Join(names, ",")
}

// newRand is the seeded generator of a world: the plan, delivery orders and
// fault choices all come from the seed.
func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}
