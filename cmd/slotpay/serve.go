package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/checkout"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/httpapi"
	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/reconcile"
)

// shutdownGrace bounds how long in-flight requests may take to finish after
// SIGTERM.
const shutdownGrace = 20 * time.Second

func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Parse(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := database.CheckSchema(ctx, pool); err != nil {
		logger.Warn("database schema is not current; /readyz answers 503 until `slotpay migrate up` runs", "error", err.Error())
	}

	a := newApp(cfg, pool, logger)
	handler, err := a.handler()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Requests carry a cookie, an idempotency key and a Stripe
		// signature at most; Go's default of 1 MiB of headers is room for
		// abuse.
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	stopMetrics, err := serveMetrics(cfg.MetricsAddr, a.metrics, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()
	logger.Info("serving", "addr", ln.Addr().String(), "database", database.Redact(cfg.DatabaseURL),
		"stripe_api", stripeAPIName(cfg), "livemode", cfg.Livemode())
	if msg, ok := publicURLMismatch(cfg.PublicBaseURL, ln.Addr().String()); ok {
		logger.Warn(msg)
	}

	// The reconciler runs in every instance; an advisory lock lets one at a
	// time act.
	reconcileCtx, stopReconciler := context.WithCancel(ctx)
	reconcilerDone := make(chan struct{})
	go func() {
		defer close(reconcilerDone)
		a.reconciler.Loop(reconcileCtx, cfg.ReconcileInterval)
	}()
	defer func() { stopReconciler(); <-reconcilerDone }()
	go pruneSessions(reconcileCtx, admin.NewSessions(pool), logger)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop accepting, let in-flight requests (a webhook mid-transaction
	// included) finish, then close the pool (deferred above).
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// app is slotpay's parts, wired together once for serve and the commands.
type app struct {
	cfg        config.Config
	pool       *pgxpool.Pool
	logger     *slog.Logger
	processor  *payment.Processor
	checkouts  *checkout.Service
	reconciler *reconcile.Reconciler
	metrics    *metrics.Metrics
}

func newApp(cfg config.Config, pool *pgxpool.Pool, logger *slog.Logger) *app {
	sc := newStripeClient(cfg)
	m := metrics.New(pool)
	processor := payment.NewProcessor(pool, sc, cfg.Livemode(), logger, m)
	checkouts := checkout.NewService(pool, sc, processor, cfg.PublicBaseURL, cfg.CheckoutTTL, logger, m)
	return &app{
		cfg: cfg, pool: pool, logger: logger,
		processor:  processor,
		checkouts:  checkouts,
		reconciler: reconcile.New(pool, sc, checkouts, processor, logger, m),
		metrics:    m,
	}
}

func (a *app) handler() (http.Handler, error) {
	return httpapi.NewServer(httpapi.Config{
		WebhookSecrets:   a.cfg.StripeWebhookSecret,
		WebhookTolerance: a.cfg.WebhookTolerance,
		PendingHold:      a.cfg.PendingHold,
		CookieSecure:     a.cfg.CookieSecure,
		TrustedProxies:   a.cfg.TrustedProxies,
		WriteLimit:       writeLimit(a.cfg.WriteRateLimit),
		HoldCaps:         booking.HoldCaps{PerClient: a.cfg.MaxHoldsPerClient, PerEmail: a.cfg.MaxHoldsPerEmail},
		Metrics:          a.metrics,
		MetricsElsewhere: a.cfg.MetricsAddr != "",
	}, a.pool, a.logger, a.processor, a.checkouts, a.reconciler)
}

// pruneSessions deletes dead sessions and old login attempts hourly, so
// that neither table grows without bound. Every instance may do it: the
// deletes are idempotent.
func pruneSessions(ctx context.Context, sessions *admin.Sessions, logger *slog.Logger) {
	ticker := time.NewTicker(time.Hour)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := sessions.Prune(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("prune admin sessions", "error", err.Error())
			}
		}
	}
}

// newStripeClient returns a client of its own (never the package-global key)
// pointed at STRIPE_API_BASE when set. stripe-go retries network errors and
// 409/5xx answers itself, with the same idempotency key.
func newStripeClient(cfg config.Config) *client.API {
	bc := &stripe.BackendConfig{
		MaxNetworkRetries: stripe.Int64(2),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelError},
	}
	if cfg.StripeAPIBase != "" {
		bc.URL = stripe.String(cfg.StripeAPIBase)
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, bc)
	sc := &client.API{}
	sc.Init(cfg.StripeSecretKey, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	return sc
}

func stripeAPIName(cfg config.Config) string {
	if cfg.StripeAPIBase == "" {
		return "api.stripe.com"
	}
	return cfg.StripeAPIBase
}
