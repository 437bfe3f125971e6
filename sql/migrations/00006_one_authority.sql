-- +goose Up

-- The two rules of SPEC §2.1 that SQL needs, each written once. The exclusion
-- constraint, every query and the Go side (booking.Status.HoldsSlot,
-- booking.HoldLapsed, checked against these by a test) agree on them.
-- IMMUTABLE: PostgreSQL allows only immutable functions in an index
-- predicate, and the time is an argument, never now().

-- +goose StatementBegin
CREATE FUNCTION booking_holds_slot(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT status IN ('pending_payment', 'processing', 'confirmed', 'needs_review') $$;
-- +goose StatementEnd

-- A hold has lapsed when it is still pending payment, its time ran out and
-- no Checkout Session was created for it: nobody can pay it any more, so it
-- is expired and its slot released.
-- +goose StatementBegin
CREATE FUNCTION booking_hold_lapsed(status text, checkout_session_id text, hold_expires_at timestamptz, at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT status = 'pending_payment' AND checkout_session_id IS NULL AND hold_expires_at <= at $$;
-- +goose StatementEnd

-- The same hold with a session: the session may still be paid, so Stripe
-- must expire it before the slot is released (SPEC §2.2).
-- +goose StatementBegin
CREATE FUNCTION booking_session_lapsed(status text, checkout_session_id text, hold_expires_at timestamptz, at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT status = 'pending_payment' AND checkout_session_id IS NOT NULL AND hold_expires_at <= at $$;
-- +goose StatementEnd

ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap;
ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
    resource_id WITH =,
    tstzrange(starts_at, ends_at, '[)') WITH &&
) WHERE (booking_holds_slot(status));

-- A booking is born pending_payment: the insert names no status, so that the
-- one statement that sets a status is BookingTransition.
ALTER TABLE bookings ALTER COLUMN status SET DEFAULT 'pending_payment';

-- Back-office users whose actions show in the history and the audit trail
-- are kept, not deleted.
ALTER TABLE booking_status_changes ADD COLUMN operator_id uuid REFERENCES admin_users (id);
ALTER TABLE booking_status_changes ADD CONSTRAINT booking_status_changes_operator_cause
    CHECK ((cause = 'operator_cancel') = (operator_id IS NOT NULL));

-- Every operator action (SPEC §3), written in the transaction of its effect:
-- a row here means the action took effect, and an action that rolled back
-- left none. Actions from the command line (admin create-user) have no
-- operator and no request.
CREATE TABLE admin_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator_id uuid REFERENCES admin_users (id),
    via         text NOT NULL CHECK (via IN ('api', 'cli')),
    action      text NOT NULL CHECK (action IN (
                    'booking.refund', 'booking.cancel', 'resource.create', 'resource.update',
                    'admin_user.create', 'admin_user.update')),
    target_type text NOT NULL CHECK (target_type IN ('booking', 'resource', 'admin_user')),
    target_id   uuid NOT NULL,
    request_id  text CHECK (length(request_id) <= 200),
    at          timestamptz NOT NULL DEFAULT now(),
    CHECK (via = 'cli' OR (operator_id IS NOT NULL AND request_id IS NOT NULL))
);

CREATE INDEX admin_audit_target_idx ON admin_audit (target_id, id);
CREATE INDEX admin_audit_operator_idx ON admin_audit (operator_id, id);

-- +goose Down
DROP TABLE admin_audit;
ALTER TABLE booking_status_changes DROP CONSTRAINT booking_status_changes_operator_cause;
ALTER TABLE booking_status_changes DROP COLUMN operator_id;
ALTER TABLE bookings ALTER COLUMN status DROP DEFAULT;
ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap;
ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
    resource_id WITH =,
    tstzrange(starts_at, ends_at, '[)') WITH &&
) WHERE (status IN ('pending_payment', 'processing', 'confirmed', 'needs_review'));
DROP FUNCTION booking_session_lapsed(text, text, timestamptz, timestamptz);
DROP FUNCTION booking_hold_lapsed(text, text, timestamptz, timestamptz);
DROP FUNCTION booking_holds_slot(text);
