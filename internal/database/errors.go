package database

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
)

// New returns slotpay's queries over pool, a transaction or a connection,
// with every driver error they return passed through Interpret: no caller
// turns pgx errors into domain errors itself, and the HTTP layer only looks
// codes up (river's interpretError, in the executor).
func New(tx db.DBTX) *db.Queries { return db.New(interpreting{tx}) }

// Interpret turns the driver errors slotpay gives a meaning into apperr
// errors that keep the driver's error as their cause, so that the Is…
// functions below still see it: no row, a unique or exclusion constraint
// refusing a row, and a value PostgreSQL cannot store. Callers with a
// better message for the client (which resource is missing, which slug is
// taken) check with the Is… functions and say so. Any other error is
// returned as it is.
func Interpret(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return apperr.Wrap(err, apperr.NotFound, "not found")
	case !errors.As(err, &pgErr):
		return err
	case pgErr.Code == codeExclusionViolation:
		return apperr.Wrap(err, apperr.SlotUnavailable, "the slot overlaps another booking")
	case pgErr.Code == codeUniqueViolation:
		return apperr.Wrap(err, apperr.InvalidState, "such a record exists already")
	case strings.HasPrefix(pgErr.Code, classDataException):
		// A NUL in a name, invalid UTF-8, a date out of range: the value
		// is at fault, and storing it again fails the same way.
		return apperr.Wrap(err, apperr.InvalidRequest, "the request holds a value that cannot be stored")
	}
	return err
}

// SQLSTATE codes slotpay acts on.
const (
	codeUniqueViolation    = "23505"
	codeExclusionViolation = "23P01"
	codeDeadlockDetected   = "40P01"
	classDataException     = "22"
	// codeStatusChanged is slotpay's own (migration 00014): a transition
	// found another status than its caller read.
	codeStatusChanged = "SP001"
)

// IsStatusChanged reports whether BookingTransition found the booking in
// another status than its caller read (booking.ErrStatusChanged).
func IsStatusChanged(err error) bool { return hasCode(err, codeStatusChanged) }

// IsDeadlock reports whether PostgreSQL aborted the transaction to break a
// deadlock; running it again is safe and usually succeeds.
func IsDeadlock(err error) bool { return hasCode(err, codeDeadlockDetected) }

// IsOverlap reports whether err is the bookings_no_overlap exclusion
// constraint refusing a second slot-holding booking.
func IsOverlap(err error) bool { return hasCode(err, codeExclusionViolation) }

// IsUniqueViolation reports whether err is a unique constraint refusing a row.
func IsUniqueViolation(err error) bool { return hasCode(err, codeUniqueViolation) }

// IsDataException reports whether PostgreSQL refused a value itself (SQLSTATE
// class 22). Retrying the same value fails the same way.
func IsDataException(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, classDataException)
}

// IsNotFound reports whether err says a query found no row.
func IsNotFound(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

func hasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// interpreting is a db.DBTX whose every result passes through Interpret.
type interpreting struct{ tx db.DBTX }

func (i interpreting) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := i.tx.Exec(ctx, sql, args...)
	return tag, Interpret(err)
}

func (i interpreting) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := i.tx.Query(ctx, sql, args...)
	if err != nil {
		return r, Interpret(err)
	}
	return interpretedRows{r}, nil
}

func (i interpreting) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return interpretedRow{i.tx.QueryRow(ctx, sql, args...)}
}

type interpretedRow struct{ pgx.Row }

func (r interpretedRow) Scan(dest ...any) error { return Interpret(r.Row.Scan(dest...)) }

type interpretedRows struct{ pgx.Rows }

func (r interpretedRows) Err() error { return Interpret(r.Rows.Err()) }

func (r interpretedRows) Scan(dest ...any) error { return Interpret(r.Rows.Scan(dest...)) }
