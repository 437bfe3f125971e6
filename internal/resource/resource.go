// Package resource creates and changes bookable resources (SPEC §2) for the
// back office, refusing any whose booking rules could not work: an unknown
// time zone, opening hours that do not hold whole slots, a length range no
// day can fit.
package resource

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
)

var (
	slugPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
)

// Validate checks a resource as a whole. Messages are safe for clients.
func Validate(r db.Resource) error {
	invalid := func(format string, args ...any) error { return apperr.New(apperr.InvalidRequest, format, args...) }
	switch {
	case !slugPattern.MatchString(r.Slug):
		return invalid("slug must be lowercase letters, digits and dashes, at most 63")
	case r.Name == "" || len(r.Name) > 200:
		return invalid("name must have 1 to 200 characters")
	case len(r.Description) > 2000:
		return invalid("description must have at most 2000 characters")
	case !currencyPattern.MatchString(r.Currency):
		return invalid("currency must be a lowercase ISO 4217 code such as eur")
	case r.UnitAmount < 1 || r.UnitAmount > 99999999:
		return invalid("unit_amount must be between 1 and 99999999 minor units")
	case r.SlotMinutes < 5 || r.SlotMinutes > 1440:
		return invalid("slot_minutes must be between 5 and 1440")
	case r.MinSlots < 1 || r.MaxSlots < r.MinSlots:
		return invalid("min_slots must be at least 1 and max_slots at least min_slots")
	case r.MinNoticeMinutes < 0:
		return invalid("min_notice_minutes must not be negative")
	case r.HorizonDays < 1 || r.HorizonDays > 730:
		return invalid("horizon_days must be between 1 and 730")
	}
	if err := booking.PolicyOf(r).Validate(); err != nil {
		return err
	}
	// "Local" and "" load too, but mean this server's zone and UTC: a
	// resource names its zone.
	if r.Timezone == "" || r.Timezone == "Local" || len(r.Timezone) > 64 {
		return invalid("timezone must be an IANA time zone such as Europe/Berlin")
	}
	if _, err := time.LoadLocation(r.Timezone); err != nil {
		return invalid("timezone %q is not an IANA time zone", r.Timezone)
	}
	open, closing := r.OpenTime.Microseconds, r.CloseTime.Microseconds
	slot := int64(r.SlotMinutes) * int64(time.Minute/time.Microsecond)
	if !r.OpenTime.Valid || !r.CloseTime.Valid || closing <= open {
		return invalid("close_time must be after open_time")
	}
	if (closing-open)%slot != 0 {
		return invalid("the opening hours must hold a whole number of %d-minute slots", r.SlotMinutes)
	}
	if perDay := (closing - open) / slot; int64(r.MaxSlots) > perDay {
		return invalid("max_slots must be at most %d, the slots of one day", perDay)
	}
	return nil
}

// Create adds a resource with a new id, recorded in the audit trail in the
// same transaction. A taken slug is invalid_state.
func Create(ctx context.Context, pool *pgxpool.Pool, r db.Resource, by audit.Actor) (db.Resource, error) {
	r.ID = uuid.Must(uuid.NewV7())
	if err := Validate(r); err != nil {
		return db.Resource{}, err
	}
	var created db.Resource
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		var err error
		created, err = q.ResourceInsert(ctx, db.ResourceInsertParams{
			ID: r.ID, Slug: r.Slug, Name: r.Name, Description: r.Description, Timezone: r.Timezone,
			Currency: r.Currency, UnitAmount: r.UnitAmount, SlotMinutes: r.SlotMinutes,
			MinSlots: r.MinSlots, MaxSlots: r.MaxSlots, OpenTime: r.OpenTime, CloseTime: r.CloseTime,
			MinNoticeMinutes: r.MinNoticeMinutes, HorizonDays: r.HorizonDays, Active: r.Active,
			FullRefundHoursBefore: r.FullRefundHoursBefore, PartialRefundHoursBefore: r.PartialRefundHoursBefore,
			PartialRefundPercent: r.PartialRefundPercent,
		})
		if err != nil {
			return slugTaken(err, r.Slug, "create resource")
		}
		return audit.Record(ctx, q, by, audit.ResourceCreate, created.ID)
	})
	return created, err
}

// Update applies edit to the resource under its row lock and stores the
// result if the resource as a whole is still valid, recorded in the audit
// trail in the same transaction.
func Update(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID, edit func(*db.Resource), by audit.Actor) (db.Resource, error) {
	var updated db.Resource
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		r, err := q.ResourceGetByIDForUpdate(ctx, id)
		if database.IsNotFound(err) {
			return apperr.New(apperr.NotFound, "resource not found")
		}
		if err != nil {
			return fmt.Errorf("lock resource %s: %w", id, err)
		}
		edit(&r)
		r.ID = id
		if err := Validate(r); err != nil {
			return err
		}
		updated, err = q.ResourceUpdate(ctx, db.ResourceUpdateParams{
			ID: r.ID, Slug: r.Slug, Name: r.Name, Description: r.Description, Timezone: r.Timezone,
			Currency: r.Currency, UnitAmount: r.UnitAmount, SlotMinutes: r.SlotMinutes,
			MinSlots: r.MinSlots, MaxSlots: r.MaxSlots, OpenTime: r.OpenTime, CloseTime: r.CloseTime,
			MinNoticeMinutes: r.MinNoticeMinutes, HorizonDays: r.HorizonDays, Active: r.Active,
			FullRefundHoursBefore: r.FullRefundHoursBefore, PartialRefundHoursBefore: r.PartialRefundHoursBefore,
			PartialRefundPercent: r.PartialRefundPercent,
		})
		if err != nil {
			return slugTaken(err, r.Slug, "update resource "+id.String())
		}
		return audit.Record(ctx, q, by, audit.ResourceUpdate, id)
	})
	return updated, err
}

// slugTaken names the slug a unique violation is about; any other error is
// wrapped with what was being done.
func slugTaken(err error, slug, doing string) error {
	if database.IsUniqueViolation(err) {
		return apperr.New(apperr.InvalidState, "a resource with the slug %q exists", slug)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// ParseClock reads a local "HH:MM".
func ParseClock(s string) (pgtype.Time, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return pgtype.Time{}, apperr.New(apperr.InvalidRequest, "%q is not a time of day HH:MM", s)
	}
	return pgtype.Time{Microseconds: int64(t.Hour()*60+t.Minute()) * int64(time.Minute/time.Microsecond), Valid: true}, nil
}
