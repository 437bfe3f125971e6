// Package app wires one slotpay instance: its shared dependencies (a
// baseservice.Archetype), the River client that runs its background work,
// and the services built over both. `serve`, the operator commands and the
// tests all build an instance here, so the object graph is written once.
package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/internal/baseservice"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/checkout"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/httpapi"
	"github.com/slotpay/slotpay/internal/managetoken"
	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/notify"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/reconcile"
)

const (
	// maxWorkers bounds the jobs one instance runs at once; each may hold a
	// pooled connection for a query, never across its Stripe call.
	maxWorkers = 10
	// rescueAfter is how long a job may stay running before River's leader
	// takes it for dead (its instance crashed) and retries it. River
	// ignores a job still inside its worker's own Timeout, so a long pass
	// is never taken from a live instance.
	rescueAfter = time.Minute
	// softStop is how long Stop lets running jobs finish before cancelling
	// their contexts.
	softStop = 15 * time.Second
	// fetchCooldown is the least time between two fetches of jobs. A fetch
	// takes at most maxWorkers jobs, so River's default of 100 ms capped
	// an instance at 100 jobs a second: the notifications (two jobs per
	// confirmation) of a burst of webhooks took minutes to follow it. Idle,
	// River still polls once a second (FetchPollInterval).
	fetchCooldown = 10 * time.Millisecond
)

// App is one slotpay instance.
type App struct {
	Arch       *baseservice.Archetype
	Jobs       *river.Client[pgx.Tx]
	Processor  *payment.Processor
	Checkouts  *checkout.Service
	Reconciler *reconcile.Reconciler
	// HTTP is the HTTP layer's configuration, from Arch.Config; a test may
	// change it before calling Handler.
	HTTP httpapi.Config
}

// Options choose what an instance runs.
type Options struct {
	// Periodic has the instance take part in running the reconciler every
	// RECONCILE_INTERVAL (serve). River's elected leader inserts each pass;
	// commands that run one pass on demand leave it off.
	Periodic bool
	// JobsID names the instance's River client (it appears in river_job's
	// attempted_by and river_leader); empty lets River derive one.
	JobsID string
}

// New wires an instance over arch. Its River client is not started: call
// Start to work jobs (inserting them needs no started client).
func New(arch *baseservice.Archetype, opts Options) (*App, error) {
	workers := river.NewWorkers()
	rc := &river.Config{
		ID:                   opts.JobsID,
		Logger:               arch.Logger,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: maxWorkers}},
		FetchCooldown:        fetchCooldown,
		RescueStuckJobsAfter: rescueAfter,
		SoftStopTimeout:      softStop,
		Workers:              workers,
	}
	if opts.Periodic {
		rc.PeriodicJobs = []*river.PeriodicJob{reconcile.PeriodicJob(arch.Config.ReconcileInterval)}
	}
	jobs, err := river.NewClient(riverpgxv5.New(arch.Pool), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	a := &App{Arch: arch, Jobs: jobs}
	a.Processor = payment.NewProcessor(arch, jobs)
	a.Checkouts = checkout.NewService(arch, a.Processor)
	a.Reconciler = reconcile.New(arch, jobs, a.Checkouts, a.Processor)
	a.HTTP = httpapi.Config{
		WebhookSecrets:   arch.Config.StripeWebhookSecret,
		WebhookTolerance: arch.Config.WebhookTolerance,
		PendingHold:      arch.Config.PendingHold,
		CookieSecure:     arch.Config.CookieSecure,
		TrustedProxies:   arch.Config.TrustedProxies,
		WriteLimit:       writeLimit(arch.Config.WriteRateLimit),
		HoldCaps:         booking.HoldCaps{PerClient: arch.Config.MaxHoldsPerClient, PerEmail: arch.Config.MaxHoldsPerEmail},
		Metrics:          arch.Metrics,
		MetricsElsewhere: arch.Config.MetricsAddr != "",
	}

	// Every kind of background work registers its worker here; a job of
	// a kind no worker knows cannot be inserted.
	river.AddWorker(workers, payment.NewRefundWorker(a.Processor))
	river.AddWorker(workers, reconcile.NewWorker(a.Reconciler))
	if err := addNotifyWorkers(arch, workers); err != nil {
		return nil, err
	}
	return a, nil
}

// addNotifyWorkers registers the workers of notifications (SPEC §9): the
// fan-out of the jobs migration 00012's triggers insert, the customer's
// e-mail and the merchant's webhook deliveries.
func addNotifyWorkers(arch *baseservice.Archetype, workers *river.Workers) error {
	cfg := arch.Config
	// Parse always sets these; a configuration built by hand (a test) may
	// leave them out.
	if cfg.MailFrom == nil {
		cfg.MailFrom = &mail.Address{Name: "slotpay", Address: "bookings@localhost"}
	}
	cfg.NotifyRetryBase = cmp.Or(cfg.NotifyRetryBase, 30*time.Second)
	var tokens *managetoken.Issuer
	if len(cfg.ManageTokenKey) > 0 {
		var err error
		if tokens, err = managetoken.NewIssuer(cfg.ManageTokenKey); err != nil {
			return err
		}
	}
	river.AddWorker(workers, notify.NewFanOutWorker(arch.Pool, cfg.NotifyRetryBase))
	river.AddWorker(workers, notify.NewEmailWorker(arch.Pool, notify.EmailConfig{
		Mailer: notify.NewMailer(cfg.SMTP, arch.Logger), From: cfg.MailFrom, PublicBase: cfg.PublicBaseURL,
		Tokens: tokens, RetryBase: cfg.NotifyRetryBase, Logger: arch.Logger, Metrics: arch.Metrics,
	}))
	river.AddWorker(workers, notify.NewDeliveryWorker(arch.Pool, notify.DeliveryConfig{
		RetryBase: cfg.NotifyRetryBase, Logger: arch.Logger, Metrics: arch.Metrics,
	}))
	return nil
}

// Handler returns the instance's HTTP handler.
func (a *App) Handler() (http.Handler, error) {
	return httpapi.NewServer(a.Arch, a.HTTP, a.Processor, a.Checkouts, a.Reconciler)
}

// Start starts working jobs (and, with Options.Periodic, running for
// leader). Jobs stop when Stop is called or ctx ends.
func (a *App) Start(ctx context.Context) error {
	if err := a.Jobs.Start(ctx); err != nil {
		return fmt.Errorf("start background jobs: %w", err)
	}
	return nil
}

// Stop lets running jobs finish (cancelling them after softStop), gives up
// leadership and waits until the client has stopped or ctx ends.
func (a *App) Stop(ctx context.Context) error {
	if err := a.Jobs.Stop(ctx); err != nil {
		return fmt.Errorf("stop background jobs: %w", err)
	}
	return nil
}

// Open builds a process's Archetype from its configuration: it opens the
// database pool (close it with the returned func) and the Stripe client.
func Open(ctx context.Context, cfg config.Config, logger *slog.Logger) (*baseservice.Archetype, func(), error) {
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	return &baseservice.Archetype{
		Config: cfg, Logger: logger, Pool: pool, Stripe: NewStripeClient(cfg), Metrics: metrics.New(pool),
	}, pool.Close, nil
}

// NewStripeClient returns a client of its own (never the package-global key)
// pointed at STRIPE_API_BASE when set. stripe-go retries network errors and
// 409/5xx answers itself, with the same idempotency key.
func NewStripeClient(cfg config.Config) *client.API {
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

// writeLimit is WRITE_RATE_LIMIT as the HTTP layer takes it: a negative
// count lifts the limit.
func writeLimit(l config.RateLimit) httpapi.RateLimit {
	if l.Off {
		return httpapi.RateLimit{Requests: -1}
	}
	return httpapi.RateLimit{Requests: l.Requests, Window: l.Window}
}
