-- +goose Up

-- Notifications (SPEC §9) through a transactional outbox. The outbox is
-- River's own job table: a deferred trigger on booking_status_changes inserts
-- one `notify` job for every status change a customer or the merchant may
-- have to hear about, in the transaction that made the change, so a change
-- that commits has its job and one that rolls back has none, whichever code
-- path made it (docs/adr/0006-notification-outbox.md). River documents its
-- job table as a cross-language contract (its Python, Ruby and Java clients
-- insert rows the same way). The trigger is deferred to commit so that the
-- booking it snapshots is the one the transaction committed (a reschedule
-- moves starts_at in the same transaction, before or after its transition).

-- The merchant's webhook endpoints (SPEC §9). secret signs every delivery;
-- after a rotation previous_secret signs too, until previous_secret_until,
-- so a receiver can switch without dropping a delivery.
CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    event_types           text[] NOT NULL CHECK (cardinality(event_types) > 0),
    secret                text NOT NULL,
    previous_secret       text,
    previous_secret_until timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- One row per event a transition or a dispute calls for: id is the event id
-- a webhook receiver deduplicates on and the e-mail's Message-ID; data is the
-- booking as the transaction committed it. source_key says what made it, so
-- a fan-out job run twice adds nothing.
CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    booking_id       uuid NOT NULL REFERENCES bookings (id),
    type             text NOT NULL,
    email_kind       text,
    source_key       text NOT NULL UNIQUE,
    status_change_id bigint REFERENCES booking_status_changes (id),
    data             jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_booking ON notifications (booking_id, created_at);

-- Every delivery attempt, of either channel, as the worker saw it.
CREATE TABLE notification_attempts (
    id              bigserial PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications (id),
    channel         text NOT NULL CHECK (channel IN ('email', 'webhook')),
    endpoint_id     uuid REFERENCES webhook_endpoints (id) ON DELETE SET NULL,
    target          text NOT NULL,
    attempt         integer NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'logged')),
    status_code     integer,
    error           text,
    duration_ms     integer NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_attempts_notification ON notification_attempts (notification_id, id);
CREATE INDEX notification_attempts_channel ON notification_attempts (channel, id);

-- Changes to the endpoints are operator actions, audited like the others.
ALTER TABLE admin_audit DROP CONSTRAINT admin_audit_action_check;
ALTER TABLE admin_audit ADD CONSTRAINT admin_audit_action_check CHECK (action IN (
    'booking.refund', 'booking.cancel', 'resource.create', 'resource.update',
    'admin_user.create', 'admin_user.update',
    'webhook_endpoint.create', 'webhook_endpoint.rotate', 'webhook_endpoint.delete'));
ALTER TABLE admin_audit DROP CONSTRAINT admin_audit_target_type_check;
ALTER TABLE admin_audit ADD CONSTRAINT admin_audit_target_type_check
    CHECK (target_type IN ('booking', 'resource', 'admin_user', 'webhook_endpoint'));

-- +goose StatementBegin
CREATE FUNCTION notify_enqueue(args jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- River's insert, as its other-language clients write it: kind
    -- `notify` (internal/notify), the default queue, available now.
    INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, metadata, tags)
    VALUES (args, 'notify', 25, 1, 'default', 'available', now(), '{}', '{}');
    -- No pg_notify to wake River: NOTIFY takes a database-wide lock at
    -- commit, which would serialise every confirming transaction (the
    -- webhook path's throughput). River's producers poll (about a second).
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION notify_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_enqueue(jsonb_build_object(
        'status_change_id', NEW.id,
        'booking', (SELECT to_jsonb(b) - 'manage_token_hash' FROM bookings b WHERE b.id = NEW.booking_id)));
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Only the statuses someone is told about; which notice (if any) follows is
-- decided in Go from (from_status, to_status, cause): notify.Decide.
CREATE CONSTRAINT TRIGGER booking_status_changes_notify
    AFTER INSERT ON booking_status_changes
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.to_status IN ('confirmed', 'needs_review', 'cancelled', 'refunded'))
    EXECUTE FUNCTION notify_status_change();

-- +goose StatementBegin
CREATE FUNCTION notify_dispute() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_enqueue(jsonb_build_object(
        'dispute_status', coalesce(NEW.dispute_status, ''),
        'dispute_at', NEW.dispute_status_at,
        'booking', (SELECT to_jsonb(b) - 'manage_token_hash' FROM bookings b WHERE b.id = NEW.id)));
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- A dispute changes no status (SPEC §2.1): the merchant hears of each new
-- dispute status (booking.disputed) from the bookings row itself.
CREATE CONSTRAINT TRIGGER bookings_dispute_notify
    AFTER UPDATE OF disputed, dispute_status ON bookings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.disputed AND (NOT OLD.disputed OR NEW.dispute_status IS DISTINCT FROM OLD.dispute_status))
    EXECUTE FUNCTION notify_dispute();

-- +goose Down
DROP TRIGGER bookings_dispute_notify ON bookings;
DROP TRIGGER booking_status_changes_notify ON booking_status_changes;
DROP FUNCTION notify_dispute();
DROP FUNCTION notify_status_change();
DROP FUNCTION notify_enqueue(jsonb);
DELETE FROM admin_audit WHERE target_type = 'webhook_endpoint';
ALTER TABLE admin_audit DROP CONSTRAINT admin_audit_target_type_check;
ALTER TABLE admin_audit ADD CONSTRAINT admin_audit_target_type_check
    CHECK (target_type IN ('booking', 'resource', 'admin_user'));
ALTER TABLE admin_audit DROP CONSTRAINT admin_audit_action_check;
ALTER TABLE admin_audit ADD CONSTRAINT admin_audit_action_check CHECK (action IN (
    'booking.refund', 'booking.cancel', 'resource.create', 'resource.update',
    'admin_user.create', 'admin_user.update'));
DROP TABLE notification_attempts;
DROP TABLE notifications;
DROP TABLE webhook_endpoints;
