-- name: LoginAttemptReserve :one
-- Records a sign-in attempt as a failure before its password is checked, so
-- that concurrent attempts are counted as they arrive and cannot all pass
-- the throttle before any is recorded. A right password turns it into a
-- success (LoginAttemptSucceeded).
INSERT INTO login_attempts (email, ip, success) VALUES (@email, @ip, false)
RETURNING id;

-- name: LoginAttemptSucceeded :exec
UPDATE login_attempts SET success = true WHERE id = $1;

-- name: LoginAttemptDelete :exec
-- Withdraws a reserved attempt whose password was never checked (the server
-- was too busy hashing): it must not count against the caller.
DELETE FROM login_attempts WHERE id = $1;

-- name: LoginAttemptWait :one
-- SPEC §3: how many seconds further attempts must wait. Within the span,
-- pair_max failures of this e-mail from this address refuse the pair,
-- ip_max failures from this address refuse the address, email_max failures
-- of this e-mail from anywhere refuse the e-mail: the max-th most recent
-- failure of the tripped count has to leave the span first. Zero means not
-- throttled. Counted by the clock of the database, so that every instance
-- agrees.
SELECT coalesce(ceil(extract(epoch FROM greatest(
    (SELECT a.at FROM login_attempts a
     WHERE a.email = sqlc.arg(email)::text AND a.ip = sqlc.arg(ip)::inet
       AND NOT a.success AND a.at > now() - sqlc.arg(span)::interval
     ORDER BY a.at DESC OFFSET sqlc.arg(pair_max)::int - 1 LIMIT 1),
    (SELECT a.at FROM login_attempts a
     WHERE a.ip = sqlc.arg(ip)::inet AND NOT a.success AND a.at > now() - sqlc.arg(span)::interval
     ORDER BY a.at DESC OFFSET sqlc.arg(ip_max)::int - 1 LIMIT 1),
    (SELECT a.at FROM login_attempts a
     WHERE a.email = sqlc.arg(email)::text AND NOT a.success AND a.at > now() - sqlc.arg(span)::interval
     ORDER BY a.at DESC OFFSET sqlc.arg(email_max)::int - 1 LIMIT 1)
) + sqlc.arg(span)::interval - now())), 0)::bigint AS seconds;

-- name: LoginAttemptDeleteOld :execrows
-- Attempts matter to the throttle for minutes; they are kept 30 days for
-- audit.
DELETE FROM login_attempts WHERE at < now() - interval '30 days';
