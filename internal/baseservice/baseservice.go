// Package baseservice holds what every slotpay service shares, in the spirit
// of River's baseservice.Archetype: one struct of dependencies, built once by
// internal/app (for `serve`, the operator commands and the tests alike) and
// handed to each service's constructor, instead of a parameter list that
// every constructor repeats and every caller wires anew.
package baseservice

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/metrics"
)

// Archetype is the shared dependencies of one slotpay instance.
type Archetype struct {
	Config config.Config
	Logger *slog.Logger
	Pool   *pgxpool.Pool
	// Stripe is this instance's own client (never the package-global key).
	Stripe *client.API
	// Metrics may be nil: every method of *metrics.Metrics accepts a nil
	// receiver, for tools that count nothing.
	Metrics *metrics.Metrics
}
