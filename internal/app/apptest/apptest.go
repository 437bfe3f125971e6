// Package apptest builds slotpay instances for tests through app.New, the
// same wiring `serve` uses, over a test's own database and Stripe stand-in.
// (It is not part of testkit: testkit is imported by packages that app
// itself imports.)
package apptest

import (
	"context"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/app"
	"github.com/slotpay/slotpay/internal/baseservice"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/testkit"
)

// WebhookSecret is the signing secret of test instances.
const WebhookSecret = "whsec_test_current"

// Opts change a test instance; the zero value is a test-mode instance.
type Opts struct {
	// Configure changes the configuration before the instance is wired.
	Configure func(*config.Config)
	// Logger defaults to discarding everything.
	Logger *slog.Logger
	// Metrics gives the instance a metrics registry of its own.
	Metrics bool
	// App options: the periodic reconciler, the River client's id.
	App app.Options
}

// Config is a test instance's configuration: the defaults of SPEC §6 with a
// test-mode key and a webhook secret.
func Config(publicBase *url.URL) config.Config {
	return config.Config{
		PublicBaseURL:       publicBase,
		StripeSecretKey:     "sk_test_123",
		StripeWebhookSecret: []string{WebhookSecret},
		WebhookTolerance:    300 * time.Second,
		PendingHold:         15 * time.Minute,
		CheckoutTTL:         30 * time.Minute,
		ReconcileInterval:   time.Minute,
		CookieSecure:        true,
		LogLevel:            slog.LevelInfo,
		ManageTokenKey:      []byte("slotpay-test-manage-token-key-0123456789"),
		// Deliveries that fail are retried within a test's patience.
		NotifyRetryBase: 200 * time.Millisecond,
	}
}

// New wires an instance over pool, talking to the Stripe API at stripeURL
// (stripe-mock or a testkit.StripeFake). Its jobs are not worked until Start.
func New(t testing.TB, pool *pgxpool.Pool, stripeURL string, opts *Opts) *app.App {
	t.Helper()
	if opts == nil {
		opts = &Opts{}
	}
	public, err := url.Parse("http://localhost:8080")
	require.NoError(t, err)
	cfg := Config(public)
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	arch := &baseservice.Archetype{
		Config: cfg, Logger: opts.Logger, Pool: pool, Stripe: testkit.StripeClient(t, stripeURL),
	}
	if arch.Logger == nil {
		arch.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics {
		arch.Metrics = metrics.New(pool)
	}
	a, err := app.New(arch, opts.App)
	require.NoError(t, err)
	return a
}

// Start works a's jobs until the test ends.
func Start(t testing.TB, a *app.App) {
	t.Helper()
	require.NoError(t, a.Start(context.WithoutCancel(t.Context())))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("apptest: stop: %v", err)
		}
	})
}
