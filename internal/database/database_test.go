package database_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/testkit"
)

// TestOpen_PoolSize: without pool_max_conns in DATABASE_URL the pool has
// slotpay's default, sized for requests and River together; with it, the
// operator's size.
func TestOpen_PoolSize(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	for _, tc := range []struct {
		url  string
		want int32
	}{
		{tdb.URL, database.DefaultMaxConns()},
		{tdb.URL + "&pool_max_conns=3", 3},
	} {
		pool, err := database.Open(t.Context(), tc.url)
		require.NoError(t, err)
		require.Equal(t, tc.want, pool.Config().MaxConns, database.Redact(tc.url))
		pool.Close()
	}
	require.GreaterOrEqual(t, database.DefaultMaxConns(), int32(8))
}
