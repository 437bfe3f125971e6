-- name: AdminSessionInsert :one
INSERT INTO admin_sessions (token_hash, user_id, expires_at)
VALUES (@token_hash, @user_id, now() + @lifetime::interval)
RETURNING *;

-- name: AdminSessionGetUser :one
-- The user of a live session: not revoked, not expired, by the database's
-- clock, which every instance shares.
SELECT sqlc.embed(admin_users), admin_sessions.expires_at AS session_expires_at
FROM admin_sessions
JOIN admin_users ON admin_users.id = admin_sessions.user_id
WHERE admin_sessions.token_hash = $1
  AND admin_sessions.revoked_at IS NULL
  AND admin_sessions.expires_at > now();

-- name: AdminSessionRevoke :exec
UPDATE admin_sessions SET revoked_at = now()
WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: AdminSessionRevokeAllOfUser :exec
UPDATE admin_sessions SET revoked_at = now()
WHERE user_id = $1 AND revoked_at IS NULL;

-- name: AdminSessionDeleteOld :execrows
-- Sessions past their end are useless after a day of grace for audit.
DELETE FROM admin_sessions WHERE expires_at < now() - interval '1 day';
