package database

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/slotpay/slotpay/gen/db"
)

// Flight is statements sent to PostgreSQL together and answered together:
// one network round trip for all of them (pgx's pipeline, pgx.Batch),
// instead of one each. Statements are the generated queries of gen/db, so
// a flight runs exactly the SQL that sql/queries holds.
//
// PostgreSQL runs a flight's statements in order and, after the first that
// fails, none of the rest until the flight's end: a COMMIT queued last
// commits only if every statement before it succeeded.
type Flight struct{ batch pgx.Batch }

// errRecorded is what a call sees from its statement while it is being
// recorded: the answer comes when the flight is sent.
var errRecorded = errors.New("statement recorded for a flight; its answer comes when the flight is sent")

// Begin makes the flight's first statement the BEGIN of a transaction,
// saving the round trip of a BEGIN of its own (pgx.Batch.BeginTx). It must
// come before anything is queued.
func (f *Flight) Begin() { f.batch.BeginTx(pgx.TxOptions{}) }

// Queue adds the one statement that call runs through q. call runs twice:
// now, to record the statement and its arguments (whatever it assigns is
// overwritten later), and when the flight is answered, against that
// statement's answer, so that what it assigns then is the statement's
// result. It must run exactly one statement, assign only, and return the
// statement's error (wrapped or not), or nil for an answer it accepts (a
// missing row it expects, say): any other error ends the flight's reading.
func (f *Flight) Queue(call func(q *db.Queries) error) {
	rec := &recorder{}
	err := call(New(rec))
	if rec.n != 1 || (err != nil && !errors.Is(err, errRecorded)) {
		// A programming error: the call does not fit a flight.
		panic(fmt.Sprintf("database.Flight: a queued call ran %d statements (want 1) and returned %v", rec.n, err))
	}
	qq := f.batch.Queue(rec.sql, rec.args...)
	switch rec.kind {
	case kindExec:
		qq.Exec(func(tag pgconn.CommandTag) error { return call(New(answer{tag: tag})) })
	case kindQuery:
		qq.Query(func(rows pgx.Rows) error { return call(New(answer{rows: rows})) })
	case kindQueryRow:
		qq.QueryRow(func(row pgx.Row) error { return call(New(answer{row: row})) })
	}
}

// Commit queues the COMMIT of the flight's transaction, last. Sending
// the flight then returns only once the transaction is durable, or an
// error: ErrTxCommitRollback when PostgreSQL rolled it back instead.
func (f *Flight) Commit() {
	f.batch.Queue("commit").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	})
}

// Len is the number of statements queued.
func (f *Flight) Len() int { return f.batch.Len() }

// Sender is what a flight is sent on: a connection, or a transaction.
type Sender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Send sends the flight on s and reads every answer, running the queued
// calls against theirs. When the flight began a transaction, it returns
// that transaction (also on error, if it was begun: roll it back).
func (f *Flight) Send(ctx context.Context, s Sender) (pgx.Tx, error) {
	br := s.SendBatch(ctx, &f.batch)
	tx := br.Tx()
	return tx, br.Close()
}

type kind int

const (
	kindExec kind = iota + 1
	kindQuery
	kindQueryRow
)

// recorder is a db.DBTX that keeps the statement it is given instead of
// running it.
type recorder struct {
	n    int
	kind kind
	sql  string
	args []any
}

func (r *recorder) record(k kind, sql string, args []any) {
	r.n++
	r.kind, r.sql, r.args = k, sql, args
}

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.record(kindExec, sql, args)
	return pgconn.CommandTag{}, nil
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.record(kindQuery, sql, args)
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.record(kindQueryRow, sql, args)
	return recordedRow{}
}

type recordedRow struct{}

func (recordedRow) Scan(...any) error { return errRecorded }

// answer is a db.DBTX that returns a statement's answer from a flight, for
// the generated code to read as if it had run the statement itself.
type answer struct {
	tag  pgconn.CommandTag
	rows pgx.Rows
	row  pgx.Row
}

func (a answer) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return a.tag, nil
}

func (a answer) Query(context.Context, string, ...any) (pgx.Rows, error) { return a.rows, nil }

func (a answer) QueryRow(context.Context, string, ...any) pgx.Row { return a.row }
