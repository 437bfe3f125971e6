-- name: BookingInsert :one
INSERT INTO bookings (
    id, resource_id, customer_email, customer_name, starts_at, ends_at,
    status, amount_total, currency, hold_expires_at
) VALUES (
    @id, @resource_id, @customer_email, @customer_name, @starts_at, @ends_at,
    'pending_payment', @amount_total, @currency, @hold_expires_at
)
RETURNING *;

-- name: BookingGetByID :one
SELECT * FROM bookings WHERE id = $1;

-- name: BookingGetByIDForUpdate :one
SELECT * FROM bookings WHERE id = $1 FOR UPDATE;

-- name: BookingLockForSessionEvent :one
-- Finds and locks the booking a Checkout Session event concerns: the one
-- holding the session, else the one slotpay named in client_reference_id /
-- metadata.booking_id (the webhook can overtake the checkout response that
-- stores the session).
SELECT * FROM bookings
WHERE id = COALESCE(
    (SELECT s.id FROM bookings s WHERE s.checkout_session_id = @checkout_session_id::text),
    sqlc.narg(reference_id)::uuid)
FOR UPDATE;

-- name: BookingLockForPaymentIntent :one
SELECT * FROM bookings WHERE payment_intent_id = $1 FOR UPDATE;

-- name: BookingExpireLapsedHoldsOverlapping :many
-- Releases holds that lapsed before any Checkout Session was created for them:
-- nobody can pay them, so they must not block a new booking. Runs in the
-- transaction that inserts the new booking.
UPDATE bookings
SET status = 'expired', updated_at = now()
WHERE resource_id = @resource_id
  AND status = 'pending_payment'
  AND checkout_session_id IS NULL
  AND hold_expires_at <= now()
  AND tstzrange(starts_at, ends_at, '[)') && tstzrange(@starts_at::timestamptz, @ends_at::timestamptz, '[)')
RETURNING id;

-- name: BookingListHoldingBetween :many
-- Intervals that are not free on a resource: slot-holding bookings, except
-- lapsed holds without a session (the next booking releases those).
SELECT starts_at, ends_at FROM bookings
WHERE resource_id = @resource_id
  AND status IN ('pending_payment', 'processing', 'confirmed', 'needs_review')
  AND NOT (status = 'pending_payment' AND checkout_session_id IS NULL AND hold_expires_at <= now())
  -- Written as the bookings_no_overlap expression so that the planner uses
  -- the constraint's GiST index.
  AND tstzrange(starts_at, ends_at, '[)') && tstzrange(@since::timestamptz, @until::timestamptz, '[)')
ORDER BY starts_at;

-- name: BookingReserveCheckout :one
-- First phase of checkout: fix the session's expires_at in the database
-- before calling Stripe, and hold the slot until then. A concurrent or retried
-- call finds the same value and sends Stripe the same parameters.
UPDATE bookings
SET checkout_expires_at = COALESCE(checkout_expires_at, @proposed_expires_at::timestamptz),
    hold_expires_at = COALESCE(checkout_expires_at, @proposed_expires_at::timestamptz),
    updated_at = now()
WHERE id = @id
  AND status = 'pending_payment'
  AND checkout_session_id IS NULL
  AND hold_expires_at > now()
RETURNING *;

-- name: BookingReleaseCheckoutReservation :exec
-- Undoes BookingReserveCheckout after Stripe refused to create the session:
-- no session URL was ever handed out, so the original hold applies again.
UPDATE bookings
SET checkout_expires_at = NULL, hold_expires_at = @hold_expires_at, updated_at = now()
WHERE id = @id
  AND checkout_session_id IS NULL
  AND checkout_expires_at = @checkout_expires_at;

-- name: BookingAttachCheckoutSession :one
-- Stores the session Stripe created. The webhook may already have linked the
-- same session (it can overtake the checkout response), so an equal id is fine.
UPDATE bookings
SET checkout_session_id = @checkout_session_id,
    checkout_url = @checkout_url,
    hold_expires_at = @hold_expires_at,
    checkout_expires_at = @hold_expires_at,
    updated_at = now()
WHERE id = @id
  AND (checkout_session_id IS NULL OR checkout_session_id = @checkout_session_id)
RETURNING *;

-- name: BookingLinkCheckoutSession :exec
-- Links a session learnt from a webhook before the checkout response stored it.
UPDATE bookings
SET checkout_session_id = @checkout_session_id, updated_at = now()
WHERE id = @id AND checkout_session_id IS NULL;

-- name: BookingLinkPaymentIntent :many
-- Links the booking's payment intent and returns, in the same round trip,
-- the events that arrived before the link and waited for it (SPEC §2.1).
WITH linked AS (
    UPDATE bookings
    SET payment_intent_id = @payment_intent_id::text, updated_at = now()
    WHERE bookings.id = sqlc.arg(booking_id)::uuid AND bookings.payment_intent_id IS NULL
)
SELECT * FROM payment_events
WHERE outcome = 'unmatched' AND payment_intent_id = @payment_intent_id::text
ORDER BY stripe_created_at, id;

-- name: BookingTransition :one
-- The one way a booking's status changes: conditional on the status the
-- caller read under its row lock, and recorded with its cause, in one
-- statement.
WITH moved AS (
    UPDATE bookings
    SET status = @to_status::text, updated_at = now()
    WHERE bookings.id = sqlc.arg(id)::uuid AND bookings.status = @from_status::text
    RETURNING *
), recorded AS (
    INSERT INTO booking_status_changes (booking_id, from_status, to_status, cause, stripe_event_id)
    SELECT moved.id, @from_status::text, @to_status::text, @cause::text, sqlc.narg(stripe_event_id)::text
    FROM moved
)
SELECT * FROM moved;

-- name: BookingMarkDisputed :exec
UPDATE bookings SET disputed = true, updated_at = now() WHERE id = $1;

-- name: ResourceLockForBooking :exec
-- Orders concurrent holds of one resource. Without it, two transactions that
-- insert overlapping rows at once can each wait on the other inside the
-- exclusion constraint's check, and PostgreSQL aborts one as a deadlock a
-- second later. The constraint stays the last word on overlaps.
SELECT pg_advisory_xact_lock(hashtextextended(sqlc.arg(resource_id)::uuid::text, 0));
