-- +goose Up

-- A confirmation's last statements travel in one flight with their COMMIT
-- (payment.Process, database.Flight): PostgreSQL runs the COMMIT unless a
-- statement before it failed, and a BookingTransition that found another
-- status than its caller read (booking.ErrStatusChanged) fails nothing by
-- itself; it only returns no row. This check, queued right after it, makes
-- that case fail the transaction, so the COMMIT behind it rolls back
-- instead of recording the event without its status change. Under the row
-- lock the transition holds this never fails; it is the same check as
-- ErrStatusChanged, made before the commit rather than after it.
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

-- +goose Down
DROP FUNCTION booking_assert_status(uuid, text);
