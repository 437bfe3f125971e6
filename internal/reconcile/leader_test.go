package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

// lapsedWithSessions holds n slots with a Checkout Session each, and lapses
// them.
func (b *testBundle) lapsedWithSessions(t *testing.T, firstHour, n int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for hour := firstHour; hour < firstHour+n; hour++ {
		bk, _ := b.withSession(t, hour)
		b.lapse(t, bk.ID)
		ids = append(ids, bk.ID)
	}
	return ids
}

func (b *testBundle) waitExpired(t *testing.T, ids []uuid.UUID) {
	t.Helper()
	testkit.WaitFor(t, "every lapsed hold expired", func() bool {
		return b.db.Count(t, "SELECT count(*) FROM bookings WHERE id = ANY($1) AND status = 'expired'", ids) == len(ids)
	})
	for _, id := range ids {
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'expired'", id))
	}
}

func (b *testBundle) leader(t *testing.T) string {
	t.Helper()
	var id string
	err := b.db.Pool.QueryRow(t.Context(), "SELECT leader_id FROM river_leader WHERE expires_at > now()").Scan(&id)
	if err != nil {
		return ""
	}
	return id
}

// TestReconcile_PeriodicOnTwoInstances_OneActs: two instances run the
// periodic reconciler over one database; River elects one leader, which
// inserts the passes, and each pass is worked by one instance: every lapsed
// session is expired at Stripe once.
func TestReconcile_PeriodicOnTwoInstances_OneActs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.stop(t) // only the two periodic instances work and lead
	ids := b.lapsedWithSessions(t, 9, 4)

	b.instance(t, "slotpay-a", time.Second)
	b.instance(t, "slotpay-b", time.Second)
	b.waitExpired(t, ids)

	leader := b.leader(t)
	require.Contains(t, []string{"slotpay-a", "slotpay-b"}, leader)
	require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM river_leader"))
	for _, s := range b.stripe.Sessions() {
		require.Equal(t, 1, b.stripe.Calls("POST", "/v1/checkout/sessions/"+s.ID+"/expire"), s.ID)
	}
	// Passes never overlapped: each ran once, on one instance.
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND cardinality(attempted_by) > 1"))
	require.LessOrEqual(t, b.db.Count(t, "SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND state = 'running'"), 1)
}

// TestReconcile_LeaderConnectionKilled_WorkGoesOn: the leader's database
// connections are killed while a pass is at Stripe. Nothing the pass relied
// on was tied to a connection: it goes on with fresh ones (or the next pass
// does its work), every lapsed hold is expired once, and when the leader
// then goes away, the other instance takes over and reconciles new lapses.
func TestReconcile_LeaderConnectionKilled_WorkGoesOn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.stop(t) // only the two periodic instances work and lead
	ids := b.lapsedWithSessions(t, 9, 4)
	reached, release := b.stripe.Hold("/v1/checkout/sessions/")

	instances := map[string]interface{ Stop(context.Context) error }{
		"slotpay-a": b.instance(t, "slotpay-a", time.Second),
		"slotpay-b": b.instance(t, "slotpay-b", time.Second),
	}
	<-reached // a pass is at Stripe
	testkit.WaitFor(t, "a leader", func() bool { return b.leader(t) != "" })
	leader := b.leader(t)
	killed := b.db.Count(t, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", leader)
	require.Positive(t, killed)
	release()
	b.waitExpired(t, ids)

	// The leader goes away: the other instance is elected and reconciles.
	stopCtx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, instances[leader].Stop(stopCtx))
	testkit.WaitFor(t, "another leader", func() bool {
		l := b.leader(t)
		return l != "" && l != leader
	})
	other := b.leader(t)
	more := b.lapsedWithSessions(t, 15, 2)
	b.waitExpired(t, more)
	// River marks a job completed shortly after its work returns.
	testkit.WaitFor(t, "a pass completed by the new leader's instance", func() bool {
		return b.db.Count(t, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND state = 'completed'
			AND attempted_by[cardinality(attempted_by)] = $1`, other) > 0
	})
}

// stop stops b's own instance, so that the instances a test starts are the
// only ones working jobs and running for leader.
func (b *testBundle) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, b.app.Stop(ctx))
}
