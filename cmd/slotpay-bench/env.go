package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/internal/database"
)

const webhookSecret = "whsec_bench"

// environment is what every dataset's run shares: the built server binary,
// stripe-mock and the PostgreSQL server.
type environment struct {
	o          options
	log        io.Writer
	tmp        string
	binary     string
	stripeMock *exec.Cmd
	stripeURL  string
	admin      *pgxpool.Pool
	dropped    []string
}

func startEnvironment(ctx context.Context, o options, log io.Writer) (*environment, error) {
	tmp, err := os.MkdirTemp("", "slotpay-bench-")
	if err != nil {
		return nil, err
	}
	e := &environment{o: o, log: log, tmp: tmp, binary: filepath.Join(tmp, "slotpay")}
	ok := false
	defer func() {
		if !ok {
			e.close()
		}
	}()

	fmt.Fprintln(log, "bench: building cmd/slotpay")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", e.binary, "./cmd/slotpay").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build cmd/slotpay (run from the repository root): %w\n%s", err, out)
	}
	if _, err := os.Stat(o.pgbench); err != nil {
		return nil, fmt.Errorf("pgbench: %w", err)
	}
	e.admin, err = pgxpool.New(ctx, o.serverURL)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", database.Redact(o.serverURL), err)
	}
	if err := e.admin.Ping(ctx); err != nil {
		return nil, fmt.Errorf("server %s: %w", database.Redact(o.serverURL), err)
	}
	if err := e.startStripeMock(ctx); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

func (e *environment) close() {
	if e.stripeMock != nil {
		_ = e.stripeMock.Process.Kill()
		_ = e.stripeMock.Wait()
	}
	if e.admin != nil {
		if !e.o.keep {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			for _, name := range e.dropped {
				_, _ = e.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			}
			cancel()
		}
		e.admin.Close()
	}
	_ = os.RemoveAll(e.tmp)
}

// startStripeMock runs the stripe-mock pinned by go.mod's tool directive.
// Paid completions never call Stripe; serve needs an API base all the same.
func (e *environment) startStripeMock(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "tool", "-n", "stripe-mock").Output()
	if err != nil {
		return fmt.Errorf("go tool -n stripe-mock: %w", err)
	}
	httpAddr, httpsAddr := freeAddr(), freeAddr()
	cmd := exec.Command(strings.TrimSpace(string(out)), "-http-addr", httpAddr, "-https-addr", httpsAddr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start stripe-mock: %w", err)
	}
	e.stripeMock, e.stripeURL = cmd, "http://"+httpAddr
	return waitFor(ctx, e.stripeURL+"/v1/charges", map[string]string{"Authorization": "Bearer sk_test_123"}, 30*time.Second)
}

// createDatabase makes a fresh, migrated database on the server.
func (e *environment) createDatabase(ctx context.Context, label string) (*pgxpool.Pool, string, error) {
	name := fmt.Sprintf("slotpay_bench_%s_%d", label, time.Now().Unix())
	if _, err := e.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, "", fmt.Errorf("create database %s: %w", name, err)
	}
	e.dropped = append(e.dropped, name)
	u, err := url.Parse(e.o.serverURL)
	if err != nil {
		return nil, "", err
	}
	u.Path = "/" + name
	dbURL := u.String()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, "", err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	if err := database.MigrateUp(ctx, pool); err != nil {
		pool.Close()
		return nil, "", err
	}
	return pool, dbURL, nil
}

// server is one `slotpay serve` child process.
type server struct {
	cmd    *exec.Cmd
	base   string
	pprof  string // the METRICS_ADDR listener with pprof, when profiling
	stderr *strings.Builder
}

func (e *environment) startServer(ctx context.Context, dbURL string, ds dataset) (*server, error) {
	addr := freeAddr()
	// Only the empty dataset's c=32 run is profiled.
	var pprofBase string
	if e.o.cpuProfile != "" && !ds.history {
		pprofBase = "http://" + freeAddr()
	}
	if e.o.poolConns > 0 || e.o.serverParams != "" {
		u, err := url.Parse(dbURL)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		if e.o.poolConns > 0 {
			q.Set("pool_max_conns", strconv.Itoa(e.o.poolConns))
		}
		more, err := url.ParseQuery(e.o.serverParams)
		if err != nil {
			return nil, fmt.Errorf("-server-params: %w", err)
		}
		for k, v := range more {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		dbURL = u.String()
	}
	cmd := exec.Command(e.binary, "serve")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + dbURL,
		"STRIPE_API_BASE=" + e.stripeURL,
		"STRIPE_WEBHOOK_SECRET=" + webhookSecret,
		"LISTEN_ADDR=" + addr,
		"PUBLIC_BASE_URL=http://" + addr,
		"LOG_LEVEL=" + e.o.logLevel,
		// The bench plays a proxy in front of many customers (see
		// bookingRequest): without this, every booking would come from
		// 127.0.0.1 and meet the per-client rate limit after 60.
		"TRUSTED_PROXIES=127.0.0.1/32",
	}
	if pprofBase != "" {
		cmd.Env = append(cmd.Env, "METRICS_ADDR="+strings.TrimPrefix(pprofBase, "http://"), "METRICS_PPROF=true")
	}
	// The JSON logs go to /dev/null: written, as in production, but not
	// kept.
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, base: "http://" + addr, pprof: pprofBase, stderr: stderr}
	if err := waitFor(ctx, s.base+"/readyz", nil, 15*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("serve: %w\n%s", err, stderr)
	}
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// peakRSS is the server's high-water resident set (VmHWM), in bytes.
func (s *server) peakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func waitFor(ctx context.Context, url string, header map[string]string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
