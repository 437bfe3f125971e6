-- +goose Up

-- btree_gist lets one exclusion constraint combine equality on resource_id with
-- range overlap on the booked interval: the database, not the application, is
-- the last word on double booking.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE resources (
    id                 uuid PRIMARY KEY,
    slug               text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    timezone           text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    currency           text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    unit_amount        bigint NOT NULL CHECK (unit_amount > 0 AND unit_amount <= 99999999),
    slot_minutes       integer NOT NULL CHECK (slot_minutes BETWEEN 5 AND 1440),
    min_slots          integer NOT NULL CHECK (min_slots >= 1),
    max_slots          integer NOT NULL CHECK (max_slots >= min_slots),
    open_time          time NOT NULL,
    close_time         time NOT NULL CHECK (close_time > open_time),
    min_notice_minutes integer NOT NULL DEFAULT 0 CHECK (min_notice_minutes >= 0),
    horizon_days       integer NOT NULL CHECK (horizon_days BETWEEN 1 AND 730),
    active             boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bookings (
    id                  uuid PRIMARY KEY,
    resource_id         uuid NOT NULL REFERENCES resources (id),
    customer_email      text NOT NULL CHECK (length(customer_email) BETWEEN 3 AND 254 AND position('@' IN customer_email) > 1),
    customer_name       text NOT NULL CHECK (length(customer_name) BETWEEN 1 AND 200),
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    status              text NOT NULL CHECK (status IN (
                            'pending_payment', 'processing', 'confirmed', 'needs_review',
                            'refund_pending', 'expired', 'payment_failed', 'cancelled', 'refunded')),
    amount_total        bigint NOT NULL CHECK (amount_total > 0),
    currency            text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    hold_expires_at     timestamptz NOT NULL,
    -- The expires_at slotpay chose for this booking's Checkout Session, written
    -- before Stripe is called so that concurrent and retried calls send Stripe
    -- identical parameters under one idempotency key.
    checkout_expires_at timestamptz,
    checkout_session_id text UNIQUE,
    checkout_url        text,
    payment_intent_id   text UNIQUE,
    disputed            boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at),
    -- SPEC invariant 1: no two slot-holding bookings of one resource overlap.
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
        resource_id WITH =,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (status IN ('pending_payment', 'processing', 'confirmed', 'needs_review'))
);

-- Lookups by resource and time range (availability, lapsed holds in the way
-- of a new booking) use the GiST index of bookings_no_overlap; lookups by
-- checkout session and payment intent use their unique indexes.

-- The payment ledger: every verified Stripe event, exactly once.
CREATE TABLE payment_events (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stripe_event_id     text NOT NULL UNIQUE,
    type                text NOT NULL,
    api_version         text NOT NULL,
    livemode            boolean NOT NULL,
    stripe_created_at   timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    source              text NOT NULL CHECK (source IN ('webhook', 'reconcile', 'replay')),
    booking_id          uuid REFERENCES bookings (id),
    checkout_session_id text,
    payment_intent_id   text,
    outcome             text NOT NULL CHECK (outcome IN ('applied', 'ignored', 'unmatched', 'review')),
    detail              text NOT NULL DEFAULT '',
    payload             jsonb NOT NULL,
    -- Set when an event first recorded as unmatched was applied once its
    -- booking became identifiable.
    resolved_at         timestamptz
);

CREATE INDEX payment_events_booking_idx ON payment_events (booking_id, id);
CREATE INDEX payment_events_unmatched_session_idx ON payment_events (checkout_session_id)
    WHERE outcome = 'unmatched';
CREATE INDEX payment_events_unmatched_intent_idx ON payment_events (payment_intent_id)
    WHERE outcome = 'unmatched';

CREATE TABLE booking_status_changes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id      uuid NOT NULL REFERENCES bookings (id),
    from_status     text,
    to_status       text NOT NULL,
    cause           text NOT NULL,
    stripe_event_id text REFERENCES payment_events (stripe_event_id),
    at              timestamptz NOT NULL DEFAULT now(),
    CHECK (from_status IS DISTINCT FROM to_status)
);

CREATE INDEX booking_status_changes_booking_idx ON booking_status_changes (booking_id, id);
-- SPEC invariant 3, held by the database: a booking is confirmed at most once,
-- and one Stripe event causes at most one transition.
CREATE UNIQUE INDEX booking_status_changes_confirmed_once_idx ON booking_status_changes (booking_id)
    WHERE to_status = 'confirmed';
CREATE UNIQUE INDEX booking_status_changes_event_once_idx ON booking_status_changes (stripe_event_id)
    WHERE stripe_event_id IS NOT NULL;

-- Stored first responses for Idempotency-Key (SPEC §3).
CREATE TABLE idempotency_keys (
    key             text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    request_hash    bytea NOT NULL,
    -- While a first request is in flight its response is NULL; the lease lets a
    -- retry take the key over if the instance handling it died.
    locked_until    timestamptz,
    response_status integer,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((response_status IS NULL) = (response_body IS NULL))
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE booking_status_changes;
DROP TABLE payment_events;
DROP TABLE bookings;
DROP TABLE resources;
