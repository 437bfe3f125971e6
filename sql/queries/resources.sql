-- name: ResourceListActive :many
SELECT * FROM resources WHERE active ORDER BY name, id;

-- name: ResourceGetByID :one
SELECT * FROM resources WHERE id = $1;

-- name: ResourceGetByIDForUpdate :one
SELECT * FROM resources WHERE id = $1 FOR UPDATE;

-- name: ResourceInsert :one
INSERT INTO resources (
    id, slug, name, description, timezone, currency, unit_amount, slot_minutes,
    min_slots, max_slots, open_time, close_time, min_notice_minutes, horizon_days, active,
    full_refund_hours_before, partial_refund_hours_before, partial_refund_percent
) VALUES (
    @id, @slug, @name, @description, @timezone, @currency, @unit_amount, @slot_minutes,
    @min_slots, @max_slots, @open_time, @close_time, @min_notice_minutes, @horizon_days, @active,
    @full_refund_hours_before, @partial_refund_hours_before, @partial_refund_percent
)
RETURNING *;

-- name: ResourceUpsertBySlug :one
INSERT INTO resources (
    id, slug, name, description, timezone, currency, unit_amount, slot_minutes,
    min_slots, max_slots, open_time, close_time, min_notice_minutes, horizon_days, active
) VALUES (
    @id, @slug, @name, @description, @timezone, @currency, @unit_amount, @slot_minutes,
    @min_slots, @max_slots, @open_time, @close_time, @min_notice_minutes, @horizon_days, @active
)
ON CONFLICT (slug) DO UPDATE SET updated_at = resources.updated_at
RETURNING *;

-- name: ResourceUpdate :one
UPDATE resources
SET slug = @slug, name = @name, description = @description, timezone = @timezone,
    currency = @currency, unit_amount = @unit_amount, slot_minutes = @slot_minutes,
    min_slots = @min_slots, max_slots = @max_slots, open_time = @open_time,
    close_time = @close_time, min_notice_minutes = @min_notice_minutes,
    horizon_days = @horizon_days, active = @active,
    full_refund_hours_before = @full_refund_hours_before,
    partial_refund_hours_before = @partial_refund_hours_before,
    partial_refund_percent = @partial_refund_percent, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: ResourceLockForBooking :exec
-- Orders concurrent holds of one resource. Without it, two transactions that
-- insert overlapping rows at once can each wait on the other inside the
-- exclusion constraint's check, and PostgreSQL aborts one as a deadlock a
-- second later. The constraint stays the last word on overlaps.
SELECT pg_advisory_xact_lock(hashtextextended(sqlc.arg(resource_id)::uuid::text, 0));
