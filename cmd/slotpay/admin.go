package main

import (
	"context"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
)

// openDatabase is the start of every command that needs only the database:
// it reads DATABASE_URL without requiring the Stripe settings.
func openDatabase(ctx context.Context, getenv func(string) string) (*pgxpool.Pool, error) {
	url := getenv("DATABASE_URL")
	if url == "" {
		url = config.DefaultDatabaseURL
	}
	return database.Open(ctx, url)
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{}
	}
	pool, err := openDatabase(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	p, sqlDB, err := database.Migrator(pool)
	if err != nil {
		return err
	}
	defer sqlDB.Close()

	switch args[0] {
	case "up":
		results, err := p.Up(ctx)
		for _, r := range results {
			fmt.Fprintf(stdout, "applied %s (%s)\n", r.Source.Path, r.Duration.Round(1000))
		}
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		riverApplied, err := database.RiverMigrateUp(ctx, pool)
		for _, v := range riverApplied {
			fmt.Fprintf(stdout, "applied river %03d\n", v)
		}
		if err != nil {
			return err
		}
		version, err := p.GetDBVersion(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "database at version %d, river at version %d\n", version, database.RiverVersion())
	case "down":
		r, err := p.Down(ctx)
		if err != nil {
			return fmt.Errorf("migrate down: %w", err)
		}
		fmt.Fprintf(stdout, "rolled back %s\n", r.Source.Path)
	case "status":
		statuses, err := p.Status(ctx)
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		for _, s := range statuses {
			applied := "pending"
			if !s.AppliedAt.IsZero() {
				applied = "applied " + s.AppliedAt.Format("2006-01-02 15:04:05Z07:00")
			}
			fmt.Fprintf(stdout, "%05d  %-40s %s\n", s.Source.Version, s.Source.Path, applied)
		}
		if err := riverStatus(ctx, pool, stdout); err != nil {
			return err
		}
	default:
		return usageError{}
	}
	return nil
}

// riverStatus lists River's migrations like goose's: River's job tables are
// part of the schema `migrate up` manages. `migrate down` rolls back only
// slotpay's own migrations; River's stay until removed with River's tools.
func riverStatus(ctx context.Context, pool *pgxpool.Pool, stdout io.Writer) error {
	m, err := database.RiverMigrator(pool)
	if err != nil {
		return err
	}
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		return fmt.Errorf("migrate status: river: %w", err)
	}
	applied := make(map[int]bool, len(existing))
	for _, v := range existing {
		applied[v.Version] = true
	}
	for _, v := range m.AllVersions() {
		state := "pending"
		if applied[v.Version] {
			state = "applied"
		}
		// River's names ("pending and more") would be mistaken for states.
		fmt.Fprintf(stdout, "river %03d  %s\n", v.Version, state)
	}
	return nil
}

// Demo resources have fixed ids so that the README's walkthrough can name
// them.
var demoResources = []db.ResourceUpsertBySlugParams{
	{
		ID:               uuid.MustParse("0193a5e0-7b1a-7c3e-9f00-00000000a001"),
		Slug:             "studio-a",
		Name:             "Studio A",
		Description:      "Recording studio with a live room. Times in UTC.",
		Timezone:         "UTC",
		Currency:         "eur",
		UnitAmount:       4500,
		SlotMinutes:      60,
		MinSlots:         1,
		MaxSlots:         4,
		OpenTime:         clockTime(9, 0),
		CloseTime:        clockTime(21, 0),
		MinNoticeMinutes: 60,
		HorizonDays:      60,
		Active:           true,
	},
	{
		ID:               uuid.MustParse("0193a5e0-7b1a-7c3e-9f00-00000000a002"),
		Slug:             "meeting-room",
		Name:             "Meeting Room",
		Description:      "Ten seats, a screen and a whiteboard, in Berlin.",
		Timezone:         "Europe/Berlin",
		Currency:         "eur",
		UnitAmount:       1500,
		SlotMinutes:      30,
		MinSlots:         1,
		MaxSlots:         8,
		OpenTime:         clockTime(8, 0),
		CloseTime:        clockTime(18, 0),
		MinNoticeMinutes: 30,
		HorizonDays:      30,
		Active:           true,
	},
}

func clockTime(h, m int64) pgtype.Time {
	return pgtype.Time{Microseconds: (h*60 + m) * 60 * 1e6, Valid: true}
}

func seedDemo(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	pool, err := openDatabase(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	return seed(ctx, pool, stdout)
}

func seed(ctx context.Context, pool *pgxpool.Pool, stdout io.Writer) error {
	q := database.New(pool)
	for _, r := range demoResources {
		got, err := q.ResourceUpsertBySlug(ctx, r)
		if err != nil {
			return fmt.Errorf("seed %s: %w", r.Slug, err)
		}
		fmt.Fprintf(stdout, "resource %s %s\n", got.Slug, got.ID)
	}
	return nil
}
