package database_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestInterpret_DriverErrorsArriveAsDomainErrors: queries made through
// database.New never hand a caller a bare pgx error for the failures slotpay
// gives a meaning; the driver's error stays the cause, for logs and the Is…
// checks.
func TestInterpret_DriverErrorsArriveAsDomainErrors(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	q := database.New(tdb.Pool)
	r := testkit.CreateResource(t, tdb, nil)

	t.Run("ErrNoRows_NotFound", func(t *testing.T) {
		t.Parallel()
		_, err := q.BookingGetByID(t.Context(), uuid.New())
		require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
		require.ErrorIs(t, err, pgx.ErrNoRows)
		require.True(t, database.IsNotFound(err))
	})
	t.Run("UniqueViolation_InvalidState", func(t *testing.T) {
		t.Parallel()
		_, err := q.ResourceInsert(t.Context(), db.ResourceInsertParams{
			ID: uuid.New(), Slug: r.Slug, Name: "Twin", Timezone: "UTC", Currency: "eur", UnitAmount: 1, SlotMinutes: 60,
			MinSlots: 1, MaxSlots: 1, OpenTime: r.OpenTime, CloseTime: r.CloseTime, HorizonDays: 1,
		})
		require.Equal(t, apperr.InvalidState, apperr.CodeOf(err))
		require.True(t, database.IsUniqueViolation(err))
	})
	t.Run("ExclusionViolation_SlotUnavailable", func(t *testing.T) {
		t.Parallel()
		first := testkit.CreateBooking(t, tdb, testkit.BookingOpts{Resource: &r, StartsAt: testkit.TomorrowAt(14), EndsAt: testkit.TomorrowAt(15)})
		_, err := q.BookingInsert(t.Context(), db.BookingInsertParams{
			ID: uuid.New(), ResourceID: r.ID, CustomerEmail: "x@example.com", CustomerName: "X",
			StartsAt: first.StartsAt, EndsAt: first.EndsAt, AmountTotal: 1, Currency: "eur", HoldExpiresAt: first.HoldExpiresAt,
		})
		require.Equal(t, apperr.SlotUnavailable, apperr.CodeOf(err))
		require.True(t, database.IsOverlap(err))
	})
	t.Run("DataException_InvalidRequest", func(t *testing.T) {
		t.Parallel()
		_, err := q.BookingInsert(t.Context(), db.BookingInsertParams{
			ID: uuid.New(), ResourceID: r.ID, CustomerEmail: "x@example.com", CustomerName: "nul\x00",
			StartsAt: testkit.TomorrowAt(16), EndsAt: testkit.TomorrowAt(17), AmountTotal: 1, Currency: "eur", HoldExpiresAt: testkit.TomorrowAt(9),
		})
		require.Equal(t, apperr.InvalidRequest, apperr.CodeOf(err))
		require.True(t, database.IsDataException(err))
	})
	t.Run("OtherErrorsUnchanged", func(t *testing.T) {
		t.Parallel()
		other := errors.New("connection reset")
		require.Same(t, other, database.Interpret(other))
		require.NoError(t, database.Interpret(nil))
	})
}
