package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
)

// withApp runs f with the service's parts, for commands that act like the
// service (they need Stripe as well as the database).
func withApp(ctx context.Context, getenv func(string) string, stderr io.Writer, f func(*app) error) error {
	cfg, err := config.Parse(getenv)
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := database.CheckSchema(ctx, pool); err != nil {
		return fmt.Errorf("database: %w (run `slotpay migrate up`)", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return f(newApp(cfg, pool, logger))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reconcileOnce is `slotpay reconcile`: one run, its summary on stdout.
func reconcileOnce(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	return withApp(ctx, getenv, stderr, func(a *app) error {
		s, err := a.reconciler.Run(ctx)
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
	return withApp(ctx, getenv, stderr, func(a *app) error {
		s, err := a.reconciler.Replay(ctx, *since)
		if err != nil {
			return fmt.Errorf("replay-events: %w", err)
		}
		return printJSON(stdout, s)
	})
}
