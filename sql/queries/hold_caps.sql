-- name: HoldCapWait :one
-- SPEC §3.2: how many seconds until this client and this e-mail may hold one
-- more slot: until enough of their open unpaid holds lapse that fewer than
-- the cap remain (the cap-th latest to lapse has to go). Zero means now. A
-- NULL client or a cap of zero counts nothing. Run under the caps' locks
-- (AdvisoryLockXact), in the transaction that inserts the hold.
SELECT coalesce(ceil(extract(epoch FROM greatest(
    (SELECT b.hold_expires_at FROM bookings b
     WHERE sqlc.arg(client_cap)::int > 0 AND b.client_addr = sqlc.narg(client_addr)::inet
       AND b.status = 'pending_payment' AND b.hold_expires_at > now()
     ORDER BY b.hold_expires_at DESC OFFSET greatest(sqlc.arg(client_cap)::int - 1, 0) LIMIT 1),
    (SELECT b.hold_expires_at FROM bookings b
     WHERE sqlc.arg(email_cap)::int > 0 AND lower(b.customer_email) = lower(sqlc.arg(email)::text)
       AND b.status = 'pending_payment' AND b.hold_expires_at > now()
     ORDER BY b.hold_expires_at DESC OFFSET greatest(sqlc.arg(email_cap)::int - 1, 0) LIMIT 1)
) - now())), 0)::bigint AS seconds;

-- name: BookingSetClientAddr :exec
-- Records which client a new hold came from, in the transaction that
-- inserts it.
UPDATE bookings SET client_addr = @client_addr WHERE id = @id;
