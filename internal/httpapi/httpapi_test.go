package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	apispec "github.com/slotpay/slotpay/api"
	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/app/apptest"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/httpapi"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) {
	// Swagger UI's page is HTML; kin-openapi decodes only data formats.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
	// The contract itself is served as a file (type string, format binary).
	openapi3filter.RegisterBodyDecoder("application/yaml", openapi3filter.FileBodyDecoder)
	testkit.Main(m)
}

const (
	webhookSecret = apptest.WebhookSecret
	checkoutTTL   = 30 * time.Minute
	pendingHold   = 15 * time.Minute
)

// testBundle is a running slotpay on its own database, and what a test needs
// to talk to it.
type testBundle struct {
	db       testkit.TestDB
	url      string
	client   *genapi.ClientWithResponses
	http     *http.Client // validates every response against api/openapi.yaml
	resource db.Resource  // UTC, 09:00–21:00, 60-minute slots, 1–4 slots, 45.00 eur a slot
}

type setupOptions struct {
	stripeBase     string
	webhookSecrets []string
	livemode       bool
	trustedProxies []netip.Prefix
	writeLimit     httpapi.RateLimit
	holdCaps       booking.HoldCaps
	database       *testkit.TestDB
	jobs           bool
}

type option func(*setupOptions)

// withStripe points the server at another Stripe API than stripe-mock.
func withStripe(base string) option { return func(o *setupOptions) { o.stripeBase = base } }

func withWebhookSecrets(s ...string) option { return func(o *setupOptions) { o.webhookSecrets = s } }

// withWriteLimit sets the per-client limit of state-changing requests; a
// negative count lifts it, for tests that send many.
func withWriteLimit(requests int, window time.Duration) option {
	return func(o *setupOptions) { o.writeLimit = httpapi.RateLimit{Requests: requests, Window: window} }
}

// withHoldCaps sets the caps on open unpaid holds per client and per
// e-mail; a negative cap lifts it, for tests that hold many slots.
func withHoldCaps(perClient, perEmail int) option {
	return func(o *setupOptions) { o.holdCaps = booking.HoldCaps{PerClient: perClient, PerEmail: perEmail} }
}

func withTrustedProxies(p ...netip.Prefix) option {
	return func(o *setupOptions) { o.trustedProxies = p }
}

// withJobs works the instance's background jobs (refund requests, reconcile
// passes) while the test runs.
func withJobs() option { return func(o *setupOptions) { o.jobs = true } }

// withDatabase runs this server on another test's database: a second
// instance of one deployment.
func withDatabase(d testkit.TestDB) option { return func(o *setupOptions) { o.database = &d } }

func setup(t testing.TB, opts ...option) *testBundle {
	t.Helper()
	o := setupOptions{webhookSecrets: []string{webhookSecret}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.stripeBase == "" {
		o.stripeBase = testkit.StripeMock(t)
	}
	var tdb testkit.TestDB
	if o.database != nil {
		tdb = *o.database
	} else {
		tdb = testkit.NewDatabase(t)
	}
	srv := httptest.NewUnstartedServer(nil)
	public, err := url.Parse("http://" + srv.Listener.Addr().String())
	require.NoError(t, err)
	a := apptest.New(t, tdb.Pool, o.stripeBase, &apptest.Opts{
		Metrics: true,
		Configure: func(c *config.Config) {
			c.PublicBaseURL = public
			c.StripeWebhookSecret = o.webhookSecrets
			c.TrustedProxies = o.trustedProxies
			if o.livemode {
				c.StripeSecretKey = "sk_live_123"
			}
		},
	})
	if o.jobs {
		apptest.Start(t, a)
	}
	a.HTTP.WriteLimit = o.writeLimit
	a.HTTP.HoldCaps = o.holdCaps
	handler, err := a.Handler()
	require.NoError(t, err)
	srv.Config.Handler = handler
	srv.Start()
	t.Cleanup(srv.Close)

	hc := &http.Client{Transport: newValidatingTransport(t), Timeout: testkit.WaitTimeout}
	client, err := genapi.NewClientWithResponses(srv.URL, genapi.WithHTTPClient(hc))
	require.NoError(t, err)
	return &testBundle{
		db: tdb, url: srv.URL, client: client, http: hc,
		resource: createResource(t, tdb, nil),
	}
}

// createResource and at are testkit's resource factory and its bookable
// times, under the names these tests read best with.
var (
	createResource = testkit.CreateResource
	at             = testkit.TomorrowAt
)

func bookingRequest(resourceID uuid.UUID, from, to time.Time) genapi.CreateBookingRequest {
	r := genapi.CreateBookingRequest{ResourceId: resourceID, StartsAt: from, EndsAt: to}
	r.Customer.Email = openapi_types.Email("ada@example.com")
	r.Customer.Name = "Ada Lovelace"
	return r
}

// hold books [from, to) on the default resource and requires a 201.
func (b *testBundle) hold(t testing.TB, from, to time.Time) genapi.CreatedBooking {
	t.Helper()
	resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, bookingRequest(b.resource.ID, from, to))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode(), string(resp.Body))
	return *resp.JSON201
}

// checkout starts checkout for a booking and requires a 200.
func (b *testBundle) checkout(t *testing.T, id uuid.UUID) genapi.Checkout {
	t.Helper()
	resp, err := b.client.CreateCheckoutWithResponse(t.Context(), id, &genapi.CreateCheckoutParams{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	return *resp.JSON200
}

// paidBooking holds a slot and starts its checkout: a booking that Stripe
// could now report paid.
func (b *testBundle) paidBooking(t *testing.T, hour int) (genapi.CreatedBooking, genapi.Checkout) {
	t.Helper()
	bk := b.hold(t, at(hour), at(hour+2))
	return bk, b.checkout(t, bk.Id)
}

// deliver posts a webhook signed with webhookSecret now, as Stripe does.
func (b *testBundle) deliver(t *testing.T, payload []byte) *http.Response {
	t.Helper()
	return b.deliverSigned(t, payload, testkit.SignatureHeader(payload, webhookSecret, time.Now()))
}

func (b *testBundle) deliverSigned(t *testing.T, payload []byte, signature string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url+"/v1/webhooks/stripe", bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("Stripe-Signature", signature)
	}
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (b *testBundle) booking(t *testing.T, id uuid.UUID) db.Booking {
	t.Helper()
	row, err := db.New(b.db.Pool).BookingGetByID(t.Context(), id)
	require.NoError(t, err)
	return row
}

// completed is Stripe's checkout.session.completed for a paid session of bk.
func completed(bk genapi.CreatedBooking, co genapi.Checkout) testkit.Event {
	return withID(testkit.CheckoutSessionCompleted(co.CheckoutSessionId, bk.Id.String(), bk.AmountTotal, bk.Currency))
}

// withID fixes an event's id up front, so that a test can look it up.
func withID(ev testkit.Event) testkit.Event {
	ev.ID = testkit.RandomID("evt_test_")
	return ev
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v
}

type errorEnvelope struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// requireError checks status and envelope code of a raw response body.
func requireError(t *testing.T, status int, code string, gotStatus int, body []byte) {
	t.Helper()
	require.Equal(t, status, gotStatus, string(body))
	var env errorEnvelope
	require.NoError(t, json.Unmarshal(body, &env), string(body))
	require.Equal(t, code, env.Error.Code, string(body))
	require.NotEmpty(t, env.Error.Message)
	require.NotEmpty(t, env.Error.RequestID)
}

// validatingTransport checks every response the tests receive against the
// contract (api/openapi.yaml, or api/site.yaml for the routes outside the
// API), with its status declared for the operation, and that it carries
// X-Request-Id. Responses to paths neither knows must still be the error
// envelope.
type validatingTransport struct {
	t       testing.TB
	specs   []*openapi3.T
	routers []routers.Router
}

func newValidatingTransport(t testing.TB) *validatingTransport {
	v := &validatingTransport{t: t}
	// The contract files themselves, not the generated code's embedded
	// copy, which leaves out the operations excluded from generation.
	for _, doc := range [][]byte{apispec.OpenAPI, apispec.Site} {
		spec, err := openapi3.NewLoader().LoadFromData(doc)
		require.NoError(t, err)
		require.NoError(t, spec.Validate(t.Context()))
		spec.Servers = nil
		router, err := gorillamux.NewRouter(spec)
		require.NoError(t, err)
		v.specs, v.routers = append(v.specs, spec), append(v.routers, router)
	}
	return v
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))

	if resp.Header.Get("X-Request-Id") == "" {
		v.t.Errorf("%s %s: response has no X-Request-Id", req.Method, req.URL.Path)
	}
	var (
		route    *routers.Route
		params   map[string]string
		findErrs []error
	)
	for _, router := range v.routers {
		r, p, err := router.FindRoute(req)
		if err == nil {
			route, params = r, p
			break
		}
		findErrs = append(findErrs, err)
	}
	if route == nil {
		v.t.Logf("%s %s: no route in the contract: %v", req.Method, req.URL.Path, findErrs)
		var env map[string]any
		if err := json.Unmarshal(body, &env); err != nil {
			v.t.Errorf("%s %s: %d response is not JSON: %s", req.Method, req.URL.Path, resp.StatusCode, body)
		} else if err := v.specs[0].Components.Schemas["ErrorEnvelope"].Value.VisitJSON(env); err != nil {
			v.t.Errorf("%s %s: unrouted response is not the error envelope: %v", req.Method, req.URL.Path, err)
		}
		return resp, nil
	}
	validationReq := req.Clone(context.Background())
	validationReq.Body = io.NopCloser(bytes.NewReader(reqBody))
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: validationReq, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	})
	if err != nil {
		v.t.Errorf("%s %s: response %d does not match the contract: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}

// httptestStripeFailure is a Stripe API that refuses everything, with a
// detail that must not reach slotpay's clients.
func httptestStripeFailure(t *testing.T) string {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusPaymentRequired)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"secret internal detail from Stripe"}}`))
	}))
	t.Cleanup(failing.Close)
	return failing.URL
}

func decodeBytes[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(body, &v), string(body))
	return v
}

func netipPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	require.NoError(t, err)
	return p
}

func dateOf(t time.Time) openapi_types.Date { return openapi_types.Date{Time: t} }

func testUUID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func fmtSscan(s string, v *int64) (int, error) { return fmt.Sscan(s, v) }
