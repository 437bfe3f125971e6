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

	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/app"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
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
	arch, closePool, err := app.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closePool()
	if err := database.CheckSchema(ctx, arch.Pool); err != nil {
		logger.Warn("database schema is not current; /readyz answers 503 until `slotpay migrate up` runs", "error", err.Error())
	}

	a, err := app.New(arch, app.Options{Periodic: true})
	if err != nil {
		return err
	}
	handler, err := a.Handler()
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
	stopMetrics, err := serveMetrics(cfg.MetricsAddr, cfg.MetricsPprof, arch.Metrics, logger)
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

	// Background work (refund requests, and the reconciler every
	// RECONCILE_INTERVAL under River's leader election) runs in every
	// instance; jobs outlive a SIGTERM's cancellation of ctx until Stop.
	if err := a.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	jobsCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	go pruneSessions(jobsCtx, admin.NewSessions(arch.Pool), logger)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	// Stop accepting, let in-flight requests (a webhook mid-transaction
	// included) finish, then the running jobs, then close the pool
	// (deferred above).
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if serveErr == nil {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			serveErr = fmt.Errorf("shutdown: %w", err)
		} else if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	if err := a.Stop(shutdownCtx); err != nil {
		return errors.Join(serveErr, err)
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("stopped")
	return nil
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

func stripeAPIName(cfg config.Config) string {
	if cfg.StripeAPIBase == "" {
		return "api.stripe.com"
	}
	return cfg.StripeAPIBase
}
