// Package database opens slotpay's PostgreSQL pool, migrates its schema and
// turns driver errors into the few facts the rest of the code acts on.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	sqlfiles "github.com/slotpay/slotpay/sql"
)

// DefaultMaxConns is the pool's size when DATABASE_URL sets no
// pool_max_conns: twice pgxpool's own default, max(4, CPUs). One pool
// serves the HTTP requests and River, which keeps one connection for LISTEN
// and lets up to ten jobs run at once; a webhook holds its connection while
// PostgreSQL flushes its commit, so more connections than cores let commits
// share a flush. Measured in docs/BENCHMARKS.md (pool size): on 2 cores,
// 8 connections confirm about 1.15 times as many events a second as 4, at a
// lower p99.
func DefaultMaxConns() int32 { return int32(max(8, 2*runtime.NumCPU())) }

// Open connects a pool and checks that the database answers.
func Open(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's message quotes the whole string, redacting only some of
		// its secrets (not ?password= or sslpassword): never pass it on.
		return nil, fmt.Errorf("DATABASE_URL: cannot read the connection string %s", Redact(databaseURL))
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("DATABASE_URL: cannot reach the database at %s: %w", Redact(databaseURL), err)
	}
	return pool, nil
}

// Migrator returns a goose provider over the embedded migrations. Close the
// returned *sql.DB when done.
func Migrator(pool *pgxpool.Pool) (*goose.Provider, *sql.DB, error) {
	db := stdlib.OpenDBFromPool(pool)
	migrations, err := fs.Sub(sqlfiles.Migrations, "migrations")
	if err != nil {
		return nil, nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, db, nil
}

// MigrateUp applies every pending migration: slotpay's own (goose), then
// River's job tables (rivermigrate), which live beside them in the same
// database so that a job can be inserted in the transaction deciding it.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool) error {
	p, db, err := Migrator(pool)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	if _, err := RiverMigrateUp(ctx, pool); err != nil {
		return err
	}
	return nil
}

// RiverMigrator returns River's migrator for its tables in pool's database.
func RiverMigrator(pool *pgxpool.Pool) (*rivermigrate.Migrator[pgx.Tx], error) {
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	return m, nil
}

// RiverMigrateUp applies River's pending migrations and returns the versions
// it applied.
func RiverMigrateUp(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	m, err := RiverMigrator(pool)
	if err != nil {
		return nil, err
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate river up: %w", err)
	}
	versions := make([]int, 0, len(res.Versions))
	for _, v := range res.Versions {
		versions = append(versions, v.Version)
	}
	return versions, nil
}

// RiverVersion is the latest River migration this binary embeds; its
// schema's name in the test template depends on it.
func RiverVersion() int {
	m, err := RiverMigrator(nil)
	if err != nil {
		return 0
	}
	all := m.AllVersions()
	return all[len(all)-1].Version
}

// CheckSchema reports an error unless the database is at the latest migration
// embedded in this binary, River's included.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	p, db, err := Migrator(pool)
	if err != nil {
		return err
	}
	defer db.Close()
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if pending {
		return errors.New("migrations are pending")
	}
	m, err := RiverMigrator(pool)
	if err != nil {
		return err
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("read river schema version: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("river migrations are pending: %s", strings.Join(res.Messages, "; "))
	}
	return nil
}
