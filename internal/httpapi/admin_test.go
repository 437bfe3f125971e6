package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	apispec "github.com/slotpay/slotpay/api"
	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

const adminPassword = "correct horse Battery 9"

// adminUser is the operator factory: an account with role, on b's database.
func (b *testBundle) adminUser(t *testing.T, role admin.Role) string {
	t.Helper()
	email := string(role) + "-" + uuid.NewString()[:8] + "@example.com"
	_, err := admin.CreateUser(t.Context(), b.db.Pool, email, role, adminPassword, audit.CommandLine)
	require.NoError(t, err)
	return email
}

// login signs in and returns the session cookie.
func (b *testBundle) login(t *testing.T, email string) *http.Cookie {
	t.Helper()
	resp, err := b.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: email, Password: adminPassword})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	return sessionCookieOf(t, resp.HTTPResponse)
}

// as signs in a new operator with role and returns what makes a client
// request theirs.
func (b *testBundle) as(t *testing.T, role admin.Role) genapi.RequestEditorFn {
	t.Helper()
	return withCookie(b.login(t, b.adminUser(t, role)))
}

func withCookie(c *http.Cookie) genapi.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.AddCookie(c)
		return nil
	}
}

func sessionCookieOf(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "slotpay_session" {
			return c
		}
	}
	t.Fatalf("no slotpay_session cookie in %v", resp.Header.Values("Set-Cookie"))
	return nil
}

// do sends a raw request through the validating transport.
func (b *testBundle) do(t *testing.T, method, path, body string, edit ...genapi.RequestEditorFn) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.url+path, r)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, e := range edit {
		require.NoError(t, e(t.Context(), req))
	}
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, out
}

func resourceBody(slug string) string {
	return fmt.Sprintf(`{"slug":%q,"name":"Studio B","timezone":"Europe/Berlin","currency":"eur","unit_amount":3000,
		"slot_minutes":30,"min_slots":1,"max_slots":4,"open_time":"08:00","close_time":"20:00","horizon_days":30}`, slug)
}

// TestAdminRoles sends every admin operation of api/openapi.yaml as every
// role: allowed from the role the contract names (x-slotpay-role) upwards,
// 403 below it, 401 without a session.
func TestAdminRoles(t *testing.T) {
	t.Parallel()
	b := setup(t, withJobs()) // a reconcile pass runs as a job
	bk := b.hold(t, at(10), at(11))

	type request struct{ method, path, body string }
	requests := map[string]func() request{
		"adminMe":                func() request { return request{"GET", "/v1/admin/me", ""} },
		"listAdminBookings":      func() request { return request{"GET", "/v1/admin/bookings", ""} },
		"getAdminBooking":        func() request { return request{"GET", "/v1/admin/bookings/" + bk.Id.String(), ""} },
		"listAdminPaymentEvents": func() request { return request{"GET", "/v1/admin/payment-events", ""} },
		"listAdminAudit":         func() request { return request{"GET", "/v1/admin/audit", ""} },
		"refundAdminBooking":     func() request { return request{"POST", "/v1/admin/bookings/" + bk.Id.String() + "/refund", ""} },
		"cancelAdminBooking":     func() request { return request{"POST", "/v1/admin/bookings/" + bk.Id.String() + "/cancel", ""} },
		"runAdminReconcile":      func() request { return request{"POST", "/v1/admin/reconcile", ""} },
		"createAdminResource": func() request {
			return request{"POST", "/v1/admin/resources", resourceBody("room-" + uuid.NewString()[:8])}
		},
		"updateAdminResource": func() request {
			return request{"PATCH", "/v1/admin/resources/" + b.resource.ID.String(), `{"name":"Renamed"}`}
		},
		"createAdminWebhookEndpoint": func() request {
			return request{"POST", "/v1/admin/webhook-endpoints", `{"url":"https://merchant.example/hooks","enabled_events":["booking.confirmed"]}`}
		},
		"listAdminWebhookEndpoints":  func() request { return request{"GET", "/v1/admin/webhook-endpoints", ""} },
		"listAdminWebhookDeliveries": func() request { return request{"GET", "/v1/admin/webhook-deliveries", ""} },
		"deleteAdminWebhookEndpoint": func() request {
			return request{"DELETE", "/v1/admin/webhook-endpoints/" + b.webhookEndpoint(t).String(), ""}
		},
		"rotateAdminWebhookEndpointSecret": func() request {
			return request{"POST", "/v1/admin/webhook-endpoints/" + b.webhookEndpoint(t).String() + "/rotate-secret", ""}
		},
	}

	spec, err := openapi3.NewLoader().LoadFromData(apispec.OpenAPI)
	require.NoError(t, err)
	least := map[string]admin.Role{}
	for path, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			role, ok := op.Extensions["x-slotpay-role"].(string)
			if !strings.HasPrefix(path, "/v1/admin/") || op.OperationID == "adminLogin" || op.OperationID == "adminLogout" {
				continue
			}
			require.True(t, ok, "%s has no x-slotpay-role", op.OperationID)
			least[op.OperationID] = admin.Role(role)
		}
	}
	require.Len(t, least, len(requests), "every admin operation of the contract is tested here")

	sessions := map[admin.Role]genapi.RequestEditorFn{}
	for _, role := range []admin.Role{admin.RoleReadonly, admin.RoleOps, admin.RoleAdmin} {
		sessions[role] = b.as(t, role)
	}
	for op, minimum := range least {
		t.Run(op, func(t *testing.T) {
			build, ok := requests[op]
			require.True(t, ok, "no request for %s", op)
			r := build()
			resp, body := b.do(t, r.method, r.path, r.body)
			requireError(t, http.StatusUnauthorized, "unauthorized", resp.StatusCode, body)

			for role, session := range sessions {
				r := build()
				resp, body := b.do(t, r.method, r.path, r.body, session)
				if role.Allows(minimum) {
					require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, resp.StatusCode,
						"%s as %s: %s", op, role, body)
					require.Less(t, resp.StatusCode, 500, "%s as %s: %s", op, role, body)
				} else {
					requireError(t, http.StatusForbidden, "forbidden", resp.StatusCode, body)
				}
			}
		})
	}
	t.Run("UnknownAdminRouteNeedsASession", func(t *testing.T) {
		resp, body := b.do(t, "GET", "/v1/admin/secrets", "")
		requireError(t, http.StatusUnauthorized, "unauthorized", resp.StatusCode, body)
	})
}

func TestAdminLogin(t *testing.T) {
	t.Parallel()

	t.Run("SetsAStrictSessionCookie", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		email := b.adminUser(t, admin.RoleOps)
		resp, err := b.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: strings.ToUpper(email), Password: adminPassword})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		require.Equal(t, email, resp.JSON200.User.Email)
		require.Equal(t, genapi.AdminRole("ops"), resp.JSON200.User.Role)
		require.WithinDuration(t, time.Now().Add(8*time.Hour), resp.JSON200.ExpiresAt, time.Minute)

		c := sessionCookieOf(t, resp.HTTPResponse)
		require.True(t, c.HttpOnly)
		require.True(t, c.Secure)
		require.Equal(t, http.SameSiteStrictMode, c.SameSite)
		require.Equal(t, "/", c.Path)
		require.Equal(t, 8*3600, c.MaxAge)
		require.Len(t, c.Value, 43, "256 bits, base64url")
		require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM admin_sessions WHERE token_hash = convert_to($1, 'UTF8')", c.Value),
			"the database holds a hash of the token, never the token")

		me, err := b.client.AdminMeWithResponse(t.Context(), withCookie(c))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode())
		require.Equal(t, email, me.JSON200.Email)
	})

	t.Run("OneGenericAnswerForEveryFailure", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		email := b.adminUser(t, admin.RoleOps)
		var messages []string
		for _, creds := range []genapi.AdminLoginRequest{
			{Email: email, Password: "wrong password 1"},
			{Email: "nobody@example.com", Password: adminPassword},
			{Email: "not even an email", Password: "x"},
		} {
			resp, err := b.client.AdminLoginWithResponse(t.Context(), creds)
			require.NoError(t, err)
			requireError(t, http.StatusUnauthorized, "unauthorized", resp.StatusCode(), resp.Body)
			require.Empty(t, resp.HTTPResponse.Header.Values("Set-Cookie"))
			messages = append(messages, resp.JSON401.Error.Message)
		}
		require.Equal(t, []string{"invalid email or password", "invalid email or password", "invalid email or password"}, messages)
		// The unknown email was checked against a dummy hash (admin.Login;
		// see TestDummyHashHasTheParametersOfRealHashes), and every attempt
		// is on record for the throttle.
		require.Equal(t, 3, b.db.Count(t, "SELECT count(*) FROM login_attempts WHERE NOT success"))
	})

	t.Run("ThrottledAcrossInstances", func(t *testing.T) {
		t.Parallel()
		first := setup(t)
		second := setup(t, withDatabase(first.db))
		email := first.adminUser(t, admin.RoleOps)
		instances := []*testBundle{first, second}
		start := time.Now()
		for i := range admin.MaxPairFailures {
			resp, err := instances[i%2].client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: email, Password: "wrong password 1"})
			require.NoError(t, err)
			requireError(t, http.StatusUnauthorized, "unauthorized", resp.StatusCode(), resp.Body)
		}
		for _, b := range instances {
			resp, err := b.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: email, Password: adminPassword})
			require.NoError(t, err)
			requireError(t, http.StatusTooManyRequests, "rate_limited", resp.StatusCode(), resp.Body)
			retry, err := strconv.Atoi(resp.HTTPResponse.Header.Get("Retry-After"))
			require.NoError(t, err)
			// Until the window that began with the first failure passes,
			// however long the failures took.
			require.LessOrEqual(t, retry, 15*60)
			require.GreaterOrEqual(t, retry, 15*60-int(time.Since(start).Seconds())-1)
			require.Empty(t, resp.HTTPResponse.Header.Values("Set-Cookie"), "not even with the right password")
		}
		// Once the failures leave the window, the right password works.
		testkit.AgeLoginAttempts(t, first.db, 15*time.Minute)
		second.login(t, email)
	})

	t.Run("ThrottledPerClientAddressAcrossInstances", func(t *testing.T) {
		t.Parallel()
		first := setup(t, withWriteLimit(-1, 0))
		second := setup(t, withDatabase(first.db), withWriteLimit(-1, 0))
		email := first.adminUser(t, admin.RoleOps)
		// Many emails, few tries each: the address is what gets throttled.
		for i := range admin.MaxIPFailures {
			b := []*testBundle{first, second}[i%2]
			resp, err := b.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{
				Email: fmt.Sprintf("guess-%d@example.com", i), Password: "wrong password 1",
			})
			require.NoError(t, err)
			requireError(t, http.StatusUnauthorized, "unauthorized", resp.StatusCode(), resp.Body)
		}
		resp, err := second.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: email, Password: adminPassword})
		require.NoError(t, err)
		requireError(t, http.StatusTooManyRequests, "rate_limited", resp.StatusCode(), resp.Body)
		require.NotEmpty(t, resp.HTTPResponse.Header.Get("Retry-After"))
	})

	t.Run("ClientAddressFromTrustedProxyOnly", func(t *testing.T) {
		t.Parallel()
		direct := setup(t)
		proxied := setup(t, withDatabase(direct.db), withTrustedProxies(netipPrefix(t, "127.0.0.0/8")))
		forwarded := func(_ context.Context, req *http.Request) error {
			req.Header.Set("X-Forwarded-For", "198.51.100.9, 203.0.113.5")
			return nil
		}
		for _, b := range []*testBundle{direct, proxied} {
			_, err := b.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: "x@example.com", Password: "wrong password 1"}, forwarded)
			require.NoError(t, err)
		}
		var ips []string
		rows, err := direct.db.Pool.Query(t.Context(), "SELECT host(ip) FROM login_attempts ORDER BY id")
		require.NoError(t, err)
		for rows.Next() {
			var ip string
			require.NoError(t, rows.Scan(&ip))
			ips = append(ips, ip)
		}
		require.NoError(t, rows.Err())
		// Without TRUSTED_PROXIES the header is ignored; behind a trusted
		// proxy the right-most address it did not add is the client.
		require.Equal(t, []string{"127.0.0.1", "203.0.113.5"}, ips)
	})
}

func TestAdminSession(t *testing.T) {
	t.Parallel()

	t.Run("ExpiresAfterEightHours", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		session := b.as(t, admin.RoleReadonly)
		testkit.EndAdminSessions(t, b.db, 8*time.Hour)
		resp, err := b.client.AdminMeWithResponse(t.Context(), session)
		require.NoError(t, err)
		requireError(t, http.StatusUnauthorized, "unauthorized", resp.StatusCode(), resp.Body)
	})

	t.Run("RevokedOnLogoutOnEveryInstance", func(t *testing.T) {
		t.Parallel()
		first := setup(t)
		second := setup(t, withDatabase(first.db))
		c := first.login(t, first.adminUser(t, admin.RoleAdmin))

		resp, err := second.client.AdminLogoutWithResponse(t.Context(), withCookie(c))
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, resp.StatusCode())
		cleared := sessionCookieOf(t, resp.HTTPResponse)
		require.Empty(t, cleared.Value)
		require.Negative(t, cleared.MaxAge)

		for _, b := range []*testBundle{first, second} {
			me, err := b.client.AdminMeWithResponse(t.Context(), withCookie(c))
			require.NoError(t, err)
			requireError(t, http.StatusUnauthorized, "unauthorized", me.StatusCode(), me.Body)
		}
		// Signing out again, or without a session, is not an error.
		resp, err = second.client.AdminLogoutWithResponse(t.Context(), withCookie(c))
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, resp.StatusCode())
	})

	t.Run("ForgedTokensAreRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, token := range []string{"", "x", strings.Repeat("A", 43), "../../etc/passwd"} {
			me, err := b.client.AdminMeWithResponse(t.Context(), withCookie(&http.Cookie{Name: "slotpay_session", Value: token}))
			require.NoError(t, err)
			requireError(t, http.StatusUnauthorized, "unauthorized", me.StatusCode(), me.Body)
		}
	})
}

// confirmedBooking is a booking Stripe reported paid, with its payment
// intent linked.
func (b *testBundle) confirmedBooking(t *testing.T, hour int) genapi.CreatedBooking {
	t.Helper()
	bk, co := b.paidBooking(t, hour)
	requireReceived(t, b.deliver(t, completed(bk, co).JSON(t)), false)
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	return bk
}

func TestAdminRefund(t *testing.T) {
	t.Parallel()

	t.Run("AsksStripeWithAKeyFromTheBooking", func(t *testing.T) {
		t.Parallel()
		rec, base := newStripeRecorder(t)
		b := setup(t, withStripe(base))
		bk := b.confirmedBooking(t, 10)
		pi := *b.booking(t, bk.Id).PaymentIntentID
		ops := b.as(t, admin.RoleOps)

		resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, ops)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, resp.StatusCode(), string(resp.Body))
		require.Equal(t, genapi.BookingStatus("confirmed"), resp.JSON202.Status, "refunded only when charge.refunded arrives")
		require.NotNil(t, resp.JSON202.RefundRequestedAt)

		calls := rec.calls("/v1/refunds")
		require.Len(t, calls, 1)
		require.Equal(t, pi, calls[0].Form.Get("payment_intent"))
		require.Equal(t, "slotpay-refund-"+bk.Id.String()+"-1", calls[0].IdempotencyKey)
		require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'refunded'", bk.Id))

		// A retry sends the same key: Stripe answers it with the first refund.
		resp, err = b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, ops)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, resp.StatusCode())
		calls = rec.calls("/v1/refunds")
		require.Len(t, calls, 2)
		require.Equal(t, calls[0].IdempotencyKey, calls[1].IdempotencyKey)

		// charge.refunded makes it refunded.
		requireReceived(t, b.deliver(t, withID(testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency)).JSON(t)), false)
		require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
	})

	t.Run("ErrInvalidState_NotPaid", func(t *testing.T) {
		t.Parallel()
		rec, base := newStripeRecorder(t)
		b := setup(t, withStripe(base))
		bk := b.hold(t, at(10), at(11))
		resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, b.as(t, admin.RoleOps))
		require.NoError(t, err)
		requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
		require.Empty(t, rec.calls("/v1/refunds"))
	})

	t.Run("ErrPaymentProvider_NothingRecorded", func(t *testing.T) {
		t.Parallel()
		failing := httptestStripeFailure(t)
		b := setup(t, withStripe(failing))
		bk := b.hold(t, at(10), at(11))
		testkit.SetBooking(t, b.db, bk.Id, testkit.BookingOpts{Status: booking.Confirmed, PaymentIntentID: "pi_test_admin"})
		resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, b.as(t, admin.RoleOps))
		require.NoError(t, err)
		requireError(t, http.StatusBadGateway, "payment_provider_error", resp.StatusCode(), resp.Body)
		row := b.booking(t, bk.Id)
		require.Equal(t, "confirmed", row.Status)
		require.Nil(t, row.RefundRequestedAt)
	})
}

func TestAdminBookings(t *testing.T) {
	t.Parallel()
	b := setup(t, withHoldCaps(-1, -1)) // seven holds of one customer
	readonly := b.as(t, admin.RoleReadonly)
	var created []uuid.UUID
	for hour := 9; hour < 16; hour++ {
		created = append(created, b.hold(t, at(hour), at(hour+1)).Id)
	}
	for _, id := range created[:2] {
		testkit.SetBooking(t, b.db, id, testkit.BookingOpts{Status: booking.Confirmed})
	}

	walk := func(t *testing.T, params genapi.ListAdminBookingsParams) []genapi.AdminBooking {
		var all []genapi.AdminBooking
		for pages := 0; ; pages++ {
			require.Less(t, pages, 20)
			resp, err := b.client.ListAdminBookingsWithResponse(t.Context(), &params, readonly)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
			all = append(all, resp.JSON200.Items...)
			if resp.JSON200.NextCursor == nil {
				return all
			}
			require.Len(t, resp.JSON200.Items, int(*params.Limit))
			params.Cursor = resp.JSON200.NextCursor
		}
	}

	t.Run("PagesWalkEveryRowOnceNewestFirst", func(t *testing.T) {
		all := walk(t, genapi.ListAdminBookingsParams{Limit: new(int32(3))})
		require.Len(t, all, len(created))
		for i, bk := range all {
			require.Equal(t, created[len(created)-1-i], bk.Id, "newest first, no duplicates")
		}
		require.Equal(t, "ada@example.com", all[0].Customer.Email, "operators see the customer")
	})
	t.Run("Filters", func(t *testing.T) {
		confirmed := genapi.BookingStatus("confirmed")
		all := walk(t, genapi.ListAdminBookingsParams{Limit: new(int32(1)), Status: &confirmed})
		require.Len(t, all, 2)
		window := walk(t, genapi.ListAdminBookingsParams{Limit: new(int32(50)), From: new(at(10)), To: new(at(12)), ResourceId: &b.resource.ID})
		require.Len(t, window, 2)
		other := testUUID()
		none := walk(t, genapi.ListAdminBookingsParams{Limit: new(int32(50)), ResourceId: &other})
		require.Empty(t, none)
	})
	t.Run("ErrBadCursorOrLimit", func(t *testing.T) {
		for _, q := range []string{"cursor=nonsense", "cursor=cGF5bWVudC1ldmVudHM6MQ", "limit=201", "limit=0"} {
			resp, body := b.do(t, "GET", "/v1/admin/bookings?"+q, "", readonly)
			requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode, body)
		}
	})
	t.Run("DetailWithHistoryAndEvents", func(t *testing.T) {
		rb := setup(t)
		bk := rb.confirmedBooking(t, 10)
		resp, err := rb.client.GetAdminBookingWithResponse(t.Context(), bk.Id, rb.as(t, admin.RoleReadonly))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		d := resp.JSON200
		require.Equal(t, bk.Id, d.Booking.Id)
		require.Equal(t, "Ada Lovelace", d.Booking.Customer.Name)
		require.NotNil(t, d.Booking.PaymentIntentId)
		last := d.StatusHistory[len(d.StatusHistory)-1]
		require.Equal(t, genapi.BookingStatus("confirmed"), last.ToStatus)
		require.Equal(t, "checkout.session.completed", last.Cause)
		require.Len(t, d.PaymentEvents, 1)
		require.Equal(t, genapi.EventOutcome("applied"), d.PaymentEvents[0].Outcome)
		require.Equal(t, *last.StripeEventId, d.PaymentEvents[0].StripeEventId)
		require.NotContains(t, string(resp.Body), `"payload"`)

		missing, err := rb.client.GetAdminBookingWithResponse(t.Context(), testUUID(), rb.as(t, admin.RoleReadonly))
		require.NoError(t, err)
		requireError(t, http.StatusNotFound, "not_found", missing.StatusCode(), missing.Body)
	})
}

func TestAdminPaymentEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var sent []string
	for range 5 {
		ev := withID(testkit.DisputeCreated("pi_test_"+uuid.NewString()[:8], 100, "eur"))
		requireReceived(t, b.deliver(t, ev.JSON(t)), false)
		sent = append(sent, ev.ID)
	}
	readonly := b.as(t, admin.RoleReadonly)
	params := genapi.ListAdminPaymentEventsParams{Limit: new(int32(2))}
	var got []string
	for pages := 0; pages < 10; pages++ {
		resp, err := b.client.ListAdminPaymentEventsWithResponse(t.Context(), &params, readonly)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		for _, e := range resp.JSON200.Items {
			got = append(got, e.StripeEventId)
			require.Equal(t, genapi.EventOutcome("unmatched"), e.Outcome)
		}
		if resp.JSON200.NextCursor == nil {
			break
		}
		params.Cursor = resp.JSON200.NextCursor
	}
	for i := range sent {
		require.Equal(t, sent[len(sent)-1-i], got[i], "every event once, newest first")
	}
	require.Len(t, got, len(sent))

	outcome := genapi.EventOutcome("applied")
	resp, err := b.client.ListAdminPaymentEventsWithResponse(t.Context(), &genapi.ListAdminPaymentEventsParams{Outcome: &outcome}, readonly)
	require.NoError(t, err)
	require.Empty(t, resp.JSON200.Items)
	eventType := "charge.dispute.created"
	resp, err = b.client.ListAdminPaymentEventsWithResponse(t.Context(), &genapi.ListAdminPaymentEventsParams{Type: &eventType}, readonly)
	require.NoError(t, err)
	require.Len(t, resp.JSON200.Items, len(sent))
}

func TestAdminOps(t *testing.T) {
	t.Parallel()

	t.Run("CancelsAHeldBooking", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.hold(t, at(10), at(11))
		resp, err := b.client.CancelAdminBookingWithResponse(t.Context(), bk.Id, &genapi.CancelAdminBookingParams{}, b.as(t, admin.RoleOps))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		require.Equal(t, genapi.BookingStatus("cancelled"), resp.JSON200.Status)
	})

	t.Run("ReconcilesNow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withJobs())
		bk := b.hold(t, at(10), at(11))
		testkit.LapseHold(t, b.db, bk.Id)
		resp, err := b.client.RunAdminReconcileWithResponse(t.Context(), &genapi.RunAdminReconcileParams{}, b.as(t, admin.RoleOps))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		require.Equal(t, int32(1), resp.JSON200.HoldsExpired)
		require.Equal(t, "expired", b.booking(t, bk.Id).Status)
	})
}

func TestAdminResources(t *testing.T) {
	t.Parallel()
	b := setup(t)
	adminSession := b.as(t, admin.RoleAdmin)

	resp, body := b.do(t, "POST", "/v1/admin/resources", resourceBody("studio-b"), adminSession)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	created := decodeBytes[genapi.Resource](t, body)
	require.True(t, created.Active)
	require.Equal(t, "08:00", created.OpenTime)

	t.Run("ErrInvalid", func(t *testing.T) {
		for name, change := range map[string][2]string{
			"UnknownZone":       {`"Europe/Berlin"`, `"Mars/Olympus"`},
			"LocalZone":         {`"Europe/Berlin"`, `"Local"`},
			"ClosesBeforeOpen":  {`"close_time":"20:00"`, `"close_time":"07:00"`},
			"PartialSlot":       {`"close_time":"20:00"`, `"close_time":"20:10"`},
			"MaxBelowMin":       {`"max_slots":4`, `"max_slots":0`},
			"MoreSlotsThanADay": {`"max_slots":4`, `"max_slots":25`},
			"UppercaseCurrency": {`"eur"`, `"EUR"`},
			"ClientSentAnId":    {`{"slug"`, `{"id":"0193a5e0-7b1a-7c3e-9f00-00000000a001","slug"`},
			"NonPositivePrice":  {`"unit_amount":3000`, `"unit_amount":-1`},
		} {
			t.Run(name, func(t *testing.T) {
				body := strings.Replace(resourceBody("room-"+strings.ToLower(name)), change[0], change[1], 1)
				require.NotEqual(t, resourceBody("room-"+strings.ToLower(name)), body)
				resp, out := b.do(t, "POST", "/v1/admin/resources", body, adminSession)
				requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode, out)
			})
		}
	})
	t.Run("ErrSlugTaken", func(t *testing.T) {
		resp, body := b.do(t, "POST", "/v1/admin/resources", resourceBody("studio-b"), adminSession)
		requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode, body)
	})
	t.Run("PatchTakesOffSale", func(t *testing.T) {
		resp, err := b.client.UpdateAdminResourceWithResponse(t.Context(), created.Id, genapi.ResourcePatch{Active: new(false), UnitAmount: new(int64(3500))}, adminSession)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		require.False(t, resp.JSON200.Active)
		require.Equal(t, int64(3500), resp.JSON200.UnitAmount)
		require.Equal(t, "Studio B", resp.JSON200.Name, "fields not given keep their values")
		list, err := b.client.ListResourcesWithResponse(t.Context())
		require.NoError(t, err)
		for _, r := range list.JSON200.Items {
			require.NotEqual(t, created.Id, r.Id)
		}
	})
	t.Run("PatchCheckedAsAWhole", func(t *testing.T) {
		resp, err := b.client.UpdateAdminResourceWithResponse(t.Context(), created.Id, genapi.ResourcePatch{SlotMinutes: new(int32(50))}, adminSession)
		require.NoError(t, err)
		requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode(), resp.Body)
		empty, body := b.do(t, "PATCH", "/v1/admin/resources/"+created.Id.String(), `{}`, adminSession)
		requireError(t, http.StatusBadRequest, "invalid_request", empty.StatusCode, body)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		resp, err := b.client.UpdateAdminResourceWithResponse(t.Context(), testUUID(), genapi.ResourcePatch{Name: new("x")}, adminSession)
		require.NoError(t, err)
		requireError(t, http.StatusNotFound, "not_found", resp.StatusCode(), resp.Body)
	})
}

func TestAdminPaymentEvents_APIVersionIsNullWhenTheEventNamesNone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	versioned := withID(testkit.DisputeCreated("pi_test_"+uuid.NewString()[:8], 100, "eur"))
	requireReceived(t, b.deliver(t, versioned.JSON(t)), false)
	unversioned := withID(testkit.DisputeCreated("pi_test_"+uuid.NewString()[:8], 100, "eur"))
	var event map[string]any
	require.NoError(t, json.Unmarshal(unversioned.JSON(t), &event))
	event["api_version"] = nil
	body, err := json.Marshal(event)
	require.NoError(t, err)
	requireReceived(t, b.deliver(t, body), false)

	resp, err := b.client.ListAdminPaymentEventsWithResponse(t.Context(), &genapi.ListAdminPaymentEventsParams{}, b.as(t, admin.RoleReadonly))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	versions := map[string]*string{}
	for _, e := range resp.JSON200.Items {
		versions[e.StripeEventId] = e.ApiVersion
	}
	require.Equal(t, new(stripe.APIVersion), versions[versioned.ID])
	require.Contains(t, versions, unversioned.ID)
	require.Nil(t, versions[unversioned.ID], "null, not \"\": the event named no version")
	require.Contains(t, string(resp.Body), `"api_version":null`)
}
