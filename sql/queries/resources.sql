-- name: ResourceListActive :many
SELECT * FROM resources WHERE active ORDER BY name, id;

-- name: ResourceGetByID :one
SELECT * FROM resources WHERE id = $1;

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
