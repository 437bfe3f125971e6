-- +goose Up

-- The customer's manage_token (SPEC §3.1). The token itself is never stored:
-- manage_token_hash is its SHA-256, checked in constant time; the salt lets
-- the server derive the same token again (an HMAC under MANAGE_TOKEN_KEY) for
-- the confirmation e-mail's manage link, long after the 201 that first
-- returned it. Bookings made before this migration have neither and can be
-- managed only by an operator.
ALTER TABLE bookings ADD COLUMN manage_token_salt bytea CHECK (length(manage_token_salt) = 16);
ALTER TABLE bookings ADD COLUMN manage_token_hash bytea CHECK (length(manage_token_hash) = 32);
ALTER TABLE bookings ADD CONSTRAINT bookings_manage_token_pair
    CHECK ((manage_token_salt IS NULL) = (manage_token_hash IS NULL));

-- +goose Down
ALTER TABLE bookings DROP CONSTRAINT bookings_manage_token_pair;
ALTER TABLE bookings DROP COLUMN manage_token_hash;
ALTER TABLE bookings DROP COLUMN manage_token_salt;
