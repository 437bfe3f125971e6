package config_test

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/config"
)

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
}

func TestParse(t *testing.T) {
	t.Parallel()
	t.Run("SecretsForRotation", func(t *testing.T) {
		c, err := config.Parse(env(map[string]string{
			"STRIPE_SECRET_KEY":     "sk_test_abc",
			"STRIPE_WEBHOOK_SECRET": " whsec_old , whsec_new ,",
		}))
		require.NoError(t, err)
		require.Equal(t, []string{"whsec_old", "whsec_new"}, c.StripeWebhookSecret)
	})
	t.Run("LiveKeyIsLivemode", func(t *testing.T) {
		c, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "rk_live_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a"}))
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
		c, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a",
			"TRUSTED_PROXIES": "10.1.2.3/8, 192.0.2.7 ,fd00::/8"}))
		require.NoError(t, err)
		require.Equal(t, []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("fd00::/8"),
		}, c.TrustedProxies)
	})
	t.Run("BadTrustedProxies", func(t *testing.T) {
		_, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a",
			"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}))
		require.ErrorContains(t, err, "TRUSTED_PROXIES: must be a comma-separated list of CIDR ranges")
	})
	t.Run("BadListenAddr", func(t *testing.T) {
		_, err := config.Parse(env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_a", "LISTEN_ADDR": "8080"}))
		require.ErrorContains(t, err, "LISTEN_ADDR")
	})
}
