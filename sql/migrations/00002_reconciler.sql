-- +goose Up

-- When the full refund of a refund_pending booking was accepted by Stripe.
-- NULL means it still has to be requested: the reconciler retries it.
ALTER TABLE bookings ADD COLUMN refund_requested_at timestamptz;

-- The reconciler's scans, each over the few rows in one status.
CREATE INDEX bookings_lapsed_hold_idx ON bookings (hold_expires_at)
    WHERE status = 'pending_payment';
CREATE INDEX bookings_processing_idx ON bookings (updated_at)
    WHERE status = 'processing';
CREATE INDEX bookings_refund_due_idx ON bookings (updated_at)
    WHERE status = 'refund_pending' AND refund_requested_at IS NULL;

-- +goose Down
DROP INDEX bookings_refund_due_idx;
DROP INDEX bookings_processing_idx;
DROP INDEX bookings_lapsed_hold_idx;
ALTER TABLE bookings DROP COLUMN refund_requested_at;
