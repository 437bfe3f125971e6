-- name: AdvisoryLockXact :exec
-- Serialises a check-and-record for one key (a sign-in e-mail or address, a
-- hold cap's client or e-mail) across instances, for the rest of the
-- transaction. Held for a few short statements, never across password
-- hashing or a call to Stripe.
SELECT pg_advisory_xact_lock(hashtextextended(@key::text, 0));
