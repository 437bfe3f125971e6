-- name: LoginAttemptInsert :exec
INSERT INTO login_attempts (email, ip, success) VALUES (@email, @ip, @success);

-- name: LoginAttemptThrottledFor :one
-- How many seconds further attempts for this email, or from this address,
-- must wait: the max_failures-th most recent failure within the span has to
-- leave it first. Zero means not throttled. Counted by the clock of the
-- database, so that every instance agrees.
SELECT coalesce(ceil(extract(epoch FROM greatest(
    (SELECT a.at FROM login_attempts a
     WHERE a.email = sqlc.arg(email)::text AND NOT a.success AND a.at > now() - sqlc.arg(span)::interval
     ORDER BY a.at DESC OFFSET sqlc.arg(email_skip)::int LIMIT 1),
    (SELECT a.at FROM login_attempts a
     WHERE a.ip = sqlc.arg(ip)::inet AND NOT a.success AND a.at > now() - sqlc.arg(span)::interval
     ORDER BY a.at DESC OFFSET sqlc.arg(ip_skip)::int LIMIT 1)
) + sqlc.arg(span)::interval - now())), 0)::bigint AS seconds;

-- name: LoginAttemptDeleteOld :execrows
-- Attempts matter to the throttle for minutes; they are kept 30 days for
-- audit.
DELETE FROM login_attempts WHERE at < now() - interval '30 days';

-- name: LoginThrottleLock :exec
-- Serialises the check-and-record of attempts for one key (an email or an
-- address) across instances, for the rest of the transaction. Held for two
-- short statements only, never across password hashing.
SELECT pg_advisory_xact_lock(hashtextextended(@key::text, 0));
