-- +goose Up

-- Back-office users (SPEC §3). Emails are stored lowercased, so the unique
-- constraint is case-insensitive without the citext extension.
CREATE TABLE admin_users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (
                      email = lower(email) AND length(email) BETWEEN 3 AND 254 AND position('@' IN email) > 1),
    role          text NOT NULL CHECK (role IN ('readonly', 'ops', 'admin')),
    -- argon2id in the PHC string format, parameters included, so they can be
    -- raised later without invalidating older hashes.
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Sessions live here, not in the process, so that every instance honours a
-- login and a logout. Only the SHA-256 of the 256-bit cookie token is stored:
-- a leaked table does not hand out sessions.
CREATE TABLE admin_sessions (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    uuid NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK (expires_at > created_at)
);

CREATE INDEX admin_sessions_user_idx ON admin_sessions (user_id);
CREATE INDEX admin_sessions_expires_idx ON admin_sessions (expires_at);

-- Every login attempt, for throttling across instances and for audit. The
-- email is whatever was typed (lowercased), whether or not such a user exists.
CREATE TABLE login_attempts (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email   text NOT NULL CHECK (length(email) <= 254),
    ip      inet NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    success boolean NOT NULL
);

-- The throttle reads the recent failures of one email and of one address.
CREATE INDEX login_attempts_email_failed_idx ON login_attempts (email, at) WHERE NOT success;
CREATE INDEX login_attempts_ip_failed_idx ON login_attempts (ip, at) WHERE NOT success;
CREATE INDEX login_attempts_at_idx ON login_attempts (at);

-- +goose Down
DROP TABLE login_attempts;
DROP TABLE admin_sessions;
DROP TABLE admin_users;
