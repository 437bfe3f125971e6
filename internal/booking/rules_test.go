package booking_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestSlotHoldingStatuses_SQLAndGoAgree holds booking_holds_slot, which the
// bookings_no_overlap constraint and the queries use, equal to
// Status.HoldsSlot for every status the bookings table accepts.
func TestSlotHoldingStatuses_SQLAndGoAgree(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)

	var accepted []string
	require.NoError(t, tdb.Pool.QueryRow(t.Context(), `
		SELECT array_agg(m[1] ORDER BY m[1]) FROM regexp_matches(
			pg_get_constraintdef((SELECT oid FROM pg_constraint WHERE conname = 'bookings_status_check')),
			'''([a-z_]+)''', 'g') AS m`).Scan(&accepted))
	var goStatuses []string
	for _, s := range booking.Statuses {
		goStatuses = append(goStatuses, string(s))
	}
	require.ElementsMatch(t, accepted, goStatuses, "booking.Statuses lists what the table accepts")

	for _, s := range booking.Statuses {
		var holds bool
		require.NoError(t, tdb.Pool.QueryRow(t.Context(), "SELECT booking_holds_slot($1)", string(s)).Scan(&holds))
		require.Equal(t, s.HoldsSlot(), holds, s)
	}

	var constraint string
	require.NoError(t, tdb.Pool.QueryRow(t.Context(),
		"SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'bookings_no_overlap'").Scan(&constraint))
	require.Contains(t, constraint, "WHERE (booking_holds_slot(status))", "the constraint uses the one definition")
}

// TestLapseConditions_SQLAndGoAgree holds booking_hold_lapsed and
// booking_session_lapsed equal to Booking.HoldLapsed and
// Booking.SessionLapsed for every status, with and without a session, and
// a hold ending before, at and after the moment judged.
func TestLapseConditions_SQLAndGoAgree(t *testing.T) {
	t.Parallel()
	tdb := testkit.NewDatabase(t)
	at := time.Now().UTC().Truncate(time.Microsecond)

	for _, s := range booking.Statuses {
		for _, session := range []*string{nil, new("cs_test_a")} {
			for _, ends := range []time.Duration{-time.Second, 0, time.Second} {
				b := booking.Booking{Status: s, HasSession: session != nil, HoldExpiresAt: at.Add(ends)}
				var holdLapsed, sessionLapsed bool
				require.NoError(t, tdb.Pool.QueryRow(t.Context(),
					"SELECT booking_hold_lapsed($1, $2, $3, $4), booking_session_lapsed($1, $2, $3, $4)",
					string(s), session, b.HoldExpiresAt, at).Scan(&holdLapsed, &sessionLapsed))
				require.Equal(t, b.HoldLapsed(at), holdLapsed, "%s, session %t, ends %s", s, b.HasSession, ends)
				require.Equal(t, b.SessionLapsed(at), sessionLapsed, "%s, session %t, ends %s", s, b.HasSession, ends)
			}
		}
	}
}

// TestOneStatementSetsBookingStatus: every status change is the one
// conditional update that records it (BookingTransition), so no other
// statement in sql/queries may assign bookings.status, nor name it in an
// insert into bookings.
func TestOneStatementSetsBookingStatus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "sql", "queries", "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, files)

	// The SET list of an UPDATE of bookings: up to its WHERE, RETURNING
	// or the statement's end.
	setList := regexp.MustCompile(`(?is)UPDATE\s+bookings\s+SET\s+(.*?)(?:\bWHERE\b|\bRETURNING\b|;|$)`)
	assignsStatus := regexp.MustCompile(`(?i)(^|[\s,])status\s*=`)
	inserts := regexp.MustCompile(`(?is)INSERT\s+INTO\s+bookings\s*\([^)]*\bstatus\b`)
	var found []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, stmt := range strings.Split(string(src), "-- name: ") {
			sets := false
			for _, m := range setList.FindAllStringSubmatch(stmt, -1) {
				sets = sets || assignsStatus.MatchString(m[1])
			}
			if sets || inserts.MatchString(stmt) {
				found = append(found, filepath.Base(f)+": "+strings.Fields(stmt)[0])
			}
		}
	}
	require.Equal(t, []string{"bookings.sql: BookingTransition"}, found)
}
