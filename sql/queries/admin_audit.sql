-- name: AdminAuditInsert :exec
-- Runs in the transaction of the action it records (internal/audit).
INSERT INTO admin_audit (operator_id, via, action, target_type, target_id, request_id)
VALUES (sqlc.narg(operator_id), @via, @action, @target_type, @target_id, sqlc.narg(request_id));

-- name: AdminAuditList :many
-- Newest first; the id of the last row seen is the cursor, as in the other
-- admin lists.
SELECT * FROM admin_audit
WHERE (sqlc.narg(target_id)::uuid IS NULL OR target_id = sqlc.narg(target_id)::uuid)
  AND (sqlc.narg(operator_id)::uuid IS NULL OR operator_id = sqlc.narg(operator_id)::uuid)
  AND (sqlc.narg(after_id)::bigint IS NULL OR id < sqlc.narg(after_id)::bigint)
ORDER BY id DESC
LIMIT @max_rows;
