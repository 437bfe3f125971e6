-- name: IdempotencyKeyClaim :one
-- Claims a key for a first request. ON CONFLICT takes over a key whose 24 h
-- life is over, or whose in-flight lease lapsed because its instance died.
-- No row back means the key is live: the caller reads it to decide.
INSERT INTO idempotency_keys (scope, key, request_hash, locked_until)
VALUES (@scope, @key, @request_hash, @locked_until)
ON CONFLICT (scope, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash,
    locked_until = EXCLUDED.locked_until,
    response_status = NULL,
    response_body = NULL,
    -- A lapsed first run keeps its recovery point; an expired key starts
    -- afresh.
    booking_id = CASE WHEN idempotency_keys.created_at < now() - interval '24 hours'
                      THEN NULL ELSE idempotency_keys.booking_id END,
    created_at = CASE WHEN idempotency_keys.created_at < now() - interval '24 hours'
                      THEN now() ELSE idempotency_keys.created_at END
WHERE idempotency_keys.created_at < now() - interval '24 hours'
   OR (idempotency_keys.response_status IS NULL
       AND idempotency_keys.locked_until < now()
       AND idempotency_keys.request_hash = EXCLUDED.request_hash)
RETURNING booking_id;

-- name: IdempotencyKeyGet :one
SELECT * FROM idempotency_keys WHERE scope = @scope AND key = @key;

-- name: IdempotencyKeyStoreResponse :exec
UPDATE idempotency_keys
SET response_status = @response_status, response_body = @response_body, locked_until = NULL
WHERE scope = @scope AND key = @key AND request_hash = @request_hash;

-- name: IdempotencyKeyRelease :exec
-- A 5xx is not stored: the key is freed so that a retry runs afresh.
DELETE FROM idempotency_keys
WHERE scope = @scope AND key = @key AND request_hash = @request_hash AND response_status IS NULL;

-- name: IdempotencyKeyRecordBooking :exec
-- Runs in the booking's own transaction: the recovery point.
UPDATE idempotency_keys SET booking_id = @booking_id
WHERE scope = @scope AND key = @key AND request_hash = @request_hash;
