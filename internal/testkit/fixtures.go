package testkit

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/slotpay/slotpay/gen/db"
)

// CreateResource is the resource factory: a bookable UTC resource open
// 09:00–21:00 with 60-minute slots of 45.00 eur, 1 to 4 slots, no notice and
// a 30-day horizon; edit changes it before it is stored.
func CreateResource(t testing.TB, d TestDB, edit func(*db.ResourceUpsertBySlugParams)) db.Resource {
	t.Helper()
	p := db.ResourceUpsertBySlugParams{
		ID:               uuid.Must(uuid.NewV7()),
		Slug:             "studio-" + uuid.NewString()[:8],
		Name:             "Studio",
		Timezone:         "UTC",
		Currency:         "eur",
		UnitAmount:       4500,
		SlotMinutes:      60,
		MinSlots:         1,
		MaxSlots:         4,
		OpenTime:         pgtype.Time{Microseconds: 9 * 3600 * 1e6, Valid: true},
		CloseTime:        pgtype.Time{Microseconds: 21 * 3600 * 1e6, Valid: true},
		MinNoticeMinutes: 0,
		HorizonDays:      30,
		Active:           true,
	}
	if edit != nil {
		edit(&p)
	}
	r, err := db.New(d.Pool).ResourceUpsertBySlug(t.Context(), p)
	if err != nil {
		t.Fatalf("testkit: create resource: %v", err)
	}
	return r
}

// TomorrowAt is tomorrow (UTC) at hour:00: always bookable on a resource
// from CreateResource.
func TomorrowAt(hour int) time.Time {
	d := time.Now().UTC().AddDate(0, 0, 1)
	return time.Date(d.Year(), d.Month(), d.Day(), hour, 0, 0, 0, time.UTC)
}
