package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/slotpay/slotpay/internal/app"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
)

// withApp runs f with the service's parts, for commands that act like the
// service (they need Stripe as well as the database). The instance works
// jobs while f runs, so that a pass it asks for runs even when no `serve`
// instance is up; it takes no part in running the periodic reconciler.
func withApp(ctx context.Context, getenv func(string) string, stderr io.Writer, f func(*app.App) error) error {
	cfg, err := config.Parse(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	arch, closePool, err := app.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closePool()
	if err := database.CheckSchema(ctx, arch.Pool); err != nil {
		return fmt.Errorf("database: %w (run `slotpay migrate up`)", err)
	}
	a, err := app.New(arch, app.Options{})
	if err != nil {
		return err
	}
	if err := a.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		_ = a.Stop(stopCtx) // a job it leaves running is rescued by another instance
	}()
	return f(a)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reconcileOnce is `slotpay reconcile`: one run, its summary on stdout.
func reconcileOnce(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	return withApp(ctx, getenv, stderr, func(a *app.App) error {
		s, err := a.Reconciler.Run(ctx)
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		return printJSON(stdout, s)
	})
}

// replayEvents is `slotpay replay-events --since D`.
func replayEvents(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("replay-events", flag.ContinueOnError)
	flags.SetOutput(stderr)
	since := flags.Duration("since", 0, "replay events Stripe created within this duration (e.g. 72h; Stripe keeps 30 days)")
	if err := flags.Parse(args); err != nil || flags.NArg() != 0 {
		return usageError{}
	}
	if *since <= 0 || *since > 30*24*time.Hour {
		return fmt.Errorf("--since: must be a duration between 1s and 720h, got %s", *since)
	}
	return withApp(ctx, getenv, stderr, func(a *app.App) error {
		s, err := a.Reconciler.Replay(ctx, *since)
		if err != nil {
			return fmt.Errorf("replay-events: %w", err)
		}
		return printJSON(stdout, s)
	})
}
