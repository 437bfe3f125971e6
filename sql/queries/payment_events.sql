-- name: PaymentEventInsert :one
-- A conflict on stripe_event_id means the event was recorded before: the
-- caller sees no row and treats the delivery as a duplicate. Concurrent
-- duplicates wait here on the unique index until the first commits.
INSERT INTO payment_events (
    stripe_event_id, type, api_version, livemode, stripe_created_at, source,
    checkout_session_id, payment_intent_id, outcome, payload
) VALUES (
    @stripe_event_id, @type, @api_version, @livemode, @stripe_created_at, @source,
    @checkout_session_id, @payment_intent_id, 'ignored', @payload
)
ON CONFLICT (stripe_event_id) DO NOTHING
RETURNING id;

-- name: PaymentEventSetOutcome :exec
-- Sets what the event did. An event leaving 'unmatched' is stamped resolved:
-- it waited for its booking and was applied when the link appeared.
UPDATE payment_events
SET outcome = @outcome,
    detail = @detail,
    booking_id = @booking_id,
    resolved_at = CASE WHEN outcome = 'unmatched' AND @outcome <> 'unmatched' THEN now() ELSE resolved_at END
WHERE id = @id;

-- name: PaymentEventListUnmatched :many
-- Events that found no booking and wait for a link: those of the session,
-- and those of the payment intent when one is given. Read under both locks
-- (PaymentEventSerialize), by the transaction that links them, when the
-- statement that locked the booking said some wait
-- (BookingLockForSessionEvent); the caller tells the two apart (a row can
-- belong to both).
SELECT * FROM payment_events
WHERE outcome = 'unmatched'
  AND (checkout_session_id = @checkout_session_id::text OR payment_intent_id = sqlc.narg(payment_intent_id)::text)
ORDER BY stripe_created_at, id;

-- name: PaymentEventListByBooking :many
SELECT * FROM payment_events WHERE booking_id = $1 ORDER BY id;

-- name: PaymentEventListForAdmin :many
SELECT * FROM payment_events
WHERE (sqlc.narg(type)::text IS NULL OR type = sqlc.narg(type)::text)
  AND (sqlc.narg(outcome)::text IS NULL OR outcome = sqlc.narg(outcome)::text)
  AND (sqlc.narg(booking_id)::uuid IS NULL OR booking_id = sqlc.narg(booking_id)::uuid)
  AND (sqlc.narg(after_id)::bigint IS NULL OR id < sqlc.narg(after_id)::bigint)
ORDER BY id DESC
LIMIT @max_rows;

-- name: PaymentEventListKnownIDs :many
SELECT stripe_event_id FROM payment_events WHERE stripe_event_id = ANY(@ids::text[]);

-- name: PaymentEventSerialize :exec
-- Serialises, until the transaction ends, everything that matches or links
-- events of one Checkout Session and of one payment intent (SPEC §2.1,
-- events never lose a race): an event that finds no booking commits its
-- unmatched row before a linking transaction looks for waiting events, or
-- waits for that link to commit. The session's lock comes first, then the
-- intent's (the subquery, an optimisation fence, runs before the outer
-- call), in every transaction: two of them cannot wait for each other in
-- opposite orders. A key left NULL takes no lock (the function is strict).
-- The two-key form keeps these locks apart from the one-key locks of
-- resources (ResourceLockForBooking); hash collisions only serialise more.
SELECT pg_advisory_xact_lock(2, hashtext(sqlc.narg(payment_intent_id)::text))
FROM (SELECT pg_advisory_xact_lock(1, hashtext(sqlc.narg(checkout_session_id)::text)) OFFSET 0) AS session_first;

-- name: PaymentEventClaimUnmatched :one
-- Locks an event that waits for its booking, if it still does: a waiting
-- event reached by two paths (its session and its payment intent), or by
-- the webhook and the reconciler at once, is applied exactly once.
SELECT * FROM payment_events WHERE id = $1 AND outcome = 'unmatched' FOR UPDATE;

-- name: PaymentEventListUnmatchedKnown :many
-- Events still unmatched whose booking is known by now (SPEC §5): the
-- reconciler's second net under the same serialisation.
SELECT pe.id FROM payment_events pe
WHERE pe.outcome = 'unmatched'
  AND (EXISTS (SELECT 1 FROM bookings b WHERE b.checkout_session_id = pe.checkout_session_id)
       OR EXISTS (SELECT 1 FROM bookings b WHERE b.payment_intent_id = pe.payment_intent_id))
ORDER BY pe.stripe_created_at, pe.id
LIMIT @max_rows;

-- name: PaymentEventGetByID :one
SELECT * FROM payment_events WHERE id = $1;
