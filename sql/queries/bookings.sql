-- name: BookingInsert :one
-- Names no status: a booking is born pending_payment (the column's default),
-- and BookingTransition is the one statement that changes it.
INSERT INTO bookings (
    id, resource_id, customer_email, customer_name, starts_at, ends_at,
    amount_total, currency, hold_expires_at, manage_token_salt, manage_token_hash
) VALUES (
    @id, @resource_id, @customer_email, @customer_name, @starts_at, @ends_at,
    @amount_total, @currency, @hold_expires_at, @manage_token_salt, @manage_token_hash
)
RETURNING *;

-- name: BookingGetByID :one
SELECT * FROM bookings WHERE id = $1;

-- name: BookingGetByIDForUpdate :one
SELECT * FROM bookings WHERE id = $1 FOR UPDATE;

-- name: BookingLockForSessionEvent :one
-- Finds and locks the booking a Checkout Session event concerns: the one
-- holding the session, else the one a session slotpay created names (the
-- webhook can overtake the checkout response that stores the session). The
-- caller passes reference_id only when metadata.booking_id and
-- client_reference_id agree: a customer can edit client_reference_id alone
-- (a Payment Link), never the metadata slotpay set (SPEC §2.1).
--
-- With recorded_event set, the booking is found and locked only if this
-- transaction recorded that event itself (its ledger row's xmin is this
-- transaction's id): payment.Process sends the ledger insert and this lock in
-- one flight, and a duplicate, whose insert did nothing, then locks nothing,
-- so it ends with no transaction id and no WAL to flush.
--
-- waiting says whether events of the session, or of payment_intent_id when
-- given, found no booking and wait for a link (PaymentEventListUnmatched):
-- read under the serialising locks, like that list, and rarely true, so
-- the list is read only then.
SELECT sqlc.embed(bookings),
       EXISTS (SELECT 1 FROM payment_events w
               WHERE w.outcome = 'unmatched'
                 AND (w.checkout_session_id = @checkout_session_id::text
                      OR w.payment_intent_id = sqlc.narg(payment_intent_id)::text)) AS waiting
FROM bookings
WHERE id = COALESCE(
    (SELECT s.id FROM bookings s WHERE s.checkout_session_id = @checkout_session_id::text),
    sqlc.narg(reference_id)::uuid)
  AND (sqlc.narg(recorded_event)::text IS NULL OR EXISTS (
      SELECT 1 FROM payment_events pe
      WHERE pe.stripe_event_id = sqlc.narg(recorded_event)::text
        AND pe.xmin = pg_current_xact_id_if_assigned()::xid))
FOR UPDATE;

-- name: BookingLockForPaymentIntent :one
-- recorded_event as in BookingLockForSessionEvent.
SELECT * FROM bookings
WHERE payment_intent_id = @payment_intent_id::text
  AND (sqlc.narg(recorded_event)::text IS NULL OR EXISTS (
      SELECT 1 FROM payment_events pe
      WHERE pe.stripe_event_id = sqlc.narg(recorded_event)::text
        AND pe.xmin = pg_current_xact_id_if_assigned()::xid))
FOR UPDATE;

-- name: BookingListHoldingBetween :many
-- Intervals that are not free on a resource: slot-holding bookings, except
-- lapsed holds without a session (the next booking releases those).
SELECT starts_at, ends_at FROM bookings
WHERE resource_id = @resource_id
  AND booking_holds_slot(status)
  AND NOT booking_hold_lapsed(status, checkout_session_id, hold_expires_at, @at::timestamptz)
  -- Written as the bookings_no_overlap expression and predicate so that the
  -- planner uses the constraint's GiST index.
  AND tstzrange(starts_at, ends_at, '[)') && tstzrange(@since::timestamptz, @until::timestamptz, '[)')
ORDER BY starts_at;

-- name: BookingListLapsedOverlappingForUpdate :many
-- Holds that lapsed before any Checkout Session was created for them, in the
-- way of a new booking: nobody can pay them, so the transaction that inserts
-- the new booking expires them (through booking.Decide) rather than make its
-- customer wait for the reconciler.
SELECT * FROM bookings
WHERE resource_id = @resource_id
  AND booking_hold_lapsed(status, checkout_session_id, hold_expires_at, @at::timestamptz)
  AND tstzrange(starts_at, ends_at, '[)') && tstzrange(@starts_at::timestamptz, @ends_at::timestamptz, '[)')
ORDER BY id
FOR UPDATE;

-- name: BookingListLapsedForUpdate :many
-- A batch of holds that lapsed with no Checkout Session, locked for the
-- reconciler to expire. Rows another transaction holds (a booking releasing
-- them right now) are skipped, not waited for.
SELECT * FROM bookings
WHERE booking_hold_lapsed(status, checkout_session_id, hold_expires_at, @at::timestamptz)
ORDER BY hold_expires_at, id
LIMIT @max_rows
FOR UPDATE SKIP LOCKED;

-- name: BookingListLapsedWithSession :many
SELECT id, checkout_session_id FROM bookings
WHERE booking_session_lapsed(status, checkout_session_id, hold_expires_at, now())
ORDER BY hold_expires_at
LIMIT @max_rows;

-- name: BookingListLapsedWithSessionOverlapping :many
-- Lapsed holds whose session may still be open, in the way of a new booking.
SELECT checkout_session_id::text FROM bookings
WHERE resource_id = @resource_id
  AND booking_session_lapsed(status, checkout_session_id, hold_expires_at, now())
  AND tstzrange(starts_at, ends_at, '[)') && tstzrange(@starts_at::timestamptz, @ends_at::timestamptz, '[)');

-- name: BookingListProcessingSince :many
SELECT id, checkout_session_id FROM bookings
WHERE status = 'processing'
  AND updated_at <= @before
ORDER BY updated_at
LIMIT @max_rows;

-- name: BookingListRefundsDue :many
SELECT id, payment_intent_id FROM bookings
WHERE status = 'refund_pending'
  AND refund_requested_at IS NULL
  -- A refund that failed or was cancelled at Stripe is never requested
  -- again automatically: an operator acts (SPEC §2.1).
  AND refund_failed_at IS NULL
ORDER BY updated_at
LIMIT @max_rows;

-- name: BookingListForAdmin :many
-- Newest first: booking ids are UUIDv7, so id order is creation order, and
-- the id of the last row seen is the cursor.
SELECT * FROM bookings
WHERE (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text)
  AND (sqlc.narg(resource_id)::uuid IS NULL OR resource_id = sqlc.narg(resource_id)::uuid)
  AND (sqlc.narg(starts_from)::timestamptz IS NULL OR starts_at >= sqlc.narg(starts_from)::timestamptz)
  AND (sqlc.narg(starts_before)::timestamptz IS NULL OR starts_at < sqlc.narg(starts_before)::timestamptz)
  AND (sqlc.narg(disputed)::boolean IS NULL OR disputed = sqlc.narg(disputed)::boolean)
  AND (sqlc.narg(after_id)::uuid IS NULL OR id < sqlc.narg(after_id)::uuid)
ORDER BY id DESC
LIMIT @max_rows;

-- name: BookingReserveCheckout :one
-- First phase of checkout: fix the session's expires_at in the database
-- before calling Stripe, and hold the slot until then. A concurrent or retried
-- call finds the same value and sends Stripe the same parameters, while it is
-- still at least @reusable_from; one that is now too close to Stripe's
-- 30-minute minimum is replaced by a fresh value (and a fresh key).
UPDATE bookings
SET checkout_expires_at = CASE WHEN checkout_expires_at >= @reusable_from::timestamptz
                               THEN checkout_expires_at ELSE @proposed_expires_at::timestamptz END,
    hold_expires_at = CASE WHEN checkout_expires_at >= @reusable_from::timestamptz
                           THEN checkout_expires_at ELSE @proposed_expires_at::timestamptz END,
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

-- name: BookingLinkPaymentIntent :exec
-- Links the booking's payment intent. The events that arrived before the
-- link and waited for it are applied by the same transaction, under the
-- intent's lock (PaymentEventListUnmatched, SPEC §2.1). A transition links
-- it itself (BookingTransition).
UPDATE bookings
SET payment_intent_id = @payment_intent_id::text, updated_at = now()
WHERE bookings.id = sqlc.arg(booking_id)::uuid AND bookings.payment_intent_id IS NULL;

-- name: BookingTransition :one
-- The one statement that changes a booking's status (booking.Transition, after
-- booking.Decide): conditional on the status the caller read under its row
-- lock, and recorded with its cause (the Stripe event, or the operator) in
-- the same statement. What the change carries with it is set here too, so a
-- reader of the transition sees it whole: a reschedule's new slot (recorded
-- with the old one: the before CTE reads the row as it was), a customer
-- cancel's refund_amount and that the booking had been paid, the payment
-- intent of the confirming event when none was linked.
--
-- A booking that does not have from_status fails the statement
-- (booking_moved, SQLSTATE SP001; booking.ErrStatusChanged): the recorded
-- CTE always has its one row to insert, and a data-modifying CTE always
-- runs. So in a flight that ends in COMMIT (booking.QueueTransition) the
-- COMMIT rolls back rather than record an event without its change.
WITH before AS (
    SELECT b.id, b.starts_at, b.ends_at FROM bookings b WHERE b.id = sqlc.arg(id)::uuid
), moved AS (
    UPDATE bookings
    SET status = @to_status::text,
        starts_at = COALESCE(sqlc.narg(to_starts_at)::timestamptz, bookings.starts_at),
        ends_at = COALESCE(sqlc.narg(to_ends_at)::timestamptz, bookings.ends_at),
        refund_amount = COALESCE(sqlc.narg(refund_amount)::bigint, bookings.refund_amount),
        cancelled_after_payment = bookings.cancelled_after_payment OR @cancelled_after_payment::boolean,
        payment_intent_id = COALESCE(bookings.payment_intent_id, sqlc.narg(payment_intent_id)::text),
        updated_at = now()
    WHERE bookings.id = sqlc.arg(id)::uuid AND bookings.status = @from_status::text
    RETURNING bookings.*
), recorded AS (
    INSERT INTO booking_status_changes (booking_id, from_status, to_status, cause, stripe_event_id, operator_id,
                                        from_starts_at, from_ends_at, to_starts_at, to_ends_at)
    SELECT booking_moved(moved.id, sqlc.arg(id)::uuid, @from_status::text, @to_status::text),
           @from_status::text, @to_status::text, @cause::text,
           sqlc.narg(stripe_event_id)::text, sqlc.narg(operator_id)::uuid,
           CASE WHEN sqlc.narg(to_starts_at)::timestamptz IS NOT NULL THEN before.starts_at END,
           CASE WHEN sqlc.narg(to_starts_at)::timestamptz IS NOT NULL THEN before.ends_at END,
           sqlc.narg(to_starts_at)::timestamptz, sqlc.narg(to_ends_at)::timestamptz
    FROM (VALUES (1)) AS one (n)
    LEFT JOIN moved ON true
    LEFT JOIN before ON before.id = moved.id
)
SELECT * FROM moved;

-- name: BookingNoteDispute :exec
-- A dispute event marks the booking disputed; dispute_status is set only by
-- the caller's judgement that the event is newer (booking.Decide).
UPDATE bookings
SET disputed = true,
    dispute_status = COALESCE(sqlc.narg(dispute_status)::text, dispute_status),
    dispute_status_at = COALESCE(sqlc.narg(dispute_status_at)::timestamptz, dispute_status_at),
    updated_at = now()
WHERE id = @id;

-- name: BookingNoteRefundFacts :exec
-- Remembers the Stripe times of the latest refund failure and of the latest
-- charge.refunded showing a full refund (migration 00008), so that events
-- delivered out of order are judged against each other.
UPDATE bookings
SET refund_failed_at = GREATEST(refund_failed_at, sqlc.narg(refund_failed_at)::timestamptz),
    refunded_seen_at = GREATEST(refunded_seen_at, sqlc.narg(refunded_seen_at)::timestamptz),
    updated_at = now()
WHERE id = @id;

-- name: BookingMarkRefundRequested :exec
UPDATE bookings SET refund_requested_at = now(), updated_at = now()
WHERE id = $1 AND refund_requested_at IS NULL;

-- name: BookingManageSecret :one
-- The stored form of a booking's manage_token (migration 00009).
SELECT manage_token_salt, manage_token_hash FROM bookings WHERE id = $1;
