-- name: StatusChangeGetByID :one
SELECT * FROM booking_status_changes WHERE id = $1;

-- name: StatusChangeCountRescheduled :one
-- The .ics SEQUENCE of a booking's calendar entry: how often it moved, up to
-- and including the change being told.
SELECT count(*)::int FROM booking_status_changes
WHERE booking_id = @booking_id AND cause = 'rescheduled' AND id <= @up_to_id;

-- name: NotificationInsert :one
-- A fan-out that runs twice (its job retried after a crash) finds its rows:
-- the source key is unique, and nothing is returned for a second insert.
INSERT INTO notifications (id, booking_id, type, email_kind, source_key, status_change_id, data)
VALUES (@id, @booking_id, @type, sqlc.narg(email_kind), @source_key, sqlc.narg(status_change_id), @data)
ON CONFLICT (source_key) DO NOTHING
RETURNING *;

-- name: NotificationGetByID :one
SELECT * FROM notifications WHERE id = $1;

-- name: NotificationListByBooking :many
SELECT * FROM notifications WHERE booking_id = $1 ORDER BY created_at, id;

-- name: NotificationAttemptInsert :exec
INSERT INTO notification_attempts (notification_id, channel, endpoint_id, target, attempt, outcome, status_code, error, duration_ms)
VALUES (@notification_id, @channel, sqlc.narg(endpoint_id), @target, @attempt, @outcome, sqlc.narg(status_code), sqlc.narg(error), @duration_ms);

-- name: NotificationAttemptListByBooking :many
SELECT a.* FROM notification_attempts a
JOIN notifications n ON n.id = a.notification_id
WHERE n.booking_id = $1
ORDER BY a.id;

-- name: WebhookDeliveryList :many
-- Each webhook attempt, newest first; the id of the last row seen is the
-- cursor, as in the other admin lists.
SELECT a.id, a.notification_id, a.endpoint_id, a.target, a.attempt, a.outcome, a.status_code, a.error,
       a.duration_ms, a.at, n.type, n.booking_id
FROM notification_attempts a
JOIN notifications n ON n.id = a.notification_id
WHERE a.channel = 'webhook'
  AND (sqlc.narg(endpoint_id)::uuid IS NULL OR a.endpoint_id = sqlc.narg(endpoint_id)::uuid)
  AND (sqlc.narg(booking_id)::uuid IS NULL OR n.booking_id = sqlc.narg(booking_id)::uuid)
  AND (sqlc.narg(notification_id)::uuid IS NULL OR a.notification_id = sqlc.narg(notification_id)::uuid)
  AND (sqlc.narg(outcome)::text IS NULL OR a.outcome = sqlc.narg(outcome)::text)
  AND (sqlc.narg(after_id)::bigint IS NULL OR a.id < sqlc.narg(after_id)::bigint)
ORDER BY a.id DESC
LIMIT @max_rows;

-- name: WebhookEndpointInsert :one
INSERT INTO webhook_endpoints (id, url, event_types, secret)
VALUES (@id, @url, @event_types, @secret)
RETURNING *;

-- name: WebhookEndpointList :many
SELECT * FROM webhook_endpoints ORDER BY created_at, id;

-- name: WebhookEndpointGetByID :one
SELECT * FROM webhook_endpoints WHERE id = $1;

-- name: WebhookEndpointListForType :many
SELECT * FROM webhook_endpoints WHERE @type::text = ANY (event_types) ORDER BY id;

-- name: WebhookEndpointRotate :one
-- The old secret keeps signing beside the new one until @previous_until, so a
-- receiver can switch without dropping a delivery.
UPDATE webhook_endpoints
SET previous_secret = secret, previous_secret_until = @previous_until, secret = @secret, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: WebhookEndpointDelete :one
DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id;
