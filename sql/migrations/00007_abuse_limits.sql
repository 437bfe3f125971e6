-- +goose Up

-- SPEC §3.2: the client address (an IPv4 address, or the /64 of an IPv6 one)
-- a hold came from, so that open unpaid holds can be counted per client.
-- NULL for bookings made before this column existed and by the command line.
ALTER TABLE bookings ADD COLUMN client_addr inet;

-- The hold caps count open pending_payment holds of one client, and of one
-- e-mail whatever its case, inside every new hold's transaction.
CREATE INDEX bookings_open_holds_client_idx ON bookings (client_addr, hold_expires_at)
    WHERE status = 'pending_payment';
CREATE INDEX bookings_open_holds_email_idx ON bookings (lower(customer_email), hold_expires_at)
    WHERE status = 'pending_payment';

-- SPEC §3: a session also ends after an hour unused.
ALTER TABLE admin_sessions ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();

-- The sign-in throttle also counts failures of one e-mail from one address.
CREATE INDEX login_attempts_pair_failed_idx ON login_attempts (email, ip, at) WHERE NOT success;

-- +goose Down
DROP INDEX login_attempts_pair_failed_idx;
ALTER TABLE admin_sessions DROP COLUMN last_seen_at;
DROP INDEX bookings_open_holds_email_idx;
DROP INDEX bookings_open_holds_client_idx;
ALTER TABLE bookings DROP COLUMN client_addr;
