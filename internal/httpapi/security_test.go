package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/testkit"
)

func header(name, value string) genapi.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set(name, value)
		return nil
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/v1/resources", "/v1/nope", "/healthz", "/openapi.yaml"} {
		t.Run(strings.ReplaceAll(path, "/", "_"), func(t *testing.T) {
			resp, _ := b.do(t, "GET", path, "")
			h := resp.Header
			require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
			require.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
			require.Equal(t, "DENY", h.Get("X-Frame-Options"))
			require.Equal(t, "no-store", h.Get("Cache-Control"))
			require.Contains(t, h.Get("Content-Security-Policy"), "default-src 'none'")
			require.Contains(t, h.Get("Content-Security-Policy"), "frame-ancestors 'none'")
		})
	}
	t.Run("Webhook", func(t *testing.T) {
		resp := b.deliver(t, withID(testkit.DisputeCreated("pi_test_headers", 100, "eur")).JSON(t))
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	})
	t.Run("DocsPolicyAllowsExactlyItsInlineScripts", func(t *testing.T) {
		resp, body := b.get(t, "/docs/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		csp := resp.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self' ")
		require.Contains(t, csp, "frame-ancestors 'none'")
		require.NotContains(t, csp, "'unsafe-inline' 'unsafe-eval'")
		require.NotContains(t, strings.Split(strings.Split(csp, "script-src")[1], ";")[0], "unsafe-inline")
		inline := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(body, -1)
		require.NotEmpty(t, inline)
		for _, m := range inline {
			sum := sha256.Sum256([]byte(m[1]))
			require.Contains(t, csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		// Its own scripts and styles load from /docs/ under 'self'.
		// (Not through the validating transport: the contract describes
		// the page, not its assets.)
		asset, err := http.Get(b.url + "/docs/swagger-ui-bundle.js")
		require.NoError(t, err)
		asset.Body.Close()
		require.Equal(t, http.StatusOK, asset.StatusCode)
		require.Equal(t, "nosniff", asset.Header.Get("X-Content-Type-Options"))
	})
}

func TestCrossSiteRequestsAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := bookingRequest(b.resource.ID, at(10), at(11))

	for name, edit := range map[string]genapi.RequestEditorFn{
		"SecFetchSiteCrossSite": header("Sec-Fetch-Site", "cross-site"),
		"ForeignOrigin":         header("Origin", "https://evil.example"),
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, req, edit)
			require.NoError(t, err)
			requireError(t, http.StatusForbidden, "forbidden", resp.StatusCode(), resp.Body)
		})
	}
	t.Run("AdminSignIn", func(t *testing.T) {
		email := b.adminUser(t, admin.RoleAdmin)
		resp, err := b.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: email, Password: adminPassword},
			header("Sec-Fetch-Site", "cross-site"))
		require.NoError(t, err)
		requireError(t, http.StatusForbidden, "forbidden", resp.StatusCode(), resp.Body)
		require.Empty(t, resp.HTTPResponse.Header.Values("Set-Cookie"))
	})
	t.Run("AdminActionWithACookie", func(t *testing.T) {
		session := b.as(t, admin.RoleAdmin)
		resp, err := b.client.RunAdminReconcileWithResponse(t.Context(), &genapi.RunAdminReconcileParams{}, session,
			header("Origin", "https://evil.example"))
		require.NoError(t, err)
		requireError(t, http.StatusForbidden, "forbidden", resp.StatusCode(), resp.Body)
	})
	require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM bookings"), "nothing refused was done")

	t.Run("SameOriginPasses", func(t *testing.T) {
		resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, req,
			header("Origin", b.url), header("Sec-Fetch-Site", "same-origin"))
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, resp.StatusCode(), string(resp.Body))
	})
	t.Run("ReadsPass", func(t *testing.T) {
		resp, err := b.client.ListResourcesWithResponse(t.Context(), header("Sec-Fetch-Site", "cross-site"))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode())
	})
	t.Run("StripeWebhookPasses", func(t *testing.T) {
		// Stripe sends neither Origin nor Sec-Fetch-Site: not a browser.
		bk, co := b.paidBooking(t, 14)
		requireReceived(t, b.deliver(t, completed(bk, co).JSON(t)), false)
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	})
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	// An hour's window: the four requests fall in it however slow the
	// machine.
	b := setup(t, withWriteLimit(3, time.Hour))
	for hour := 10; hour < 13; hour++ {
		b.hold(t, at(hour), at(hour+1))
	}
	resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, bookingRequest(b.resource.ID, at(14), at(15)))
	require.NoError(t, err)
	requireError(t, http.StatusTooManyRequests, "rate_limited", resp.StatusCode(), resp.Body)
	require.Equal(t, "3600", resp.HTTPResponse.Header.Get("Retry-After"))
	require.Equal(t, 3, b.db.Count(t, "SELECT count(*) FROM bookings"))

	login, err := b.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: "x@example.com", Password: "y"})
	require.NoError(t, err)
	requireError(t, http.StatusTooManyRequests, "rate_limited", login.StatusCode(), login.Body)

	t.Run("ReadsAreNotLimited", func(t *testing.T) {
		for range 5 {
			resp, err := b.client.ListResourcesWithResponse(t.Context())
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode())
		}
	})
	t.Run("StripeIsNeverLimited", func(t *testing.T) {
		for range 6 {
			requireReceived(t, b.deliver(t, withID(testkit.DisputeCreated("pi_test_limit", 100, "eur")).JSON(t)), false)
		}
	})
}

func TestOversizeBodies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	big := `{"pad":"` + strings.Repeat("x", 64<<10) + `"}`

	resp, body := b.do(t, "POST", "/v1/bookings", big)
	requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large", resp.StatusCode, body)
	resp, body = b.do(t, "POST", "/v1/admin/session", big)
	requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large", resp.StatusCode, body)
	resp, body = b.do(t, "POST", "/v1/admin/resources", big, b.as(t, admin.RoleAdmin))
	requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large", resp.StatusCode, body)

	// A well-formed, current signature header: the body is only read (and
	// its size only known) once the header could verify.
	webhook := b.deliverSigned(t, []byte(`{"pad":"`+strings.Repeat("x", 1<<20)+`"}`),
		fmt.Sprintf("t=%d,v1=%s", time.Now().Unix(), strings.Repeat("0", 64)))
	requireWebhookError(t, webhook, http.StatusRequestEntityTooLarge, "payload_too_large")
}
