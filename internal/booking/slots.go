// Package booking holds slotpay's booking rules: the slot grid and price of a
// resource, holding a slot, and the lifecycle state machine (lifecycle.go).
package booking

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
)

// Slot is a half-open interval [StartsAt, EndsAt).
type Slot struct {
	StartsAt time.Time
	EndsAt   time.Time
}

func (s Slot) overlaps(o Slot) bool {
	return s.StartsAt.Before(o.EndsAt) && o.StartsAt.Before(s.EndsAt)
}

// Rules are a resource's booking rules, in Go types.
type Rules struct {
	Location   *time.Location
	Slot       time.Duration
	MinSlots   int
	MaxSlots   int
	Open       time.Duration // since local midnight
	Close      time.Duration
	MinNotice  time.Duration
	Horizon    time.Duration
	UnitAmount int64
}

// RulesOf reads a resource's rules. A resource whose timezone Go cannot load
// is a data error, reported as such.
func RulesOf(r db.Resource) (Rules, error) {
	loc, err := time.LoadLocation(r.Timezone)
	if err != nil {
		return Rules{}, fmt.Errorf("resource %s: timezone %q: %w", r.ID, r.Timezone, err)
	}
	return Rules{
		Location:   loc,
		Slot:       time.Duration(r.SlotMinutes) * time.Minute,
		MinSlots:   int(r.MinSlots),
		MaxSlots:   int(r.MaxSlots),
		Open:       sinceMidnight(r.OpenTime),
		Close:      sinceMidnight(r.CloseTime),
		MinNotice:  time.Duration(r.MinNoticeMinutes) * time.Minute,
		Horizon:    time.Duration(r.HorizonDays) * 24 * time.Hour,
		UnitAmount: r.UnitAmount,
	}, nil
}

func sinceMidnight(t pgtype.Time) time.Duration {
	return time.Duration(t.Microseconds) * time.Microsecond
}

// openingHours returns the day's opening interval. Local wall-clock times are
// resolved in the resource's zone, so a DST change moves the instants, not the
// hours on the door.
func (r Rules) openingHours(year int, month time.Month, day int) Slot {
	at := func(d time.Duration) time.Time {
		return time.Date(year, month, day, int(d/time.Hour), int(d%time.Hour/time.Minute), 0, 0, r.Location)
	}
	return Slot{StartsAt: at(r.Open), EndsAt: at(r.Close)}
}

// Price is the server-computed amount for a valid slot: unit_amount per slot.
func (r Rules) Price(s Slot) int64 {
	return r.UnitAmount * int64(s.EndsAt.Sub(s.StartsAt)/r.Slot)
}

// Validate checks a requested slot against the grid, opening hours, length,
// notice and horizon, as seen at now. The message is safe for clients.
func (r Rules) Validate(s Slot, now time.Time) error {
	invalid := func(format string, args ...any) error { return apperr.New(apperr.InvalidRequest, format, args...) }
	if !s.StartsAt.Before(s.EndsAt) {
		return invalid("ends_at must be after starts_at")
	}
	local := s.StartsAt.In(r.Location)
	hours := r.openingHours(local.Year(), local.Month(), local.Day())
	if s.StartsAt.Before(hours.StartsAt) || s.EndsAt.After(hours.EndsAt) {
		return invalid("the slot must lie within one day's opening hours, %s to %s (%s)",
			hours.StartsAt.Format("15:04"), hours.EndsAt.Format("15:04"), r.Location)
	}
	if s.StartsAt.Sub(hours.StartsAt)%r.Slot != 0 || s.EndsAt.Sub(s.StartsAt)%r.Slot != 0 {
		return invalid("starts_at and ends_at must lie on the %d-minute slot grid from opening time", int(r.Slot/time.Minute))
	}
	if n := int(s.EndsAt.Sub(s.StartsAt) / r.Slot); n < r.MinSlots || n > r.MaxSlots {
		return invalid("a booking spans %d to %d slots of %d minutes; this one spans %d", r.MinSlots, r.MaxSlots, int(r.Slot/time.Minute), n)
	}
	if s.StartsAt.Before(now.Add(r.MinNotice)) {
		return invalid("starts_at must be at least %d minutes from now", int(r.MinNotice/time.Minute))
	}
	if !s.StartsAt.Before(now.Add(r.Horizon)) {
		return invalid("starts_at must be within %d days from now", int(r.Horizon/(24*time.Hour)))
	}
	return nil
}

// FreeSlots lists the single slots of a local date that are bookable at now
// and overlap none of busy.
func (r Rules) FreeSlots(year int, month time.Month, day int, busy []Slot, now time.Time) []Slot {
	hours := r.openingHours(year, month, day)
	free := []Slot{}
	for start := hours.StartsAt; !start.Add(r.Slot).After(hours.EndsAt); start = start.Add(r.Slot) {
		s := Slot{StartsAt: start, EndsAt: start.Add(r.Slot)}
		if s.StartsAt.Before(now.Add(r.MinNotice)) || !s.StartsAt.Before(now.Add(r.Horizon)) {
			continue
		}
		taken := false
		for _, b := range busy {
			if s.overlaps(b) {
				taken = true
				break
			}
		}
		if !taken {
			free = append(free, s)
		}
	}
	return free
}
