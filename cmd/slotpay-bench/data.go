package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/internal/testkit"
)

// Resources the bench books on. All are UTC, open 00:00–23:00 with 60-minute
// slots, no notice and a two-year horizon, so that any whole hour of the
// coming days is a valid slot.
const (
	eventsResource    = "bench-events"    // bookings the webhook events confirm
	pgbenchResource   = "bench-pgbench"   // bookings pgbench's script confirms
	minimalResource   = "bench-minimal"   // bookings pgbench's minimal transaction confirms
	contendedResource = "bench-contended" // one slot everyone wants
	availResource     = "bench-avail"     // the day availability is read for
	distinctResources = 40                // bench-distinct-N: one booking per slot
)

func seedResources(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `
		INSERT INTO resources (id, slug, name, timezone, currency, unit_amount, slot_minutes,
		                       min_slots, max_slots, open_time, close_time, min_notice_minutes, horizon_days)
		SELECT gen_random_uuid(), slug, slug, 'UTC', 'eur', 4500, 60, 1, 4, '00:00', '23:00', 0, 730
		FROM unnest($1::text[] || ARRAY(SELECT 'bench-distinct-' || g FROM generate_series(1, $2::int) g)) AS slug`,
		[]string{eventsResource, pgbenchResource, minimalResource, contendedResource, availResource}, distinctResources)
	return err
}

// seedPendingBookings creates n pending_payment bookings on resource, each
// with its Checkout Session (sessionPrefix + 1…n) as checkout would have
// linked it, on consecutive hours from first, far from anything else.
func seedPendingBookings(ctx context.Context, pool *pgxpool.Pool, resource, sessionPrefix string, first, n int) error {
	_, err := pool.Exec(ctx, `
		INSERT INTO bookings (id, resource_id, customer_email, customer_name, starts_at, ends_at, status,
		                      amount_total, currency, hold_expires_at, checkout_session_id)
		SELECT gen_random_uuid(), r.id, 'bench' || g || '@example.com', 'Bench ' || g,
		       timestamptz '2031-01-01' + g * interval '1 hour', timestamptz '2031-01-01' + (g + 1) * interval '1 hour',
		       'pending_payment', 4500, 'eur', now() + interval '1 day', $2 || g
		FROM resources r, generate_series($3::int, $3::int + $4::int - 1) g
		WHERE r.slug = $1`, resource, sessionPrefix, first, n)
	return err
}

// loadHistory gives the database a past: 100,000 bookings over 100 resources
// (availability's own included), their 190,000 status changes, and
// 1,000,000 ledger rows of which 100,000 are the completions that confirmed
// them. Set-based, so it takes seconds, not hours.
func loadHistory(ctx context.Context, pool *pgxpool.Pool) error {
	for _, sql := range []string{
		`INSERT INTO resources (id, slug, name, timezone, currency, unit_amount, slot_minutes,
		                        min_slots, max_slots, open_time, close_time, min_notice_minutes, horizon_days)
		 SELECT gen_random_uuid(), 'history-' || g, 'History ' || g, 'UTC', 'eur', 4500, 60, 1, 4, '00:00', '23:00', 0, 730
		 FROM generate_series(1, 99) g`,
		// Booking g is md5('booking' || g)::uuid, so the ledger rows below
		// can name their booking without a join.
		`INSERT INTO bookings (id, resource_id, customer_email, customer_name, starts_at, ends_at, status,
		                       amount_total, currency, hold_expires_at, checkout_session_id, payment_intent_id,
		                       created_at, updated_at)
		 SELECT md5('booking' || g)::uuid, rs.ids[1 + g % 100], 'customer' || g || '@example.com', 'Customer ' || g,
		        timestamptz '2025-01-01' + (g / 100) * interval '1 hour', timestamptz '2025-01-01' + (g / 100 + 1) * interval '1 hour',
		        CASE WHEN g % 10 = 0 THEN 'refunded' ELSE 'confirmed' END, 4500, 'eur',
		        timestamptz '2025-01-01', 'cs_history_' || g, 'pi_history_' || g,
		        timestamptz '2024-12-01', timestamptz '2024-12-01'
		 FROM generate_series(1, 100000) g,
		      (SELECT array_agg(id ORDER BY slug) AS ids FROM resources WHERE slug LIKE 'history-%' OR slug = 'bench-avail') rs`,
		`INSERT INTO payment_events (stripe_event_id, type, api_version, livemode, stripe_created_at, received_at,
		                             source, booking_id, checkout_session_id, payment_intent_id, outcome, detail, payload)
		 SELECT 'evt_history_' || g,
		        t.type, '2023-10-16', false,
		        timestamptz '2024-12-01' + g * interval '1 second', timestamptz '2024-12-01' + g * interval '1 second',
		        'webhook', md5('booking' || b)::uuid, 'cs_history_' || b, 'pi_history_' || b,
		        CASE WHEN g <= 100000 THEN 'applied' ELSE 'ignored' END, '',
		        jsonb_build_object('id', 'evt_history_' || g, 'object', 'event', 'type', t.type, 'api_version', '2023-10-16',
		            'created', 1733011200 + g, 'livemode', false, 'pending_webhooks', 1,
		            'data', jsonb_build_object('object', jsonb_build_object(
		                'id', 'cs_history_' || b, 'object', 'checkout.session', 'amount_total', 4500, 'currency', 'eur',
		                'client_reference_id', md5('booking' || b)::uuid, 'payment_intent', 'pi_history_' || b,
		                'payment_status', 'paid', 'status', 'complete', 'mode', 'payment')))
		 FROM generate_series(1, 1000000) g,
		      LATERAL (SELECT 1 + (g - 1) % 100000 AS b) bb,
		      LATERAL (SELECT CASE WHEN g <= 100000 THEN 'checkout.session.completed'
		                           WHEN g % 3 = 0 THEN 'charge.succeeded'
		                           WHEN g % 3 = 1 THEN 'payment_intent.succeeded'
		                           ELSE 'payment_intent.created' END AS type) t`,
		`INSERT INTO booking_status_changes (booking_id, from_status, to_status, cause, stripe_event_id, at)
		 SELECT md5('booking' || g)::uuid, NULL, 'pending_payment', 'created', NULL, timestamptz '2024-12-01'
		 FROM generate_series(1, 100000) g
		 UNION ALL
		 SELECT md5('booking' || g)::uuid, 'pending_payment', 'confirmed', 'checkout.session.completed',
		        'evt_history_' || g, timestamptz '2024-12-01'
		 FROM generate_series(1, 100000) g
		 WHERE g % 10 <> 0`,
		// Those status changes queued their notifications (migration
		// 00012's trigger); in a past they were sent long ago, and River
		// has cleaned their jobs away.
		`DELETE FROM river_job WHERE kind = 'notify'`,
		`VACUUM ANALYZE`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("load history: %w", err)
		}
	}
	return nil
}

// seedAvailabilityDay books a few slots of the day availability is read for,
// so the answer has gaps to compute.
func seedAvailabilityDay(ctx context.Context, pool *pgxpool.Pool, day time.Time) error {
	_, err := pool.Exec(ctx, `
		INSERT INTO bookings (id, resource_id, customer_email, customer_name, starts_at, ends_at, status,
		                      amount_total, currency, hold_expires_at)
		SELECT gen_random_uuid(), r.id, 'avail@example.com', 'Avail', $2::timestamptz + h * interval '1 hour',
		       $2::timestamptz + (h + 1) * interval '1 hour', 'confirmed', 4500, 'eur', now()
		FROM resources r, unnest(ARRAY[1, 2, 5, 9, 10, 15, 20]) h
		WHERE r.slug = $1`, availResource, day)
	return err
}

func resourceID(ctx context.Context, pool *pgxpool.Pool, slug string) (uuid.UUID, error) {
	var id uuid.UUID
	err := pool.QueryRow(ctx, "SELECT id FROM resources WHERE slug = $1", slug).Scan(&id)
	return id, err
}

// completions returns n signed-ready checkout.session.completed events for
// the bookings of sessionPrefix first…first+n-1, built by testkit exactly
// as the tests build them: Stripe's own fixture object with the fields
// slotpay reads set.
func completions(ctx context.Context, pool *pgxpool.Pool, sessionPrefix string, first, n int) ([][]byte, error) {
	rows, err := pool.Query(ctx, `
		SELECT id::text, checkout_session_id FROM bookings
		WHERE checkout_session_id = ANY (SELECT $1 || g FROM generate_series($2::int, $2::int + $3::int - 1) g)
		ORDER BY starts_at`, sessionPrefix, first, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	tb := &fixtureTB{}
	for rows.Next() {
		var id, session string
		if err := rows.Scan(&id, &session); err != nil {
			return nil, err
		}
		out = append(out, testkit.CheckoutSessionCompleted(session, id, 4500, "eur").JSON(tb))
		if tb.err != nil {
			return nil, tb.err
		}
	}
	return out, rows.Err()
}

// fixtureTB lets the bench use testkit's event builder, which reports
// failures through a testing.TB. Only Helper and Fatalf are called by it;
// any other method would panic on the nil embedded interface, loudly.
type fixtureTB struct {
	testing.TB
	err error
}

func (*fixtureTB) Helper() {}

func (t *fixtureTB) Fatalf(format string, args ...any) {
	if t.err == nil {
		t.err = fmt.Errorf(format, args...)
	}
}
