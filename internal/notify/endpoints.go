package notify

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/database"
)

// RotationOverlap is how long a rotated-out secret keeps signing beside the
// new one (as Stripe lets an old endpoint secret live for up to a day), so a
// receiver can deploy the new secret without rejecting deliveries.
const RotationOverlap = 24 * time.Hour

// CheckEndpointURL accepts the URL of a webhook endpoint: absolute https, or
// http to this machine only (localhost, 127.0.0.0/8, ::1) for development;
// no credentials and no fragment. What the name resolves to is checked again
// at every delivery (dialGuard).
func CheckEndpointURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", apperr.New(apperr.InvalidRequest, "url must be an absolute https:// URL")
	}
	if u.User != nil || u.Fragment != "" {
		return "", apperr.New(apperr.InvalidRequest, "url must not carry credentials or a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return "", apperr.New(apperr.InvalidRequest, "url must use https (plain http is accepted only for localhost)")
		}
	default:
		return "", apperr.New(apperr.InvalidRequest, "url must be an absolute https:// URL")
	}
	if len(u.String()) > 2048 {
		return "", apperr.New(apperr.InvalidRequest, "url must be at most 2048 characters")
	}
	return u.String(), nil
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkEventTypes accepts a non-empty list of known types, without repeats.
func checkEventTypes(types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, apperr.New(apperr.InvalidRequest, "enabled_events must name at least one event type")
	}
	var out []string
	for _, t := range types {
		if !slices.Contains(EventTypes, t) {
			return nil, apperr.New(apperr.InvalidRequest, "enabled_events: unknown event type %q", t)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// CreateEndpoint registers an endpoint and returns it with its secret, the
// only time the secret leaves slotpay.
func CreateEndpoint(ctx context.Context, pool *pgxpool.Pool, by audit.Actor, rawURL string, types []string) (db.WebhookEndpoint, error) {
	u, err := CheckEndpointURL(rawURL)
	if err != nil {
		return db.WebhookEndpoint{}, err
	}
	if types, err = checkEventTypes(types); err != nil {
		return db.WebhookEndpoint{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return db.WebhookEndpoint{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return db.WebhookEndpoint{}, fmt.Errorf("endpoint id: %w", err)
	}
	var e db.WebhookEndpoint
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		if e, err = q.WebhookEndpointInsert(ctx, db.WebhookEndpointInsertParams{ID: id, Url: u, EventTypes: types, Secret: secret}); err != nil {
			return fmt.Errorf("insert endpoint: %w", err)
		}
		return audit.Record(ctx, q, by, audit.EndpointCreate, id)
	})
	return e, err
}

// RotateEndpointSecret gives an endpoint a new secret; the old one signs
// beside it for RotationOverlap.
func RotateEndpointSecret(ctx context.Context, pool *pgxpool.Pool, by audit.Actor, id uuid.UUID) (db.WebhookEndpoint, error) {
	secret, err := NewSecret()
	if err != nil {
		return db.WebhookEndpoint{}, err
	}
	var e db.WebhookEndpoint
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		e, err = q.WebhookEndpointRotate(ctx, db.WebhookEndpointRotateParams{ID: id, Secret: secret, PreviousUntil: ptr(time.Now().Add(RotationOverlap))})
		if database.IsNotFound(err) {
			return apperr.New(apperr.NotFound, "webhook endpoint not found")
		}
		if err != nil {
			return fmt.Errorf("rotate endpoint secret: %w", err)
		}
		return audit.Record(ctx, q, by, audit.EndpointRotate, id)
	})
	return e, err
}

// DeleteEndpoint removes an endpoint; its queued deliveries are cancelled
// when they next run, and its delivery log stays.
func DeleteEndpoint(ctx context.Context, pool *pgxpool.Pool, by audit.Actor, id uuid.UUID) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		if _, err := q.WebhookEndpointDelete(ctx, id); database.IsNotFound(err) {
			return apperr.New(apperr.NotFound, "webhook endpoint not found")
		} else if err != nil {
			return fmt.Errorf("delete endpoint: %w", err)
		}
		return audit.Record(ctx, q, by, audit.EndpointDelete, id)
	})
}
