-- name: StripeRequestAttemptGet :one
-- The attempt whose idempotency key the next request of an operation uses;
-- no row means attempt 1, and that no earlier attempt failed.
SELECT attempt FROM stripe_request_attempts WHERE operation = $1;

-- name: StripeRequestAttemptAdvance :exec
-- After an attempt left its outcome unknown or failed, the next request
-- uses a new key: next_attempt is the failed one plus one. Concurrent
-- callers that saw the same attempt advance it once.
INSERT INTO stripe_request_attempts (operation, attempt)
VALUES (@operation, @next_attempt)
ON CONFLICT (operation) DO UPDATE
SET attempt = GREATEST(stripe_request_attempts.attempt, EXCLUDED.attempt), updated_at = now();
