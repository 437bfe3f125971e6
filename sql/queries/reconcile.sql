-- name: BookingExpireLapsedHolds :many
-- Expires every hold that lapsed with no Checkout Session: nobody can pay it.
-- (A hold whose checkout call never stored its session lapses with the
-- session's own expires_at, after which Stripe refuses payment too.)
WITH lapsed AS (
    UPDATE bookings
    SET status = 'expired', updated_at = now()
    WHERE status = 'pending_payment'
      AND checkout_session_id IS NULL
      AND hold_expires_at <= now()
    RETURNING id
)
INSERT INTO booking_status_changes (booking_id, from_status, to_status, cause)
SELECT id, 'pending_payment', 'expired', 'hold_lapsed' FROM lapsed
RETURNING booking_id;

-- name: BookingListLapsedWithSession :many
SELECT id, checkout_session_id FROM bookings
WHERE status = 'pending_payment'
  AND checkout_session_id IS NOT NULL
  AND hold_expires_at <= now()
ORDER BY hold_expires_at
LIMIT @max_rows;

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
ORDER BY updated_at
LIMIT @max_rows;

-- name: BookingMarkRefundRequested :exec
UPDATE bookings SET refund_requested_at = now(), updated_at = now()
WHERE id = $1 AND refund_requested_at IS NULL;

-- name: PaymentEventListKnownIDs :many
SELECT stripe_event_id FROM payment_events WHERE stripe_event_id = ANY(@ids::text[]);

-- name: BookingListLapsedWithSessionOverlapping :many
-- Lapsed holds whose session may still be open, in the way of a new booking.
SELECT checkout_session_id::text FROM bookings
WHERE resource_id = @resource_id
  AND status = 'pending_payment'
  AND checkout_session_id IS NOT NULL
  AND hold_expires_at <= now()
  AND tstzrange(starts_at, ends_at, '[)') && tstzrange(@starts_at::timestamptz, @ends_at::timestamptz, '[)');
