package notify

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// CalendarEvent is one calendar entry of an .ics (RFC 5545) as iTIP (RFC 5546)
// sends it: METHOD:REQUEST to add or update, METHOD:CANCEL to remove. UID is
// the booking's, so every revision updates the same entry; SEQUENCE grows
// with each reschedule, so a calendar applies revisions in order.
type CalendarEvent struct {
	Method    string
	UID       string
	Sequence  int
	Stamp     time.Time
	Start     time.Time
	End       time.Time
	Summary   string
	Organizer *mail.Address
	Attendee  *mail.Address
	URL       string
}

const icsTime = "20060102T150405Z"

// ICS renders ev as a VCALENDAR: CRLF line ends, lines folded at 75 octets,
// TEXT values escaped, times in UTC.
func ICS(ev CalendarEvent) []byte {
	var b bytes.Buffer
	line := func(s string) { b.WriteString(fold(s)) }
	status := "CONFIRMED"
	if ev.Method == "CANCEL" {
		status = "CANCELLED"
	}
	line("BEGIN:VCALENDAR")
	line("VERSION:2.0")
	line("PRODID:-//slotpay//bookings//EN")
	line("CALSCALE:GREGORIAN")
	line("METHOD:" + ev.Method)
	line("BEGIN:VEVENT")
	line("UID:" + escapeText(ev.UID))
	line(fmt.Sprintf("SEQUENCE:%d", ev.Sequence))
	line("DTSTAMP:" + ev.Stamp.UTC().Format(icsTime))
	line("DTSTART:" + ev.Start.UTC().Format(icsTime))
	line("DTEND:" + ev.End.UTC().Format(icsTime))
	line("SUMMARY:" + escapeText(ev.Summary))
	line("STATUS:" + status)
	if ev.URL != "" {
		line("URL:" + ev.URL)
	}
	if ev.Organizer != nil {
		line("ORGANIZER;CN=" + paramValue(ev.Organizer.Name) + ":mailto:" + ev.Organizer.Address)
	}
	if ev.Attendee != nil {
		line("ATTENDEE;CN=" + paramValue(ev.Attendee.Name) + ";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=FALSE:mailto:" + ev.Attendee.Address)
	}
	line("END:VEVENT")
	line("END:VCALENDAR")
	return b.Bytes()
}

// escapeText escapes a TEXT value (RFC 5545 §3.3.11).
func escapeText(s string) string {
	return strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\r\n", `\n`, "\n", `\n`, "\r", "").Replace(s)
}

// paramValue quotes a parameter value, which may not hold a DQUOTE
// (RFC 5545 §3.2).
func paramValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r < 0x20 {
			return -1
		}
		return r
	}, s)
	return `"` + s + `"`
}

// fold ends a content line with CRLF, folding it at 75 octets without
// splitting a UTF-8 sequence (RFC 5545 §3.1).
func fold(s string) string {
	var b strings.Builder
	limit := 75
	for len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		b.WriteString(s[:cut])
		b.WriteString("\r\n ")
		s = s[cut:]
		limit = 74 // the continuation's leading space counts
	}
	b.WriteString(s)
	b.WriteString("\r\n")
	return b.String()
}
