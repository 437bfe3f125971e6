// Package config reads slotpay's configuration from the environment (SPEC §6).
// Parsing fails on the first bad variable with an error that names it, so a
// misconfigured process stops at start with one clear line.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/slotpay/slotpay/internal/managetoken"
)

// Config is the whole runtime configuration.
type Config struct {
	DatabaseURL         string
	ListenAddr          string
	PublicBaseURL       *url.URL
	StripeSecretKey     string
	StripeAPIBase       string // empty means Stripe's own API
	StripeWebhookSecret []string
	WebhookTolerance    time.Duration
	PendingHold         time.Duration
	CheckoutTTL         time.Duration
	ReconcileInterval   time.Duration
	CookieSecure        bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed; empty means the client is whoever opened the connection.
	TrustedProxies []netip.Prefix
	LogLevel       slog.Level
	// Abuse limits (SPEC §3.2), and where /metrics is served: empty means
	// on ListenAddr.
	WriteRateLimit    RateLimit
	MaxHoldsPerClient int
	MaxHoldsPerEmail  int
	MetricsAddr       string
	// ManageTokenKey derives the customers' manage tokens (SPEC §3.1,
	// internal/managetoken). It must stay the same across restarts and
	// instances: the confirmation e-mail derives the token again.
	ManageTokenKey []byte
	// SMTP is where customer e-mails go (SMTP_URL); nil writes them to the
	// log instead. MailFrom is their sender (MAIL_FROM).
	SMTP     *SMTP
	MailFrom *mail.Address
	// NotifyRetryBase is the first wait before a failed e-mail or webhook
	// delivery is tried again; each later wait doubles, up to six hours
	// (internal/notify). Tests shorten it.
	NotifyRetryBase time.Duration
	// MetricsPprof adds net/http/pprof's handlers to the METRICS_ADDR
	// listener, for profiling a running server (make bench does); never on
	// the public one.
	MetricsPprof bool
}

// SMTP is a parsed SMTP_URL: smtp:// (STARTTLS when the server offers it)
// or smtps:// (TLS from the first byte), with optional credentials.
type SMTP struct {
	Addr     string // host:port
	Host     string
	TLS      bool // smtps://
	Username string
	Password string
}

// DefaultMailFrom is MAIL_FROM's default (SPEC §6).
const DefaultMailFrom = "slotpay <bookings@localhost>"

// Defaults are the embedded defaults of SPEC §6.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/slotpay?sslmode=disable"
	DefaultListenAddr  = ":8080"
	DefaultPublicBase  = "http://localhost:8080"
)

// mockSecretKey stands in for STRIPE_SECRET_KEY when the API is a local mock,
// which accepts any test-mode key.
const mockSecretKey = "sk_test_slotpaymock000000"

// mockManageTokenKey stands in for MANAGE_TOKEN_KEY beside a local mock, where
// no real payment, and so no real booking, can exist.
const mockManageTokenKey = "slotpay-development-only-manage-token-key"

// Stripe's limits on a Checkout Session's expires_at.
const (
	minCheckoutTTL = 30 * time.Minute
	maxCheckoutTTL = 24 * time.Hour
)

// Error names the variable that is wrong.
type Error struct {
	Variable string
	Problem  string
}

func (e *Error) Error() string { return e.Variable + ": " + e.Problem }

// Parse builds a Config from getenv, which is os.Getenv in production.
func Parse(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		DatabaseURL:       p.str("DATABASE_URL", DefaultDatabaseURL),
		ListenAddr:        p.str("LISTEN_ADDR", DefaultListenAddr),
		PublicBaseURL:     p.baseURL("PUBLIC_BASE_URL", DefaultPublicBase),
		StripeAPIBase:     p.apiBase("STRIPE_API_BASE"),
		WebhookTolerance:  p.duration("WEBHOOK_TOLERANCE", 300*time.Second, time.Second, time.Hour),
		PendingHold:       p.duration("PENDING_HOLD", 15*time.Minute, time.Minute, 24*time.Hour),
		CheckoutTTL:       p.duration("CHECKOUT_TTL", minCheckoutTTL, minCheckoutTTL, maxCheckoutTTL),
		ReconcileInterval: p.duration("RECONCILE_INTERVAL", time.Minute, time.Second, 24*time.Hour),
		CookieSecure:      p.boolean("COOKIE_SECURE", true),
		TrustedProxies:    p.prefixes("TRUSTED_PROXIES"),
		LogLevel:          p.logLevel("LOG_LEVEL"),
		WriteRateLimit:    p.rateLimit("WRITE_RATE_LIMIT", DefaultWriteRateLimit),
		MaxHoldsPerClient: p.count("MAX_HOLDS_PER_CLIENT", DefaultMaxHoldsPerClient, 1, 10_000),
		MaxHoldsPerEmail:  p.count("MAX_HOLDS_PER_EMAIL", DefaultMaxHoldsPerEmail, 1, 10_000),
		MetricsAddr:       p.optionalAddr("METRICS_ADDR"),
		SMTP:              p.smtpURL("SMTP_URL"),
		MailFrom:          p.mailFrom("MAIL_FROM", DefaultMailFrom),
		NotifyRetryBase:   p.duration("NOTIFY_RETRY_BASE", 30*time.Second, 100*time.Millisecond, time.Hour),
		MetricsPprof:      p.boolean("METRICS_PPROF", false),
	}
	c.StripeSecretKey = p.secretKey("STRIPE_SECRET_KEY", c.StripeAPIBase)
	c.StripeWebhookSecret = p.webhookSecrets("STRIPE_WEBHOOK_SECRET")
	c.ManageTokenKey = p.manageTokenKey("MANAGE_TOKEN_KEY", c.StripeAPIBase)
	if p.err != nil {
		return Config{}, p.err
	}
	if _, err := url.Parse(c.DatabaseURL); err != nil || !strings.HasPrefix(c.DatabaseURL, "postgres") {
		return Config{}, &Error{"DATABASE_URL", "must be a postgres:// URL"}
	}
	if c.MetricsPprof && c.MetricsAddr == "" {
		return Config{}, &Error{"METRICS_PPROF", "needs METRICS_ADDR: profiles are served only on the private listener"}
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return Config{}, &Error{"LISTEN_ADDR", fmt.Sprintf("must be host:port, got %q", c.ListenAddr)}
	}
	return c, nil
}

// Livemode reports whether the secret key is a live-mode key; events whose
// livemode differs are not for this deployment.
func (c Config) Livemode() bool {
	return strings.HasPrefix(c.StripeSecretKey, "sk_live_") || strings.HasPrefix(c.StripeSecretKey, "rk_live_")
}

// parser keeps the first error so that Parse reads as a list of fields.
type parser struct {
	getenv func(string) string
	err    error
}

func (p *parser) fail(name, problem string) {
	if p.err == nil {
		p.err = &Error{name, problem}
	}
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) duration(name string, def, lo, hi time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.fail(name, fmt.Sprintf("not a duration: %q (e.g. 300s, 15m)", v))
		return def
	}
	if d < lo || d > hi {
		p.fail(name, fmt.Sprintf("must be between %s and %s, got %s", lo, hi, d))
	}
	return d
}

func (p *parser) boolean(name string, def bool) bool {
	switch strings.ToLower(strings.TrimSpace(p.getenv(name))) {
	case "":
		return def
	case "true", "1", "yes":
		return true
	case "false", "0", "no":
		return false
	default:
		p.fail(name, "must be true or false")
		return def
	}
}

// prefixes reads a comma-separated list of CIDR ranges; a bare address is
// a range of one.
func (p *parser) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for v := range strings.SplitSeq(p.getenv(name), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(v)
		if err != nil {
			addr, addrErr := netip.ParseAddr(v)
			if addrErr != nil {
				p.fail(name, fmt.Sprintf("must be a comma-separated list of CIDR ranges (e.g. 10.0.0.0/8, fd00::/8), got %q", v))
				return nil
			}
			prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		out = append(out, prefix.Masked())
	}
	return out
}

func (p *parser) logLevel(name string) slog.Level {
	var l slog.Level
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return slog.LevelInfo
	}
	if err := l.UnmarshalText([]byte(v)); err != nil {
		p.fail(name, "must be debug, info, warn or error")
	}
	return l
}

func (p *parser) baseURL(name, def string) *url.URL {
	v := strings.TrimRight(p.str(name, def), "/")
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, fmt.Sprintf("must be an absolute http(s) URL, got %q", v))
		return &url.URL{}
	}
	return u
}

func (p *parser) apiBase(name string) string {
	v := strings.TrimRight(strings.TrimSpace(p.getenv(name)), "/")
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, fmt.Sprintf("must be an absolute http(s) URL, got %q", v))
	}
	return v
}

// secretKey requires a key unless the API base is a mock on this machine.
func (p *parser) secretKey(name, apiBase string) string {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		if isLoopback(apiBase) {
			return mockSecretKey
		}
		p.fail(name, "is required (or set STRIPE_API_BASE to a local stripe-mock)")
		return ""
	}
	if !strings.HasPrefix(v, "sk_") && !strings.HasPrefix(v, "rk_") {
		p.fail(name, "must be a Stripe secret or restricted key (sk_… or rk_…)")
	}
	return v
}

// manageTokenKey requires a key of at least managetoken.KeyMinBytes unless
// the API base is a mock on this machine.
func (p *parser) manageTokenKey(name, apiBase string) []byte {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		if isLoopback(apiBase) {
			return []byte(mockManageTokenKey)
		}
		p.fail(name, "is required: at least 32 random characters (e.g. `openssl rand -hex 32`), the same on every instance")
		return nil
	}
	if len(v) < managetoken.KeyMinBytes {
		p.fail(name, fmt.Sprintf("must be at least %d characters, got %d", managetoken.KeyMinBytes, len(v)))
	}
	return []byte(v)
}

func (p *parser) webhookSecrets(name string) []string {
	var secrets []string
	for s := range strings.SplitSeq(p.getenv(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) == 0 {
		p.fail(name, "is required: the signing secret of the Stripe webhook endpoint (whsec_…); several may be given, comma-separated, while rotating")
	}
	return secrets
}

func isLoopback(base string) bool {
	u, err := url.Parse(base)
	if err != nil || base == "" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// smtpURL reads SMTP_URL: smtp://[user:pass@]host[:port] (port 25 by
// default; STARTTLS when offered) or smtps://… (port 465). Empty means no
// SMTP server: e-mails are written to the log.
func (p *parser) smtpURL(name string) *SMTP {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return nil
	}
	// The URL may carry a password: the error never quotes it.
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		p.fail(name, "must be smtp://[user:password@]host[:port] or smtps://[user:password@]host[:port]")
		return nil
	}
	s := &SMTP{Host: u.Hostname(), TLS: u.Scheme == "smtps"}
	port := u.Port()
	if port == "" {
		port = "25"
		if s.TLS {
			port = "465"
		}
	}
	s.Addr = net.JoinHostPort(s.Host, port)
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	return s
}

func (p *parser) mailFrom(name, def string) *mail.Address {
	v := p.str(name, def)
	a, err := mail.ParseAddress(v)
	if err != nil {
		p.fail(name, fmt.Sprintf("must be an e-mail address such as %q, got %q", def, v))
		return &mail.Address{}
	}
	return a
}
