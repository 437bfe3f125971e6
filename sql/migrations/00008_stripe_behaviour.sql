-- +goose Up

-- Disputes (SPEC §2.1): the dispute's latest status as Stripe reported it,
-- and the Stripe time of the event that said so, so that an older event
-- delivered late never overwrites a newer status. No CHECK on the value:
-- a status Stripe adds later must not turn its events into 500s.
ALTER TABLE bookings ADD COLUMN dispute_status text CHECK (length(dispute_status) <= 64);
ALTER TABLE bookings ADD COLUMN dispute_status_at timestamptz;
CREATE INDEX bookings_disputed_idx ON bookings (id) WHERE disputed;

-- Refunds can fail or be cancelled after charge.refunded (SPEC §2.1). Events
-- arrive in any order, so each refund fact is judged against the other kind
-- by Stripe's created time:
-- refund_failed_at: the latest refund failure applied. A charge.refunded not
--   newer than it describes the charge before the failure and is stale. Set,
--   it also keeps the booking's refund from being requested again
--   automatically: an operator acts.
-- refunded_seen_at: the latest charge.refunded that showed the charge
--   refunded in full; a failure older than it is already accounted for.
ALTER TABLE bookings ADD COLUMN refund_failed_at timestamptz;
ALTER TABLE bookings ADD COLUMN refunded_seen_at timestamptz;

-- Stripe keeps the first answer to an idempotency key for 24 h, a 5xx
-- included (SPEC §2.2). After an answer that leaves the outcome unknown,
-- slotpay reads the outcome back and only then tries again, under the key
-- of the next attempt: slotpay-<operation>-<attempt>.
CREATE TABLE stripe_request_attempts (
    operation  text PRIMARY KEY CHECK (length(operation) BETWEEN 1 AND 200),
    attempt    integer NOT NULL CHECK (attempt >= 1),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE stripe_request_attempts;
ALTER TABLE bookings DROP COLUMN refunded_seen_at;
ALTER TABLE bookings DROP COLUMN refund_failed_at;
DROP INDEX bookings_disputed_idx;
ALTER TABLE bookings DROP COLUMN dispute_status_at;
ALTER TABLE bookings DROP COLUMN dispute_status;
