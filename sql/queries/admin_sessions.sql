-- name: AdminSessionInsert :one
INSERT INTO admin_sessions (token_hash, user_id, expires_at)
VALUES (@token_hash, @user_id, now() + @lifetime::interval)
RETURNING *;

-- name: AdminSessionTouch :one
-- The user of a live session, by the database's clock, which every instance
-- shares: not revoked, before its absolute end, and used within the idle
-- span (SPEC §3: 8 h, or 1 h unused). Using it restarts the idle span.
WITH live AS (
    UPDATE admin_sessions SET last_seen_at = now()
    WHERE token_hash = @token_hash
      AND revoked_at IS NULL
      AND expires_at > now()
      AND last_seen_at > now() - @idle::interval
    RETURNING user_id, expires_at
)
SELECT sqlc.embed(admin_users), live.expires_at AS session_expires_at
FROM live
JOIN admin_users ON admin_users.id = live.user_id;

-- name: AdminSessionRevoke :exec
UPDATE admin_sessions SET revoked_at = now()
WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: AdminSessionRevokeAllOfUser :exec
UPDATE admin_sessions SET revoked_at = now()
WHERE user_id = $1 AND revoked_at IS NULL;

-- name: AdminSessionDeleteOld :execrows
-- Sessions past their end are useless after a day of grace for audit.
DELETE FROM admin_sessions WHERE expires_at < now() - interval '1 day';
