-- name: StatusChangeInsert :exec
INSERT INTO booking_status_changes (booking_id, from_status, to_status, cause, stripe_event_id)
VALUES (@booking_id, @from_status, @to_status, @cause, @stripe_event_id);

-- name: StatusChangeListByBooking :many
SELECT * FROM booking_status_changes WHERE booking_id = $1 ORDER BY id;
