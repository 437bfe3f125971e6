// Package httpapi is slotpay's HTTP surface: the routes, the generated
// contract's handlers, the Stripe webhook, and the middleware around them.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/swaggest/swgui/v5emb"

	apispec "github.com/slotpay/slotpay/api"
	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/baseservice"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/checkout"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/idempotency"
	"github.com/slotpay/slotpay/internal/managetoken"
	"github.com/slotpay/slotpay/internal/metrics"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/reconcile"
	"github.com/slotpay/slotpay/web"
)

// Body limits: the webhook's is Stripe's event size with room to spare
// (SPEC §4); the API's requests, admin ones included, are a few hundred
// bytes. Routes without a body never read one.
const (
	maxWebhookBody = 1 << 20
	maxAPIBody     = 64 << 10
)

// Config is what the HTTP layer needs to know.
type Config struct {
	WebhookSecrets   []string
	WebhookTolerance time.Duration
	PendingHold      time.Duration
	// CookieSecure marks the session cookie Secure (COOKIE_SECURE).
	CookieSecure bool
	// TrustedProxies may report the client's address in X-Forwarded-For.
	TrustedProxies []netip.Prefix
	// WriteLimit bounds each client's state-changing requests; the zero
	// value means DefaultRateLimit, a negative Requests no limit (for tests
	// that must send many).
	WriteLimit RateLimit
	// HoldCaps bound each client's and each e-mail's open unpaid holds;
	// zero values mean DefaultHoldCaps, negative ones no cap.
	HoldCaps booking.HoldCaps
	// Metrics, when set, is served at /metrics and counts requests and
	// webhook deliveries.
	Metrics *metrics.Metrics
	// MetricsElsewhere keeps /metrics off this handler: METRICS_ADDR
	// serves it on a listener of its own.
	MetricsElsewhere bool
}

// Server holds the HTTP layer's collaborators.
type Server struct {
	cfg        Config
	pool       *pgxpool.Pool
	logger     *slog.Logger
	processor  *payment.Processor
	checkout   *checkout.Service
	reconciler *reconcile.Reconciler
	sessions   *admin.Sessions
	tokens     *managetoken.Issuer
}

// NewServer returns slotpay's whole HTTP handler over arch's database and
// logger, serving the services internal/app wired.
func NewServer(arch *baseservice.Archetype, cfg Config, processor *payment.Processor,
	checkouts *checkout.Service, reconciler *reconcile.Reconciler,
) (http.Handler, error) {
	s := &Server{
		cfg: cfg, pool: arch.Pool, logger: arch.Logger, processor: processor, checkout: checkouts,
		reconciler: reconciler, sessions: admin.NewSessions(arch.Pool),
	}
	tokens, err := managetoken.NewIssuer(arch.Config.ManageTokenKey)
	if err != nil {
		return nil, err
	}
	s.tokens = tokens
	if s.cfg.WriteLimit == (RateLimit{}) {
		s.cfg.WriteLimit = DefaultRateLimit
	}
	api, err := s.apiHandler()
	if err != nil {
		return nil, err
	}
	methods, err := newMethodTable()
	if err != nil {
		return nil, err
	}

	// The contract's routes. Admin routes name the least role that may use
	// them (SPEC §3, and x-slotpay-role in api/openapi.yaml); the session is
	// checked before anything reads the body.
	v1 := http.NewServeMux()
	v1.Handle("/v1/", api)
	v1.Handle("POST /v1/admin/session", api) // signing in needs no session
	v1.Handle("DELETE /v1/admin/session", withSessionToken(api))
	v1.Handle("GET /v1/admin/me", s.requireRole(admin.RoleReadonly, api))
	v1.Handle("GET /v1/admin/bookings", s.requireRole(admin.RoleReadonly, api))
	v1.Handle("GET /v1/admin/bookings/{id}", s.requireRole(admin.RoleReadonly, api))
	v1.Handle("GET /v1/admin/payment-events", s.requireRole(admin.RoleReadonly, api))
	v1.Handle("POST /v1/admin/bookings/{id}/refund", s.requireRole(admin.RoleOps, api))
	v1.Handle("POST /v1/admin/bookings/{id}/cancel", s.requireRole(admin.RoleOps, api))
	v1.Handle("POST /v1/admin/reconcile", s.requireRole(admin.RoleOps, api))
	v1.Handle("POST /v1/admin/resources", s.requireRole(admin.RoleAdmin, api))
	v1.Handle("PATCH /v1/admin/resources/{id}", s.requireRole(admin.RoleAdmin, api))
	v1.Handle("GET /v1/admin/audit", s.requireRole(admin.RoleAdmin, api))
	v1.Handle("GET /v1/admin/webhook-deliveries", s.requireRole(admin.RoleReadonly, api))
	v1.Handle("POST /v1/admin/webhook-endpoints", s.requireRole(admin.RoleAdmin, api))
	v1.Handle("GET /v1/admin/webhook-endpoints", s.requireRole(admin.RoleAdmin, api))
	v1.Handle("DELETE /v1/admin/webhook-endpoints/{id}", s.requireRole(admin.RoleAdmin, api))
	v1.Handle("POST /v1/admin/webhook-endpoints/{id}/rotate-secret", s.requireRole(admin.RoleAdmin, api))
	// Anything else under /v1/admin/ that the contract knows needs a
	// session too: a route added to the spec but not above stays closed.
	v1.Handle("/v1/admin/", s.requireRole(admin.RoleAdmin, api))

	mux := http.NewServeMux()
	// The webhook is a plain handler outside request validation, so its raw
	// body reaches the signature check byte for byte; and outside the rate
	// limit, so that Stripe's retries are never refused.
	mux.HandleFunc("POST /v1/webhooks/stripe", s.handleStripeWebhook)
	mux.Handle("/v1/", s.limitWrites(s.cfg.WriteLimit, s.refuseOtherMethods(methods, v1)))

	docs := v5emb.New("slotpay API", "/openapi.yaml", "/docs/")
	scriptHashes, err := inlineScriptHashes(docs)
	if err != nil {
		return nil, err
	}
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.HandleFunc("GET /openapi.yaml", serveSpec)
	if cfg.Metrics != nil && !cfg.MetricsElsewhere {
		mux.Handle("GET /metrics", cfg.Metrics.Handler())
	}
	mux.Handle("GET /docs/", docs)
	mux.HandleFunc("GET /docs", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/docs/", http.StatusMovedPermanently)
	})
	// The demo pages and their assets, each at its exact path so that any
	// other path still gets the JSON 404. A page replaces apiCSP with its
	// own policy (scripts and styles from this origin, API calls to it).
	pages := web.Handler()
	for _, path := range web.Paths() {
		mux.Handle("GET "+path, pages)
	}
	mux.Handle("/", s.refuseOtherMethods(methods, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNoRoute)
	})))

	// The middleware, in the order a request meets it.
	return chain(mux,
		s.withRequestID, // an id in the context and in X-Request-Id, for all below
		s.observe,       // the one look at the response: access log and request metrics
		func(next http.Handler) http.Handler { return withSecurityHeaders(docsCSP(scriptHashes), next) },
		s.withRecovery, // a panic answers internal_error, observed as a 500
		func(next http.Handler) http.Handler { return s.withClientIP(cfg.TrustedProxies, next) },
		s.withCrossOriginProtection,
		metrics.Route, // tells observe which pattern of mux served the request
	), nil
}

// chain wraps h in middleware, the first listed outermost.
func chain(h http.Handler, middleware ...func(http.Handler) http.Handler) http.Handler {
	for i := len(middleware) - 1; i >= 0; i-- {
		h = middleware[i](h)
	}
	return h
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
	generated = metrics.Route(generated)
	// An operator's keys are their own: two operators who choose the same
	// key never see each other's stored responses.
	byOperator := idempotency.ScopeBy(func(r *http.Request) string {
		if p, ok := principalFrom(r.Context()); ok {
			return "admin:" + p.user.ID.String()
		}
		scope, _ := bearerScope(r)
		return scope
	})
	// The 201 of POST /v1/bookings is stored without its manage_token and
	// replayed with the token derived again from the booking's salt: the
	// secret is never at rest in idempotency_keys.
	secret := idempotency.SecretField("manage_token", s.deriveToken)
	withKeys := idempotency.Middleware(s.pool, s.logger, s.writeError, byOperator, secret)(generated)
	keys := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Signing in is not stored under an Idempotency-Key: the stored
		// request hash would be an unsalted hash of the password.
		if r.URL.Path == "/v1/admin/session" {
			generated.ServeHTTP(w, r)
			return
		}
		withKeys.ServeHTTP(w, r)
	})
	return withBearer(s.limitBody(maxAPIBody, requireJSON(s.writeError, validate(keys)))), nil
}

// deriveToken is the manage_token of a booking, for a replayed 201.
func (s *Server) deriveToken(ctx context.Context, bookingID uuid.UUID) (string, error) {
	secret, err := database.New(s.pool).BookingManageSecret(ctx, bookingID)
	if err != nil {
		return "", fmt.Errorf("load manage token salt of booking %s: %w", bookingID, err)
	}
	if secret.ManageTokenSalt == nil {
		return "", fmt.Errorf("booking %s has no manage token", bookingID)
	}
	return s.tokens.Derive(bookingID, secret.ManageTokenSalt), nil
}

func serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(apispec.OpenAPI)
}
