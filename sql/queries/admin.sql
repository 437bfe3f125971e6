-- name: AdminUserInsert :one
INSERT INTO admin_users (id, email, role, password_hash)
VALUES (@id, @email, @role, @password_hash)
RETURNING *;

-- name: AdminUserUpdate :one
UPDATE admin_users
SET role = @role, password_hash = @password_hash, updated_at = now()
WHERE email = @email
RETURNING *;

-- name: AdminUserGetByEmail :one
SELECT * FROM admin_users WHERE email = $1;

-- name: AdminSessionInsert :one
INSERT INTO admin_sessions (token_hash, user_id, expires_at)
VALUES (@token_hash, @user_id, now() + @lifetime::interval)
RETURNING *;

-- name: AdminSessionRevoke :exec
UPDATE admin_sessions SET revoked_at = now()
WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: AdminSessionRevokeAllOfUser :exec
UPDATE admin_sessions SET revoked_at = now()
WHERE user_id = $1 AND revoked_at IS NULL;

-- name: AdminSessionDeleteOld :execrows
-- Sessions past their end are useless after a day of grace for audit.
DELETE FROM admin_sessions WHERE expires_at < now() - interval '1 day';

-- name: LoginAttemptDeleteOld :execrows
-- Attempts matter to the throttle for minutes; they are kept 30 days for
-- audit.
DELETE FROM login_attempts WHERE at < now() - interval '30 days';

-- name: BookingListForAdmin :many
-- Newest first: booking ids are UUIDv7, so id order is creation order, and
-- the id of the last row seen is the cursor.
SELECT * FROM bookings
WHERE (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text)
  AND (sqlc.narg(resource_id)::uuid IS NULL OR resource_id = sqlc.narg(resource_id)::uuid)
  AND (sqlc.narg(starts_from)::timestamptz IS NULL OR starts_at >= sqlc.narg(starts_from)::timestamptz)
  AND (sqlc.narg(starts_before)::timestamptz IS NULL OR starts_at < sqlc.narg(starts_before)::timestamptz)
  AND (sqlc.narg(after_id)::uuid IS NULL OR id < sqlc.narg(after_id)::uuid)
ORDER BY id DESC
LIMIT @max_rows;

-- name: PaymentEventListForAdmin :many
SELECT * FROM payment_events
WHERE (sqlc.narg(type)::text IS NULL OR type = sqlc.narg(type)::text)
  AND (sqlc.narg(outcome)::text IS NULL OR outcome = sqlc.narg(outcome)::text)
  AND (sqlc.narg(booking_id)::uuid IS NULL OR booking_id = sqlc.narg(booking_id)::uuid)
  AND (sqlc.narg(after_id)::bigint IS NULL OR id < sqlc.narg(after_id)::bigint)
ORDER BY id DESC
LIMIT @max_rows;

-- name: ResourceInsert :one
INSERT INTO resources (
    id, slug, name, description, timezone, currency, unit_amount, slot_minutes,
    min_slots, max_slots, open_time, close_time, min_notice_minutes, horizon_days, active
) VALUES (
    @id, @slug, @name, @description, @timezone, @currency, @unit_amount, @slot_minutes,
    @min_slots, @max_slots, @open_time, @close_time, @min_notice_minutes, @horizon_days, @active
)
RETURNING *;

-- name: ResourceGetByIDForUpdate :one
SELECT * FROM resources WHERE id = $1 FOR UPDATE;

-- name: ResourceUpdate :one
UPDATE resources
SET slug = @slug, name = @name, description = @description, timezone = @timezone,
    currency = @currency, unit_amount = @unit_amount, slot_minutes = @slot_minutes,
    min_slots = @min_slots, max_slots = @max_slots, open_time = @open_time,
    close_time = @close_time, min_notice_minutes = @min_notice_minutes,
    horizon_days = @horizon_days, active = @active, updated_at = now()
WHERE id = @id
RETURNING *;
