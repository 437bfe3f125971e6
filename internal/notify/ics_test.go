package notify_test

import (
	"net/mail"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/notify"
)

// TestICSIsRFC5545: CRLF line ends, no line longer than 75 octets (folded
// with a leading space, never inside a UTF-8 sequence), TEXT escaped, UTC
// times.
func TestICSIsRFC5545(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	ics := string(notify.ICS(notify.CalendarEvent{
		Method: "REQUEST", UID: "b1@slotpay", Sequence: 3, Stamp: start, Start: start, End: start.Add(time.Hour),
		Summary:   strings.Repeat("Grüße, Studio; A\\ ", 8),
		Organizer: &mail.Address{Name: "slotpay", Address: "bookings@localhost"},
		Attendee:  &mail.Address{Name: `Ada "The Countess" Lovelace`, Address: "ada@example.com"},
	}))
	require.True(t, strings.HasSuffix(ics, "END:VCALENDAR\r\n"))
	require.NotContains(t, strings.ReplaceAll(ics, "\r\n", ""), "\n", "every line ends in CRLF")
	for _, line := range strings.Split(strings.TrimSuffix(ics, "\r\n"), "\r\n") {
		require.LessOrEqual(t, len(line), 75, line)
		require.True(t, utf8.ValidString(line), "folded between runes: %q", line)
	}
	unfolded := strings.ReplaceAll(ics, "\r\n ", "")
	require.Contains(t, unfolded, `SUMMARY:Grüße\, Studio\; A\\ Grüße`)
	require.Contains(t, unfolded, "DTSTART:20261202T090000Z\r\n")
	require.Contains(t, unfolded, "SEQUENCE:3\r\n")
	require.Contains(t, unfolded, `ATTENDEE;CN="Ada The Countess Lovelace";`)
}
