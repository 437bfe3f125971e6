-- +goose Up

-- BookingTransition fails by itself when the booking does not have the
-- status its caller read (sql/queries/bookings.sql): a confirmation's last
-- flight (payment.Process) no longer needs a check of its own after it,
-- so booking_assert_status (migration 00013) goes.
-- +goose StatementBegin
CREATE FUNCTION booking_moved(moved uuid, booking uuid, from_status text, to_status text) RETURNS uuid
LANGUAGE plpgsql
AS $$
BEGIN
    IF moved IS NULL THEN
        RAISE EXCEPTION 'booking % is not %, so it cannot move to %: its status changed under a row lock',
            booking, from_status, to_status
            USING ERRCODE = 'SP001';
    END IF;
    RETURN moved;
END
$$;
-- +goose StatementEnd

DROP FUNCTION booking_assert_status(uuid, text);

-- +goose Down
-- +goose StatementBegin
CREATE FUNCTION booking_assert_status(booking uuid, expected text) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM bookings WHERE id = booking AND status = expected) THEN
        RAISE EXCEPTION 'booking % is not %: its status changed under a row lock', booking, expected
            USING ERRCODE = 'P0001';
    END IF;
END
$$;
-- +goose StatementEnd
DROP FUNCTION booking_moved(uuid, uuid, text, text);
