package booking_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/booking"
)

func berlinRules(t *testing.T) booking.Rules {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	return booking.Rules{
		Location: loc, Slot: 30 * time.Minute, MinSlots: 2, MaxSlots: 4,
		Open: 9 * time.Hour, Close: 18 * time.Hour,
		MinNotice: time.Hour, Horizon: 30 * 24 * time.Hour, UnitAmount: 1500,
	}
}

// TestValidate proves each slot rule of SPEC §2: grid, opening hours, one day,
// slot count, notice and horizon.
func TestValidate(t *testing.T) {
	t.Parallel()
	r := berlinRules(t)
	// 2026-12-10 is in winter: Berlin is UTC+1.
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	local := func(day, h, m int) time.Time { return time.Date(2026, 12, day, h, m, 0, 0, r.Location) }
	slot := func(from, to time.Time) booking.Slot { return booking.Slot{StartsAt: from, EndsAt: to} }

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, r.Validate(slot(local(10, 9, 0), local(10, 10, 0)), now))
		require.NoError(t, r.Validate(slot(local(10, 16, 0), local(10, 18, 0)), now), "ending at closing time")
		// The same instants written in UTC are the same slot.
		require.NoError(t, r.Validate(slot(local(10, 9, 30).UTC(), local(10, 10, 30).UTC()), now))
	})
	invalid := map[string]booking.Slot{
		"EndsBeforeStart":      slot(local(10, 10, 0), local(10, 9, 0)),
		"Empty":                slot(local(10, 10, 0), local(10, 10, 0)),
		"OffGridStart":         slot(local(10, 9, 15), local(10, 10, 15)),
		"OffGridSeconds":       slot(local(10, 9, 0).Add(time.Second), local(10, 10, 0).Add(time.Second)),
		"OffGridLength":        slot(local(10, 9, 0), local(10, 10, 10)),
		"BeforeOpening":        slot(local(10, 8, 30), local(10, 9, 30)),
		"AfterClosing":         slot(local(10, 17, 30), local(10, 18, 30)),
		"SpansTwoDays":         slot(local(10, 17, 0), local(11, 10, 0)),
		"TooFewSlots":          slot(local(10, 9, 0), local(10, 9, 30)),
		"TooManySlots":         slot(local(10, 9, 0), local(10, 11, 30)),
		"WithinNotice":         slot(now.Add(30*time.Minute), now.Add(90*time.Minute)),
		"BeyondHorizon":        slot(local(31, 9, 0), local(31, 10, 0)),
		"InThePast":            slot(local(1, 9, 0).AddDate(0, 0, -1), local(1, 10, 0).AddDate(0, 0, -1)),
		"HorizonExactBoundary": slot(now.Add(r.Horizon), now.Add(r.Horizon+time.Hour)),
	}
	for name, s := range invalid {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := r.Validate(s, now)
			require.Error(t, err)
			require.Equal(t, apperr.InvalidRequest, apperr.CodeOf(err))
		})
	}
}

func TestValidateAcrossDSTChange(t *testing.T) {
	t.Parallel()
	r := berlinRules(t)
	r.Horizon = 365 * 24 * time.Hour
	now := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	// 2027-03-28 Berlin moves from UTC+1 to UTC+2: opening hours stay 09:00
	// local, so the first slot starts at 07:00 UTC.
	start := time.Date(2027, 3, 28, 7, 0, 0, 0, time.UTC)
	require.NoError(t, r.Validate(booking.Slot{StartsAt: start, EndsAt: start.Add(time.Hour)}, now))
	require.Error(t, r.Validate(booking.Slot{StartsAt: start.Add(-time.Hour), EndsAt: start}, now))
}

func TestPrice(t *testing.T) {
	t.Parallel()
	r := berlinRules(t)
	start := time.Date(2026, 12, 10, 9, 0, 0, 0, r.Location)
	require.Equal(t, int64(3*1500), r.Price(booking.Slot{StartsAt: start, EndsAt: start.Add(90 * time.Minute)}))
}

func TestFreeSlots(t *testing.T) {
	t.Parallel()
	r := berlinRules(t)
	now := time.Date(2026, 12, 10, 10, 10, 0, 0, r.Location) // notice: from 11:10
	busy := []booking.Slot{{
		StartsAt: time.Date(2026, 12, 10, 12, 0, 0, 0, r.Location),
		EndsAt:   time.Date(2026, 12, 10, 13, 0, 0, 0, r.Location),
	}}
	free := r.FreeSlots(2026, time.December, 10, busy, now)
	var starts []string
	for _, s := range free {
		starts = append(starts, s.StartsAt.In(r.Location).Format("15:04"))
	}
	require.Equal(t, []string{"11:30", "13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30", "17:00", "17:30"}, starts)
}
