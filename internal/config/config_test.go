package config_test

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/config"
)

// testKey is a MANAGE_TOKEN_KEY of the least accepted length.
const testKey = "0123456789abcdef0123456789abcdef"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(env(map[string]string{
		"STRIPE_API_BASE":       "http://127.0.0.1:12111/",
		"STRIPE_WEBHOOK_SECRET": "whsec_a",
	}))
	require.NoError(t, err)
	require.Equal(t, config.DefaultDatabaseURL, c.DatabaseURL)
	require.Equal(t, ":8080", c.ListenAddr)
	require.Equal(t, "http://localhost:8080", c.PublicBaseURL.String())
	require.Equal(t, "http://127.0.0.1:12111", c.StripeAPIBase)
	require.Equal(t, []string{"whsec_a"}, c.StripeWebhookSecret)
	require.Equal(t, 300*time.Second, c.WebhookTolerance)
	require.Equal(t, 15*time.Minute, c.PendingHold)
	require.Equal(t, 30*time.Minute, c.CheckoutTTL)
	require.Equal(t, time.Minute, c.ReconcileInterval)
	require.True(t, c.CookieSecure)
	require.Empty(t, c.TrustedProxies, "no header is trusted unless configured")
	require.Equal(t, slog.LevelInfo, c.LogLevel)
	require.False(t, c.Livemode(), "a mock runs in test mode")
	require.Equal(t, config.RateLimit{Requests: 60, Window: time.Minute}, c.WriteRateLimit)
	require.Equal(t, 10, c.MaxHoldsPerClient)
	require.Equal(t, 3, c.MaxHoldsPerEmail)
	require.Empty(t, c.MetricsAddr, "/metrics on LISTEN_ADDR")
}

func TestParseAbuseLimits(t *testing.T) {
	t.Parallel()
	parse := func(kv ...string) (config.Config, error) {
		m := map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a", "MANAGE_TOKEN_KEY": testKey}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return config.Parse(env(m))
	}
	for value, want := range map[string]config.RateLimit{
		"600/1h":  {Requests: 600, Window: time.Hour},
		" 5/30s ": {Requests: 5, Window: 30 * time.Second},
		"off":     {Off: true},
		"OFF":     {Off: true},
	} {
		c, err := parse("WRITE_RATE_LIMIT", value)
		require.NoError(t, err, value)
		require.Equal(t, want, c.WriteRateLimit, value)
	}
	for _, value := range []string{"60", "60/", "/1m", "0/1m", "-1/1m", "60/minute", "60/0s", "60/48h", "lots"} {
		_, err := parse("WRITE_RATE_LIMIT", value)
		require.ErrorContains(t, err, "WRITE_RATE_LIMIT: must be REQUESTS/WINDOW", value)
	}

	c, err := parse("MAX_HOLDS_PER_CLIENT", "25", "MAX_HOLDS_PER_EMAIL", "1", "METRICS_ADDR", "127.0.0.1:9090")
	require.NoError(t, err)
	require.Equal(t, 25, c.MaxHoldsPerClient)
	require.Equal(t, 1, c.MaxHoldsPerEmail)
	require.Equal(t, "127.0.0.1:9090", c.MetricsAddr)
	for _, name := range []string{"MAX_HOLDS_PER_CLIENT", "MAX_HOLDS_PER_EMAIL"} {
		for _, value := range []string{"0", "-3", "ten", "1.5"} {
			_, err := parse(name, value)
			require.ErrorContains(t, err, name+": must be a whole number from 1 to 10000", value)
		}
	}
	_, err = parse("METRICS_ADDR", "9090")
	require.ErrorContains(t, err, "METRICS_ADDR: must be host:port")
}

func TestParse(t *testing.T) {
	t.Parallel()
	t.Run("SecretsForRotation", func(t *testing.T) {
		c, err := config.Parse(env(map[string]string{
			"STRIPE_SECRET_KEY":     "sk_test_abc",
			"STRIPE_WEBHOOK_SECRET": " whsec_old , whsec_new ,",
			"MANAGE_TOKEN_KEY":      testKey,
		}))
		require.NoError(t, err)
		require.Equal(t, []string{"whsec_old", "whsec_new"}, c.StripeWebhookSecret)
	})
	t.Run("LiveKeyIsLivemode", func(t *testing.T) {
		c, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "rk_live_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a", "MANAGE_TOKEN_KEY": testKey}))
		require.NoError(t, err)
		require.True(t, c.Livemode())
	})
	t.Run("MockOnlyOnThisMachine", func(t *testing.T) {
		_, err := config.Parse(env(map[string]string{"STRIPE_API_BASE": "http://mock.example.com", "STRIPE_WEBHOOK_SECRET": "whsec_a"}))
		require.EqualError(t, err, "STRIPE_SECRET_KEY: is required (or set STRIPE_API_BASE to a local stripe-mock)")
	})
	t.Run("FirstProblemNamed", func(t *testing.T) {
		_, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc"}))
		var cfgErr *config.Error
		require.ErrorAs(t, err, &cfgErr)
		require.Equal(t, "STRIPE_WEBHOOK_SECRET", cfgErr.Variable)
	})
	t.Run("TrustedProxies", func(t *testing.T) {
		c, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a", "MANAGE_TOKEN_KEY": testKey,
			"TRUSTED_PROXIES": "10.1.2.3/8, 192.0.2.7 ,fd00::/8"}))
		require.NoError(t, err)
		require.Equal(t, []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("fd00::/8"),
		}, c.TrustedProxies)
	})
	t.Run("BadTrustedProxies", func(t *testing.T) {
		_, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a", "MANAGE_TOKEN_KEY": testKey,
			"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}))
		require.ErrorContains(t, err, "TRUSTED_PROXIES: must be a comma-separated list of CIDR ranges")
	})
	t.Run("ManageTokenKeyRequiredWithARealStripe", func(t *testing.T) {
		_, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a"}))
		require.ErrorContains(t, err, "MANAGE_TOKEN_KEY: is required")
		_, err = config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a", "MANAGE_TOKEN_KEY": "short"}))
		require.EqualError(t, err, "MANAGE_TOKEN_KEY: must be at least 32 characters, got 5")
		c, err := config.Parse(env(map[string]string{"STRIPE_API_BASE": "http://127.0.0.1:12111", "STRIPE_WEBHOOK_SECRET": "whsec_a"}))
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(c.ManageTokenKey), 32, "a development key beside a local mock")
	})
	t.Run("BadListenAddr", func(t *testing.T) {
		_, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a", "MANAGE_TOKEN_KEY": testKey, "LISTEN_ADDR": "8080"}))
		require.ErrorContains(t, err, "LISTEN_ADDR")
	})
}

// TestParseMail: SMTP_URL and MAIL_FROM (SPEC §6). Without SMTP_URL e-mails
// go to the log; a bad value stops the process naming the variable, and the
// message never repeats the URL, which may hold a password.
func TestParseMail(t *testing.T) {
	t.Parallel()
	base := map[string]string{"STRIPE_API_BASE": "http://127.0.0.1:12111", "STRIPE_WEBHOOK_SECRET": "whsec_a"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	t.Run("DefaultsLogAndSendAsSlotpay", func(t *testing.T) {
		c, err := config.Parse(env(with()))
		require.NoError(t, err)
		require.Nil(t, c.SMTP)
		require.Equal(t, `"slotpay" <bookings@localhost>`, c.MailFrom.String())
		require.Equal(t, 30*time.Second, c.NotifyRetryBase)
	})
	t.Run("SMTPWithCredentials", func(t *testing.T) {
		c, err := config.Parse(env(with("SMTP_URL", "smtp://mailer:s3cret@mail.example:587")))
		require.NoError(t, err)
		require.Equal(t, &config.SMTP{Addr: "mail.example:587", Host: "mail.example", Username: "mailer", Password: "s3cret"}, c.SMTP)
	})
	t.Run("SMTPSDefaultsToPort465", func(t *testing.T) {
		c, err := config.Parse(env(with("SMTP_URL", "smtps://mail.example")))
		require.NoError(t, err)
		require.Equal(t, "mail.example:465", c.SMTP.Addr)
		require.True(t, c.SMTP.TLS)
	})
	for name, v := range map[string]string{"Scheme": "http://mail.example", "NoHost": "smtp://", "Path": "smtp://u:hunter2@mail.example/x"} {
		t.Run("Bad"+name, func(t *testing.T) {
			_, err := config.Parse(env(with("SMTP_URL", v)))
			require.ErrorContains(t, err, "SMTP_URL: ")
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
	t.Run("BadMailFrom", func(t *testing.T) {
		_, err := config.Parse(env(with("MAIL_FROM", "not an address")))
		require.ErrorContains(t, err, "MAIL_FROM: ")
	})
}
