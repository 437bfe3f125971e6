// Command slotpay-bench measures slotpay against what PostgreSQL itself allows
// on this machine (issue 5, docs/BENCHMARKS.md). It needs only a local
// PostgreSQL server: it creates its own databases, builds and runs the real
// binary as a child process (so its peak RSS is the server's alone), starts
// stripe-mock, drives load over HTTP, runs pgbench on the equivalent SQL and
// prints one table, for an empty database and for one with a large history.
//
//	go run ./cmd/slotpay-bench            # or: make bench
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	serverURL string // the PostgreSQL server's maintenance database
	pgbench   string
	events    int // unique webhook events per concurrency level
	bookings  int // requests for distinct slots, and availability reads
	contended int // requests for the one contended slot
	history   bool
	keep      bool
	logLevel  string
	poolConns int // the server's pool_max_conns; 0 keeps slotpay's default
	// serverParams are more DATABASE_URL parameters for the server, such
	// as session settings (commit_delay=100).
	serverParams string
	// cpuProfile is where the server's CPU profile during the empty
	// dataset's c=32 phase is written; empty: none is taken.
	cpuProfile string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "slotpay-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("slotpay-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.serverURL, "server", envOr("SLOTPAY_BENCH_SERVER", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server to create the bench databases on (its maintenance database)")
	fs.StringVar(&o.pgbench, "pgbench", "/usr/lib/postgresql/15/bin/pgbench", "pgbench binary")
	fs.IntVar(&o.events, "events", 4000, "unique checkout.session.completed events per concurrency level")
	fs.IntVar(&o.bookings, "bookings", 2000, "booking requests for distinct slots, and availability reads")
	fs.IntVar(&o.contended, "contended", 320, "booking requests for one contended slot")
	fs.BoolVar(&o.history, "history", true, "repeat the run over 1,000,000 ledger rows and 100,000 bookings")
	fs.BoolVar(&o.keep, "keep", false, "keep the bench databases afterwards")
	fs.StringVar(&o.logLevel, "log-level", "info", "the server's LOG_LEVEL (info is the production default)")
	fs.IntVar(&o.poolConns, "server-pool", 0, "the server's pool_max_conns in DATABASE_URL (0: slotpay's default, database.DefaultMaxConns: max(8, 2 × CPUs))")
	fs.StringVar(&o.serverParams, "server-params", "", "more query parameters for the server's DATABASE_URL, e.g. commit_delay=100&commit_siblings=2 (PostgreSQL session settings)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", filepath.Join(os.TempDir(), "slotpay-bench-c32.pprof"), "write the server's CPU profile during the empty database's c=32 phase here (METRICS_PPROF); empty: no profile")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// Other work on the machine skews every number; say how much there was.
	loadBefore := loadAverage()
	env, err := startEnvironment(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer env.close()

	datasets := []dataset{{name: "empty"}}
	if o.history {
		datasets = append(datasets, dataset{name: "1M events, 100k bookings", history: true})
	}
	var results []*result
	for _, ds := range datasets {
		r, err := env.measure(ctx, ds)
		if err != nil {
			return fmt.Errorf("%s: %w", ds.name, err)
		}
		results = append(results, r)
	}
	pool := "default"
	if o.poolConns > 0 {
		pool = strconv.Itoa(o.poolConns)
	}
	fmt.Fprintf(stdout, "\nslotpay-bench: load average before %s, after %s; server pool_max_conns %s, more server parameters %q", loadBefore, loadAverage(), pool, o.serverParams)
	fmt.Fprintf(stdout, "\nslotpay-bench: %d CPUs, GOMAXPROCS %d, %s; %d events per level, %d distinct and %d contended booking requests\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.DateOnly), o.events, o.bookings, o.contended)
	printTable(stdout, results)
	for _, r := range results {
		fmt.Fprintf(stdout, "slotpay-bench: headline (%s): webhook c=%d %.0f events/s ÷ minimal transaction %.0f tps = %.2f (target ≥ 0.70), p99 %s ms (target ≤ 50)\n",
			r.dataset.name, topConcurrency, r.unique[topConcurrency].perSecond(), r.minimal.tps,
			r.unique[topConcurrency].perSecond()/r.minimal.tps, ms(r.unique[topConcurrency].pct(0.99)))
	}
	return nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
