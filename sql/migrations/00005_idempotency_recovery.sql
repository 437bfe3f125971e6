-- +goose Up

-- A recovery point for POST /v1/bookings: the booking a key's first request
-- created, written in the same transaction as the booking. If the instance
-- dies after that commit but before it stores the response, the retry that
-- takes the key over answers with this booking instead of holding again.
ALTER TABLE idempotency_keys ADD COLUMN booking_id uuid REFERENCES bookings (id);

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN booking_id;
