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
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	sqlfiles "github.com/slotpay/slotpay/sql"
)

// Open connects a pool and checks that the database answers.
func Open(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
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

// Redact drops the password from a database URL so that it can be logged.
func Redact(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
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

// SQLSTATE codes slotpay acts on.
const (
	codeUniqueViolation    = "23505"
	codeExclusionViolation = "23P01"
	codeDeadlockDetected   = "40P01"
)

// IsDeadlock reports whether PostgreSQL aborted the transaction to break a
// deadlock; running it again is safe and usually succeeds.
func IsDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == codeDeadlockDetected
}

// IsOverlap reports whether err is the bookings_no_overlap exclusion
// constraint refusing a second slot-holding booking.
func IsOverlap(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == codeExclusionViolation
}

// IsUniqueViolation reports whether err is a unique constraint refusing a row.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation
}

// IsDataException reports whether PostgreSQL refused a value itself (SQLSTATE
// class 22: a byte sequence that is not UTF-8, a NUL in text or jsonb, a
// timestamp out of range). Retrying the same value fails the same way.
func IsDataException(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}

// IsNotFound reports whether err says a query found no row.
func IsNotFound(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
