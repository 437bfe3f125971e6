// Package httpapi is slotpay's HTTP surface: the routes, the generated
// contract's handlers, the Stripe webhook, and the middleware around them.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/swaggest/swgui/v5emb"

	apispec "github.com/slotpay/slotpay/api"
	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/checkout"
	"github.com/slotpay/slotpay/internal/idempotency"
	"github.com/slotpay/slotpay/internal/payment"
)

// Body limits: the webhook's is Stripe's event size with room to spare
// (SPEC §4); the API's requests are a few hundred bytes.
const (
	maxWebhookBody = 1 << 20
	maxAPIBody     = 64 << 10
)

// Config is what the HTTP layer needs to know.
type Config struct {
	WebhookSecrets   []string
	WebhookTolerance time.Duration
	PendingHold      time.Duration
}

// Server holds the HTTP layer's collaborators.
type Server struct {
	cfg       Config
	pool      *pgxpool.Pool
	logger    *slog.Logger
	processor *payment.Processor
	checkout  *checkout.Service
}

// NewServer returns slotpay's whole HTTP handler.
func NewServer(cfg Config, pool *pgxpool.Pool, logger *slog.Logger, processor *payment.Processor, checkouts *checkout.Service) (http.Handler, error) {
	s := &Server{cfg: cfg, pool: pool, logger: logger, processor: processor, checkout: checkouts}
	api, err := s.apiHandler()
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	// The webhook is a plain handler outside request validation, so its raw
	// body reaches the signature check byte for byte.
	mux.HandleFunc("POST /v1/webhooks/stripe", s.handleStripeWebhook)
	mux.Handle("/v1/", api)

	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.HandleFunc("GET /openapi.yaml", serveSpec)
	mux.Handle("GET /docs/", v5emb.New("slotpay API", "/openapi.yaml", "/docs/"))
	mux.HandleFunc("GET /docs", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/docs/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNoRoute)
	})

	return s.withRequestID(s.withAccessLog(s.withRecovery(mux))), nil
}

// apiHandler serves the generated contract: body limit, JSON content type,
// validation against api/openapi.yaml, Idempotency-Key, then the handlers.
func (s *Server) apiHandler() (http.Handler, error) {
	validate, err := requestValidator(s.writeError)
	if err != nil {
		return nil, err
	}
	strict := genapi.NewStrictHandlerWithOptions(&handlers{s}, nil, genapi.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  s.writeBadRequest,
		ResponseErrorHandlerFunc: s.writeError,
	})
	generated := genapi.HandlerWithOptions(strict, genapi.StdHTTPServerOptions{
		ErrorHandlerFunc: s.writeBadRequest,
	})
	keys := idempotency.Middleware(s.pool, s.logger, s.writeError)
	return s.limitBody(maxAPIBody, requireJSON(s.writeError, validate(keys(generated)))), nil
}

func serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(apispec.OpenAPI)
}
