package payment_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/testkit"
)

// TestSerializeTakesTheSessionLockFirst: PaymentEventSerialize takes both
// serialising locks in one statement, the session's before the payment
// intent's, so no two transactions wait for each other's (SPEC §2.1). While
// another transaction holds the intent's lock, a transaction serialising the
// session and the intent holds the session's lock and waits for the
// intent's; a key left out takes no lock.
func TestSerializeTakesTheSessionLockFirst(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	ctx := t.Context()
	session, intent := testkit.RandomID("cs_test_"), testkit.RandomID("pi_test_")
	serialize := func(tx pgx.Tx, session, intent *string) error {
		return database.New(tx).PaymentEventSerialize(ctx, db.PaymentEventSerializeParams{CheckoutSessionID: session, PaymentIntentID: intent})
	}

	holder, err := tdb.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	require.NoError(t, serialize(holder, nil, &intent))

	waiter, err := tdb.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = waiter.Rollback(ctx) }()
	var pid int
	require.NoError(t, waiter.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	done := make(chan error, 1)
	go func() { done <- serialize(waiter, &session, &intent) }()

	// The waiter's advisory locks, as PostgreSQL reports them: the
	// two-key form's first key is classid.
	locks := func(granted bool) (keys []int) {
		rows, err := tdb.Pool.Query(ctx, "SELECT classid::int FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND granted = $2 ORDER BY 1", pid, granted)
		require.NoError(t, err)
		keys, err = pgx.CollectRows(rows, pgx.RowTo[int])
		require.NoError(t, err)
		return keys
	}
	require.Eventually(t, func() bool { return len(locks(false)) == 1 }, 10*time.Second, 5*time.Millisecond, "the waiter waits for the intent's lock")
	require.Equal(t, []int{1}, locks(true), "holding the session's lock (key 1)")
	require.Equal(t, []int{2}, locks(false), "waiting for the intent's (key 2)")

	require.NoError(t, holder.Rollback(ctx))
	require.NoError(t, <-done)
	require.Equal(t, []int{1, 2}, locks(true))
}
