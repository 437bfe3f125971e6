package testkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/internal/database"
	sqlfiles "github.com/slotpay/slotpay/sql"
)

// TestDB is a database of its own for one test, already migrated.
type TestDB struct {
	Pool *pgxpool.Pool
	// URL reaches the same database, for code under test that opens its own
	// pool (e.g. through database.Open).
	URL  string
	Name string
}

const (
	defaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	testDBPrefix     = "slotpay_test_"
	// Test binaries of several packages run at once on a small machine, each
	// with many parallel tests: keep every pool small.
	testPoolMaxConns = 10
	// Any advisory lock key works as long as every slotpay test binary uses
	// the same one.
	templateLockKey = 0x5107_9a7
	// A test database this old belongs to a run that crashed before its
	// cleanup; no test lives that long (go test times out after 10 minutes).
	leftoverAge = time.Hour
)

// NewDatabase returns a fresh database for t, copied from a template that
// holds the current migrations, and drops it when t ends. Copying a template
// takes milliseconds, so every test gets real PostgreSQL and can run in
// parallel.
func NewDatabase(t testing.TB) TestDB {
	t.Helper()
	ctx := t.Context()

	admin, err := adminPool()
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	template, err := ensureTemplate()
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}

	// The creation time in the name lets a later run recognise leftovers.
	name := fmt.Sprintf("%s%d_%016x", testDBPrefix, time.Now().Unix(), rand.Uint64())
	_, err = admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(template))
	if err != nil {
		t.Fatalf("testkit: create database %s from %s: %v", name, template, err)
	}
	t.Cleanup(func() { dropDatabase(t, admin, name) })

	dbURL, err := databaseURL(serverURL(), name)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	pool, err := openPool(ctx, dbURL, testPoolMaxConns)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	// Registered after the drop, so it runs before it: cleanups are LIFO.
	t.Cleanup(pool.Close)

	return TestDB{Pool: pool, URL: dbURL, Name: name}
}

// Exec runs a statement, failing the test on error.
func (d TestDB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := d.Pool.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("testkit: exec %q: %v", sql, err)
	}
}

// Count runs a query returning one number (SELECT count(*) …) and returns it.
func (d TestDB) Count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int64
	if err := d.Pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("testkit: count %q: %v", sql, err)
	}
	return int(n)
}

func dropDatabase(t testing.TB, admin *pgxpool.Pool, name string) {
	// t.Context() is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		t.Errorf("testkit: drop database %s: %v", name, err)
	}
}

func serverURL() string {
	if u := os.Getenv("SLOTPAY_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultServerURL
}

// databaseURL returns server with its database replaced by name.
func databaseURL(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("SLOTPAY_TEST_DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func openPool(ctx context.Context, dbURL string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", database.Redact(dbURL), err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", database.Redact(dbURL), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect %s: %w", database.Redact(dbURL), err)
	}
	return pool, nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// adminPool is this process's connection to the server's maintenance
// database, which creates and drops the test databases.
var adminPool = sync.OnceValues(func() (*pgxpool.Pool, error) {
	return openPool(context.Background(), serverURL(), 2)
})

func closeAdminPool() {
	if pool, err := adminPool(); err == nil {
		pool.Close()
	}
}

// ensureTemplate is done once per test binary; its result, good or bad,
// serves every test.
var ensureTemplate = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := adminPool()
	if err != nil {
		return "", err
	}
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "slotpay_template_" + hash
	if err := createTemplate(ctx, admin, name); err != nil {
		return "", fmt.Errorf("template database %s: %w", name, err)
	}
	dropLeftovers(ctx, admin)
	return name, nil
})

// migrationsHash names the schema: any change to a migration file, or a River
// release with new migrations, yields a new template instead of reusing a
// stale one.
func migrationsHash() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "river\x00%d\x00", database.RiverVersion())
	// WalkDir visits in lexical order, so the hash is stable.
	err := fs.WalkDir(sqlfiles.Migrations, "migrations", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sqlfiles.Migrations, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// createTemplate makes the template database name unless it exists. Test
// binaries of several packages race here, so the check and the creation
// happen under an advisory lock shared by all of them. The schema is migrated
// under a temporary name and renamed only when complete: a run that crashes
// halfway leaves a temporary database, which the next run drops, never a
// half-migrated template that would be cloned.
func createTemplate(ctx context.Context, admin *pgxpool.Pool, name string) error {
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return err
	}
	// Advisory locks belong to the session: a crashed holder's lock is
	// released with its connection, and ours must not go back to the pool.
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLockKey) //nolint:errcheck // released with the session anyway

	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil || exists {
		return err
	}

	tmp := name + "_partial"
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + ident(tmp) + " WITH (FORCE)",
		"CREATE DATABASE " + ident(tmp),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	if err := migrate(ctx, tmp); err != nil {
		return err
	}
	// ALLOW_CONNECTIONS false guarantees nobody is connected to the template:
	// PostgreSQL refuses to copy a database that has sessions.
	for _, sql := range []string{
		"ALTER DATABASE " + ident(tmp) + " RENAME TO " + ident(name),
		"ALTER DATABASE " + ident(name) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

func migrate(ctx context.Context, name string) error {
	dbURL, err := databaseURL(serverURL(), name)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, dbURL, 2)
	if err != nil {
		return err
	}
	// Closed before the rename, which needs the database to have no sessions.
	defer pool.Close()
	return database.MigrateUp(ctx, pool)
}

// dropLeftovers drops test databases of runs that crashed before their
// cleanup. Best effort: a failure here must not fail a test.
func dropLeftovers(ctx context.Context, admin *pgxpool.Pool) {
	rows, err := admin.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", testDBPrefix)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-leftoverAge).Unix()
	for _, name := range names {
		created, _, _ := strings.Cut(strings.TrimPrefix(name, testDBPrefix), "_")
		if sec, err := strconv.ParseInt(created, 10, 64); err == nil && sec < cutoff {
			admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)") //nolint:errcheck // best effort
		}
	}
}
