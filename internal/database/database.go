// Package database opens slotpay's PostgreSQL pool, migrates its schema and
// turns driver errors into the few facts the rest of the code acts on.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	sqlfiles "github.com/slotpay/slotpay/sql"
)

// Open connects a pool and checks that the database answers.
func Open(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's message quotes the whole string, redacting only some of
		// its secrets (not ?password= or sslpassword): never pass it on.
		return nil, fmt.Errorf("DATABASE_URL: cannot read the connection string %s", Redact(databaseURL))
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

// MigrateUp applies every pending migration.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool) error {
	p, db, err := Migrator(pool)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// CheckSchema reports an error unless the database is at the latest migration
// embedded in this binary.
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
