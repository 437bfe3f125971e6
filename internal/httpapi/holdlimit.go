package httpapi

import "github.com/slotpay/slotpay/internal/booking"

// DefaultHoldCaps are SPEC §3.2's defaults (MAX_HOLDS_PER_CLIENT,
// MAX_HOLDS_PER_EMAIL): enough for a family booking a week of sessions, too
// few to hoard a calendar.
var DefaultHoldCaps = booking.HoldCaps{PerClient: 10, PerEmail: 3}

// holdCaps is Config.HoldCaps with its defaults: a zero cap means the
// default, a negative one no cap (for tests that must hold many slots).
func (s *Server) holdCaps() booking.HoldCaps {
	pick := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return booking.HoldCaps{
		PerClient: pick(s.cfg.HoldCaps.PerClient, DefaultHoldCaps.PerClient),
		PerEmail:  pick(s.cfg.HoldCaps.PerEmail, DefaultHoldCaps.PerEmail),
	}
}
