package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
)

// dev holds development helpers. None of them may touch live money.
func dev(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usageError{}
	}
	switch args[0] {
	case "setup":
		return devSetup(ctx, getenv, stdout)
	case "pay":
		if len(args) != 2 {
			return usageError{}
		}
		return devPay(ctx, args[1], getenv, stdout)
	}
	return usageError{}
}

// devSetup creates the database if it is missing, migrates it and seeds the
// demo resources: what `make run` needs on a fresh machine.
func devSetup(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	dbURL := getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = config.DefaultDatabaseURL
	}
	if err := createDatabaseIfMissing(ctx, dbURL, stdout); err != nil {
		return err
	}
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := database.MigrateUp(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "database migrated")
	return seed(ctx, pool, stdout)
}

func createDatabaseIfMissing(ctx context.Context, dbURL string, stdout io.Writer) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		// url.Parse's error quotes the whole URL, password included.
		return fmt.Errorf("DATABASE_URL: cannot read the connection string %s", database.Redact(dbURL))
	}
	name := u.Path
	if len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	if name == "" {
		return errors.New("DATABASE_URL: names no database")
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if _, unreadable := errors.AsType[*pgconn.ParseConfigError](err); unreadable {
		// pgx's message quotes the string with only some secrets redacted.
		return fmt.Errorf("DATABASE_URL: cannot read the connection string %s", database.Redact(dbURL))
	}
	if err != nil {
		return fmt.Errorf("DATABASE_URL: cannot reach the server at %s: %w", database.Redact(admin.String()), err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	fmt.Fprintf(stdout, "created database %s\n", name)
	return nil
}

// devPay signs and delivers the checkout.session.completed event that Stripe
// would send once the booking's session is paid, as `stripe trigger` does.
func devPay(ctx context.Context, bookingArg string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Parse(getenv)
	if err != nil {
		return err
	}
	if cfg.Livemode() {
		return errors.New("dev pay refuses to run with a live Stripe key")
	}
	bookingID, err := uuid.Parse(bookingArg)
	if err != nil {
		return fmt.Errorf("BOOKING_ID: %w", err)
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	b, err := database.New(pool).BookingGetByID(ctx, bookingID)
	if database.IsNotFound(err) {
		return fmt.Errorf("booking %s not found", bookingID)
	}
	if err != nil {
		return err
	}
	if b.CheckoutSessionID == nil {
		return fmt.Errorf("booking %s has no checkout session yet: POST /v1/bookings/%s/checkout first", b.ID, b.ID)
	}

	payload, err := json.Marshal(paidSessionEvent(b))
	if err != nil {
		return err
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: payload, Secret: cfg.StripeWebhookSecret[0], Timestamp: time.Now(),
	})
	target := cfg.PublicBaseURL.JoinPath("/v1/webhooks/stripe").String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("deliver to %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "delivered checkout.session.completed for booking %s to %s: %s %s", b.ID, target, resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// paidSessionEvent has the shape of Stripe's event for a paid session, with
// the fields slotpay reads taken from the booking.
func paidSessionEvent(b db.Booking) map[string]any {
	id := b.ID.String()
	return map[string]any{
		"id":               "evt_dev_" + randomHex(12),
		"object":           "event",
		"api_version":      "2023-10-16",
		"created":          time.Now().Unix(),
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             "checkout.session.completed",
		"data": map[string]any{"object": map[string]any{
			"id":                  *b.CheckoutSessionID,
			"object":              "checkout.session",
			"amount_subtotal":     b.AmountTotal,
			"amount_total":        b.AmountTotal,
			"currency":            b.Currency,
			"client_reference_id": id,
			"customer_email":      b.CustomerEmail,
			"expires_at":          b.HoldExpiresAt.Unix(),
			"livemode":            false,
			"metadata":            map[string]string{"booking_id": id},
			"mode":                "payment",
			"payment_intent":      "pi_dev_" + randomHex(12),
			"payment_status":      "paid",
			"status":              "complete",
		}},
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
