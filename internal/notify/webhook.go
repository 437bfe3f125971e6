package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/metrics"
)

// SignatureHeader carries a delivery's signature, as Stripe-Signature does:
// t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">, one v1 per secret in
// force (two while a rotated secret still signs).
const SignatureHeader = "Slotpay-Signature"

// DeliveryArgs is one notification to one endpoint.
type DeliveryArgs struct {
	NotificationID uuid.UUID `json:"notification_id" river:"unique"`
	EndpointID     uuid.UUID `json:"endpoint_id" river:"unique"`
}

func (DeliveryArgs) Kind() string { return "webhook_delivery" }

func (DeliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Event is the body of a delivery (SPEC §9). id is the notification's, the
// same on every attempt, for the receiver's dedupe.
type Event struct {
	ID      uuid.UUID       `json:"id"`
	Type    string          `json:"type"`
	Created int64           `json:"created"`
	Data    json.RawMessage `json:"data"`
}

// Body is the bytes a notification is delivered as: the same on every
// attempt (its data is stored, not rebuilt).
func Body(n db.Notification) ([]byte, error) {
	data, err := json.Marshal(struct {
		Booking json.RawMessage `json:"booking"`
	}{n.Data})
	if err != nil {
		return nil, err
	}
	return json.Marshal(Event{ID: n.ID, Type: n.Type, Created: n.CreatedAt.Unix(), Data: data})
}

// Sign is the signature header value for body at t under secrets.
func Sign(body []byte, t time.Time, secrets ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	parts := []string{"t=" + ts}
	for _, s := range secrets {
		mac := hmac.New(sha256.New, []byte(s))
		mac.Write([]byte(ts))
		mac.Write([]byte("."))
		mac.Write(body)
		parts = append(parts, "v1="+hex.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(parts, ",")
}

// NewSecret is a fresh signing secret: 256 random bits, "whsec_" as Stripe's.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("signing secret: %w", err)
	}
	return "whsec_" + hex.EncodeToString(b), nil
}

// secretsInForce are the secrets that sign a delivery at now.
func secretsInForce(e db.WebhookEndpoint, now time.Time) []string {
	s := []string{e.Secret}
	if e.PreviousSecret != nil && e.PreviousSecretUntil != nil && now.Before(*e.PreviousSecretUntil) {
		s = append(s, *e.PreviousSecret)
	}
	return s
}

// DeliveryConfig is what the delivery worker needs besides the database.
type DeliveryConfig struct {
	RetryBase time.Duration
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	// AllowPrivate lets deliveries reach private networks (tests and
	// development only; see docs/SECURITY.md).
	AllowPrivate bool
}

// DeliveryWorker posts a notification to an endpoint, once per attempt;
// River retries a failed attempt with doubling waits for three days.
type DeliveryWorker struct {
	river.WorkerDefaults[DeliveryArgs]
	pool   *pgxpool.Pool
	cfg    DeliveryConfig
	client *http.Client
}

// deliveryTimeout bounds one attempt: connecting, sending, and the
// receiver's answer.
const deliveryTimeout = 10 * time.Second

// NewDeliveryWorker returns the worker of webhook_delivery jobs.
func NewDeliveryWorker(pool *pgxpool.Pool, cfg DeliveryConfig) *DeliveryWorker {
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: dialGuard(cfg.AllowPrivate)}
	transport := &http.Transport{
		// A proxy from the environment would be asked instead of the
		// endpoint, and the address guard would check the proxy.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: deliveryTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
	return &DeliveryWorker{pool: pool, cfg: cfg, client: &http.Client{
		Transport: transport,
		Timeout:   deliveryTimeout,
		// A redirect could point anywhere: it counts as a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (w *DeliveryWorker) Timeout(*river.Job[DeliveryArgs]) time.Duration { return 2 * deliveryTimeout }

func (w *DeliveryWorker) NextRetry(job *river.Job[DeliveryArgs]) time.Time {
	return time.Now().Add(retryWait(w.cfg.RetryBase, job.Attempt))
}

func (w *DeliveryWorker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	q := database.New(w.pool)
	e, err := q.WebhookEndpointGetByID(ctx, job.Args.EndpointID)
	if database.IsNotFound(err) {
		return river.JobCancel(fmt.Errorf("webhook endpoint %s was deleted", job.Args.EndpointID))
	}
	if err != nil {
		return fmt.Errorf("load endpoint %s: %w", job.Args.EndpointID, err)
	}
	n, err := q.NotificationGetByID(ctx, job.Args.NotificationID)
	if err != nil {
		return fmt.Errorf("load notification %s: %w", job.Args.NotificationID, err)
	}
	body, err := Body(n)
	if err != nil {
		return fmt.Errorf("encode notification %s: %w", n.ID, err)
	}

	started := time.Now()
	status, postErr := w.post(ctx, e, body, started)
	params := db.NotificationAttemptInsertParams{
		NotificationID: n.ID, Channel: "webhook", EndpointID: &e.ID, Target: e.Url, Attempt: int32(job.Attempt),
		Outcome: "delivered", DurationMs: int32(time.Since(started).Milliseconds()),
	}
	if status != 0 {
		params.StatusCode = ptr(int32(status))
	}
	if postErr != nil {
		params.Outcome, params.Error = "failed", ptr(postErr.Error())
	}
	recordAttempt(ctx, q, w.cfg.Logger, w.cfg.Metrics, n, params)
	if postErr != nil {
		level := slog.LevelWarn
		if job.Attempt >= job.MaxAttempts {
			level = slog.LevelError
		}
		w.cfg.Logger.LogAttrs(ctx, level, "webhook delivery failed; River retries it",
			slog.String("notification_id", n.ID.String()), slog.String("endpoint_id", e.ID.String()),
			slog.String("booking_id", n.BookingID.String()), slog.Int("attempt", job.Attempt),
			slog.Int("max_attempts", job.MaxAttempts), slog.String("error", postErr.Error()))
		return fmt.Errorf("deliver notification %s to endpoint %s: %w", n.ID, e.ID, postErr)
	}
	return nil
}

// post sends one attempt and reports the receiver's status (0 when none).
func (w *DeliveryWorker) post(ctx context.Context, e db.WebhookEndpoint, body []byte, now time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "slotpay-webhooks/1")
	req.Header.Set(SignatureHeader, Sign(body, now, secretsInForce(e, now)...))
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// Read a little, so the connection can be reused; the answer's body
	// means nothing.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// errForbiddenAddress is a delivery to an address slotpay does not call.
var errForbiddenAddress = errors.New("the endpoint resolves to an address slotpay does not deliver to (private, link-local or otherwise internal)")

// dialGuard refuses connections to addresses an outside party should not be
// able to make slotpay reach (SSRF, docs/SECURITY.md): link-local (cloud
// metadata services), private ranges, and unspecified, multicast or other
// special addresses. It checks the address actually dialled, after DNS, so a
// name that resolves inward is refused too. Loopback stays allowed for
// local development; allowPrivate lifts the rest (tests).
func dialGuard(allowPrivate bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", errForbiddenAddress, address)
		}
		ip := ap.Addr().Unmap()
		switch {
		case ip.IsLoopback():
			return nil
		case allowPrivate:
			return nil
		case ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsMulticast(),
			ip.IsUnspecified(), ip.IsInterfaceLocalMulticast(), cgnat.Contains(ip), !ip.IsGlobalUnicast():
			return fmt.Errorf("%w: %s", errForbiddenAddress, ip)
		}
		return nil
	}
}

// cgnat is the shared address space of RFC 6598, internal like the private
// ranges.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")
