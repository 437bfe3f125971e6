package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// RateLimit is WRITE_RATE_LIMIT: Requests state-changing requests per
// client address per Window. Off lifts the limit.
type RateLimit struct {
	Requests int
	Window   time.Duration
	Off      bool
}

// Defaults of SPEC §3.2.
var DefaultWriteRateLimit = RateLimit{Requests: 60, Window: time.Minute}

const (
	DefaultMaxHoldsPerClient = 10
	DefaultMaxHoldsPerEmail  = 3
)

// rateLimit reads "N/DURATION" (60/1m, 600/1h), or "off".
func (p *parser) rateLimit(name string, def RateLimit) RateLimit {
	v := strings.TrimSpace(p.getenv(name))
	switch strings.ToLower(v) {
	case "":
		return def
	case "off":
		return RateLimit{Off: true}
	}
	count, window, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	d, derr := time.ParseDuration(strings.TrimSpace(window))
	if !ok || err != nil || derr != nil || n < 1 || n > 1_000_000 || d < time.Second || d > 24*time.Hour {
		p.fail(name, fmt.Sprintf("must be REQUESTS/WINDOW with 1 to 1000000 requests and a window from 1s to 24h (e.g. 60/1m), or off; got %q", v))
		return def
	}
	return RateLimit{Requests: n, Window: d}
}

// count reads a whole number within [lo, hi].
func (p *parser) count(name string, def, lo, hi int) int {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("must be a whole number from %d to %d, got %q", lo, hi, v))
		return def
	}
	return n
}

// optionalAddr reads an optional host:port.
func (p *parser) optionalAddr(name string) string {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		p.fail(name, fmt.Sprintf("must be host:port (e.g. 127.0.0.1:9090), got %q", v))
	}
	return v
}
