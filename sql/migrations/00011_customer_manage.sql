-- +goose Up

-- The customer after paying (SPEC §3.1).

-- A resource's cancellation policy: a customer who cancels a confirmed
-- booking at least full_refund_hours_before its start gets everything back;
-- at least partial_refund_hours_before, partial_refund_percent of it
-- (rounded down to the minor unit); later, nothing. The default is a full
-- refund up to 24 hours before, none after.
ALTER TABLE resources
    ADD COLUMN full_refund_hours_before integer NOT NULL DEFAULT 24
        CHECK (full_refund_hours_before BETWEEN 0 AND 17520),
    ADD COLUMN partial_refund_hours_before integer NOT NULL DEFAULT 0
        CHECK (partial_refund_hours_before BETWEEN 0 AND 17520),
    ADD COLUMN partial_refund_percent integer NOT NULL DEFAULT 0
        CHECK (partial_refund_percent BETWEEN 0 AND 100),
    ADD CONSTRAINT resources_refund_cutoffs_ordered
        CHECK (partial_refund_hours_before <= full_refund_hours_before);

-- refund_amount: what a customer cancel asked Stripe to refund (0 inside
-- the no-refund window), set by the cancel's own transition. It is never more
-- than was charged. cancelled_after_payment remembers that a cancelled
-- booking had been paid: a later completion event or reconcile read-back of
-- its session is then ignored, never a late payment that re-confirms it.
ALTER TABLE bookings
    ADD COLUMN refund_amount bigint CHECK (refund_amount BETWEEN 0 AND amount_total),
    ADD COLUMN cancelled_after_payment boolean NOT NULL DEFAULT false;

-- A reschedule (confirmed -> confirmed, cause rescheduled) records the slot it
-- left and the slot it took.
ALTER TABLE booking_status_changes
    ADD COLUMN from_starts_at timestamptz,
    ADD COLUMN from_ends_at timestamptz,
    ADD COLUMN to_starts_at timestamptz,
    ADD COLUMN to_ends_at timestamptz,
    ADD CONSTRAINT booking_status_changes_slot_pair
        CHECK ((from_starts_at IS NULL) = (to_starts_at IS NULL)
           AND (from_starts_at IS NULL) = (from_ends_at IS NULL)
           AND (to_starts_at IS NULL) = (to_ends_at IS NULL)),
    ADD CONSTRAINT booking_status_changes_reschedule_slot
        CHECK ((cause = 'rescheduled') = (to_starts_at IS NOT NULL));
-- A reschedule is the one change that keeps the status; invariant 3 (a
-- booking reaches confirmed at most once) counts arrivals at confirmed.
ALTER TABLE booking_status_changes DROP CONSTRAINT booking_status_changes_check;
ALTER TABLE booking_status_changes ADD CONSTRAINT booking_status_changes_moves
    CHECK (from_status IS DISTINCT FROM to_status OR cause = 'rescheduled');
DROP INDEX booking_status_changes_confirmed_once_idx;
CREATE UNIQUE INDEX booking_status_changes_confirmed_once_idx ON booking_status_changes (booking_id)
    WHERE to_status = 'confirmed' AND from_status IS DISTINCT FROM 'confirmed';

-- +goose Down
DELETE FROM booking_status_changes WHERE cause = 'rescheduled';
DROP INDEX booking_status_changes_confirmed_once_idx;
CREATE UNIQUE INDEX booking_status_changes_confirmed_once_idx ON booking_status_changes (booking_id)
    WHERE to_status = 'confirmed';
ALTER TABLE booking_status_changes DROP CONSTRAINT booking_status_changes_moves;
ALTER TABLE booking_status_changes ADD CONSTRAINT booking_status_changes_check
    CHECK (from_status IS DISTINCT FROM to_status);
ALTER TABLE booking_status_changes
    DROP CONSTRAINT booking_status_changes_reschedule_slot,
    DROP CONSTRAINT booking_status_changes_slot_pair,
    DROP COLUMN to_ends_at, DROP COLUMN to_starts_at,
    DROP COLUMN from_ends_at, DROP COLUMN from_starts_at;
ALTER TABLE bookings DROP COLUMN cancelled_after_payment, DROP COLUMN refund_amount;
ALTER TABLE resources
    DROP CONSTRAINT resources_refund_cutoffs_ordered,
    DROP COLUMN partial_refund_percent,
    DROP COLUMN partial_refund_hours_before,
    DROP COLUMN full_refund_hours_before;
