package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// StripeFake is a stateful simulator of the Stripe endpoints slotpay
// calls, for tests that stripe-mock (stateless) cannot serve: the reconciler,
// session expiry, cancellation, refunds, disputes and the model checker
// (internal/modelcheck). It speaks Stripe's wire format (form-encoded
// requests, JSON objects and errors), so the real stripe-go client talks to
// it through StripeClient(t, fake.URL).
//
// Implemented:
//
//	POST /v1/checkout/sessions              create (price_data line items only)
//	GET  /v1/checkout/sessions/{id}         retrieve, expand[]=payment_intent
//	POST /v1/checkout/sessions/{id}/expire  open → expired
//	POST /v1/refunds                        by payment_intent (or charge)
//	GET  /v1/refunds, /v1/refunds/{id}      list (by payment_intent), retrieve
//	GET  /v1/payment_intents/{id}           retrieve
//	GET  /v1/events                         list events (added or emitted)
//	GET  /v1/events/{id}                    an event's JSON as given
//
// Every POST honours Idempotency-Key. A repeat with the same parameters gets
// the first answer back (and changes nothing) for 24 hours; a repeat with
// other parameters gets 400 idempotency_error. By default, as at Stripe, the
// first answer is stored whatever it was, a 500 included (stripe-go does not
// retry a POST 500 for that reason), so a retry after a failure must use a
// new key. Lenient stores successes only, a kinder Stripe, for the tests of
// that switch. Note that stripe-go sends a random key with every POST whose
// params have none.
//
// Nothing happens on its own: sessions do not lapse at expires_at; a test
// moves the world on with Complete, SetPaymentIntentStatus, ExpireNow,
// PayThroughPaymentLink, SetRefundStatus, OpenDispute and CloseDispute (see
// stripesim.go). Each change emits the events Stripe would send (EmitEvents,
// part of the default), which DeliverEvents posts to a webhook like Stripe
// does (stripedelivery.go); a test may add more with AddEvent.
type StripeFake struct {
	// URL is the base URL to give StripeClient (no /v1).
	URL string

	t           testing.TB
	sessionBase []byte // the checkout_session fixture

	mu          sync.Mutex
	sessions    map[string]*fakeSession
	order       []string          // session ids in creation order
	byPI        map[string]string // payment intent id → session id
	byCharge    map[string]string // charge id → session id
	refunds     []FakeRefund
	events      []fakeEvent // in the order added
	idempotency map[string]idempotentResult
	calls       []fakeCall
	failures    []fakeFailure

	opts     FakeOptions
	faults   []*faultState
	faultRNG *rand.Rand
	outbox   []*outboxEvent // emitted, not yet acknowledged by a webhook
	disputes map[string]*fakeDispute
	sentAll  map[string]int // event id → deliveries attempted

	faultCounts  map[string]int // by FaultKind name
	eventFixture []byte
	holds        []*fakeHold
}

type fakeHold struct {
	pathPrefix string
	afterApply bool // applied first, then the answer is held
	reached    chan struct{}
	released   chan struct{}
	once       sync.Once
}

func (h *fakeHold) release() { h.once.Do(func() { close(h.released) }) }

// wait tells the test the request is here and waits for release; false if
// the caller went away first.
func (h *fakeHold) wait(r *http.Request) bool {
	close(h.reached)
	select {
	case <-h.released:
		return true
	case <-r.Context().Done():
		return false
	}
}

// FakeSession is a Checkout Session as the fake holds it.
type FakeSession struct {
	ID                string
	Status            string // open, complete, expired
	PaymentStatus     string // unpaid, paid, no_payment_required
	ClientReferenceID string
	Currency          string
	PaymentIntent     string // "" until Complete
	URL               string // kept after the session closes; the API then answers url null
	AmountTotal       int64
	ExpiresAt         int64
	Metadata          map[string]string
	IdempotencyKey    string // of the create request
}

// FakeRefund is a refund created through POST /v1/refunds.
type FakeRefund struct {
	ID             string
	PaymentIntent  string
	IdempotencyKey string
	Amount         int64
	Metadata       map[string]string
	// Status is succeeded (or pending, with PendingRefunds) when created;
	// SetRefundStatus moves it on to succeeded, failed or canceled.
	Status string
	// FailureReason is set when Status is failed.
	FailureReason string
	Created       int64
}

type fakeSession struct {
	FakeSession
	created       int64
	mode          string
	customerEmail string
	successURL    string
	cancelURL     string
	piStatus      string
	piMetadata    map[string]string
	chargeID      string
	refunded      int64
	paymentLink   string // plink_… for a Payment Link's session
}

type fakeEvent struct {
	id      string
	typ     string
	created int64
	raw     []byte
}

type idempotentResult struct {
	method, path string
	params       url.Values
	answer       fakeAnswer
	at           time.Time
}

// idempotencyWindow is how long Stripe keeps an answer under a key.
const idempotencyWindow = 24 * time.Hour

type fakeCall struct{ method, path string }

type fakeFailure struct {
	pathPrefix string
	status     int
	body       string
}

type fakeAnswer struct {
	status   int
	body     []byte
	replayed bool // an idempotent repeat's stored answer
	// validation marks a refusal of the parameters themselves, which
	// Stripe answers before executing anything and so never stores under
	// the idempotency key.
	validation bool
}

// NewStripeFake starts a fake on a local port; it stops when t ends. Without
// options it is Faithful (see defaultFakeOptions); see FakeOptions for each
// behaviour.
func NewStripeFake(t testing.TB, opts ...FakeOption) *StripeFake {
	t.Helper()
	base, err := fixtures.ReadFile("testdata/checkout_session.json")
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	f := &StripeFake{
		t:           t,
		sessionBase: base,
		sessions:    map[string]*fakeSession{},
		byPI:        map[string]string{},
		byCharge:    map[string]string{},
		idempotency: map[string]idempotentResult{},
		disputes:    map[string]*fakeDispute{},
		sentAll:     map[string]int{},
	}
	opts = append(defaultFakeOptions(t), opts...)
	for _, o := range opts {
		o(&f.opts)
	}
	f.faultRNG = rand.New(rand.NewPCG(f.opts.FaultSeed, f.opts.FaultSeed^0x9e3779b97f4a7c15))
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// defaultFakeOptions reads STRIPEFAKE_FAITHFUL_DEFAULT. Unset, every fake
// is Faithful: a stand-in kinder than Stripe proves nothing. "0" makes the
// default Lenient (to see which tests would pass only against a kinder
// Stripe); a comma-separated list of store, expires_at and events turns on
// those behaviours only.
func defaultFakeOptions(t testing.TB) []FakeOption {
	v := strings.TrimSpace(os.Getenv("STRIPEFAKE_FAITHFUL_DEFAULT"))
	switch v {
	case "", "1", "all":
		return []FakeOption{Faithful()}
	case "0":
		return []FakeOption{Lenient()}
	}
	var opts []FakeOption
	for _, name := range strings.Split(v, ",") {
		switch strings.TrimSpace(name) {
		case "store":
			opts = append(opts, StoreEveryAnswer())
		case "expires_at":
			opts = append(opts, CheckExpiresAt())
		case "events":
			opts = append(opts, EmitEvents())
		default:
			t.Fatalf("testkit: STRIPEFAKE_FAITHFUL_DEFAULT: %q is none of 0, 1, all, store, expires_at, events", name)
		}
	}
	return opts
}

// Session returns the session id, or the zero FakeSession if there is none.
func (f *StripeFake) Session(id string) FakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return FakeSession{}
	}
	return s.snapshot()
}

// Sessions returns every session in the order they were created.
func (f *StripeFake) Sessions() []FakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FakeSession, 0, len(f.order))
	for _, id := range f.order {
		out = append(out, f.sessions[id].snapshot())
	}
	return out
}

// Complete makes an open session complete, as the customer finishing checkout
// does: paymentStatus is paid (its payment intent succeeded), unpaid (an
// asynchronous payment method still settling: the payment intent is
// processing) or no_payment_required. The session gets a payment intent
// "pi_fake_…" unless it has one. A misuse fails the test.
func (f *StripeFake) Complete(sessionID, paymentStatus string) {
	f.t.Helper()
	if err := f.TryComplete(sessionID, paymentStatus); err != nil {
		f.t.Error(err)
	}
}

// TryComplete is Complete that returns its misuse as an error instead of failing
// the test, for callers racing the system under test.
func (f *StripeFake) TryComplete(sessionID, paymentStatus string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[sessionID]
	if !ok {
		return fmt.Errorf("testkit: StripeFake.Complete: no session %s", sessionID)
	}
	if s.Status != "open" {
		return fmt.Errorf("testkit: StripeFake.Complete: session %s is %s; only an open session can complete", sessionID, s.Status)
	}
	var piStatus string
	switch paymentStatus {
	case "paid", "no_payment_required":
		piStatus = "succeeded"
	case "unpaid":
		piStatus = "processing"
	default:
		return fmt.Errorf("testkit: StripeFake.Complete: payment status %q is none of paid, unpaid, no_payment_required", paymentStatus)
	}
	s.Status, s.PaymentStatus = "complete", paymentStatus
	f.ensurePaymentIntent(s)
	s.piStatus = piStatus
	f.emitSession(s, "checkout.session.completed")
	return nil
}

// SetPaymentIntentStatus sets the status of the completed session's payment
// intent, as an asynchronous payment settling does: "succeeded" also makes
// the session paid; "requires_payment_method" is a failed payment (the
// session stays unpaid). A misuse fails the test.
func (f *StripeFake) SetPaymentIntentStatus(sessionID, status string) {
	f.t.Helper()
	if err := f.TrySetPaymentIntentStatus(sessionID, status); err != nil {
		f.t.Error(err)
	}
}

// TrySetPaymentIntentStatus is SetPaymentIntentStatus that returns its misuse as an error instead of failing
// the test, for callers racing the system under test.
func (f *StripeFake) TrySetPaymentIntentStatus(sessionID, status string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[sessionID]
	if !ok {
		return fmt.Errorf("testkit: StripeFake.SetPaymentIntentStatus: no session %s", sessionID)
	}
	if s.PaymentIntent == "" {
		return fmt.Errorf("testkit: StripeFake.SetPaymentIntentStatus: session %s has no payment intent yet; Complete it first", sessionID)
	}
	was := s.piStatus
	s.piStatus = status
	if status == "succeeded" {
		s.PaymentStatus = "paid"
	}
	if was == "processing" && s.Status == "complete" {
		switch status {
		case "succeeded":
			f.emitSession(s, "checkout.session.async_payment_succeeded")
		case "requires_payment_method", "canceled":
			f.emitSession(s, "checkout.session.async_payment_failed")
		}
	}
	return nil
}

// Refunds returns every refund in the order they were created.
func (f *StripeFake) Refunds() []FakeRefund {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FakeRefund, len(f.refunds))
	for i, r := range f.refunds {
		r.Metadata = maps.Clone(r.Metadata)
		out[i] = r
	}
	return out
}

// AddEvent makes an event (e.g. from Event.JSON) known to the Events API:
// listed by GET /v1/events by its created time, returned byte for byte by GET
// /v1/events/{id}.
func (f *StripeFake) AddEvent(raw []byte) {
	f.t.Helper()
	var head struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Created *int64 `json:"created"`
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.ID == "" {
		f.t.Errorf("testkit: StripeFake.AddEvent: not an event with an id (%v): %.200s", err, raw)
		return
	}
	ev := fakeEvent{id: head.ID, typ: head.Type, created: time.Now().Unix(), raw: bytes.Clone(raw)}
	if head.Created != nil {
		ev.created = *head.Created
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.events {
		if e.id == ev.id {
			f.t.Errorf("testkit: StripeFake.AddEvent: event %s added twice", ev.id)
			return
		}
	}
	f.events = append(f.events, ev)
}

// Calls returns how many requests with this method ("" for any) and a path
// starting with pathPrefix the fake has received, failed ones included.
func (f *StripeFake) Calls(method, pathPrefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if (method == "" || c.method == method) && strings.HasPrefix(c.path, pathPrefix) {
			n++
		}
	}
	return n
}

// FailNext makes the next request whose path starts with pathPrefix fail with
// status and body stripeErrorJSON (when empty, a generic api_error), before it
// changes anything. Failures queue: two calls fail the next two requests.
// By default the failure is not remembered under the request's idempotency
// key, so a retry under it succeeds; with StoreEveryAnswer a 5xx is
// remembered and replayed for 24 hours, as Stripe does. Inject offers
// failures after the request took effect, timeouts and cut connections.
func (f *StripeFake) FailNext(pathPrefix string, status int, stripeErrorJSON string) {
	if stripeErrorJSON == "" {
		stripeErrorJSON = `{"error":{"type":"api_error","message":"An unknown error occurred (injected by StripeFake.FailNext)."}}`
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fakeFailure{pathPrefix: pathPrefix, status: status, body: stripeErrorJSON})
}

// Hold makes the next request whose path starts with pathPrefix wait before
// it is answered: reached is closed when it arrives, and it goes on when
// release is called (at the latest when the test ends). A held request whose
// caller goes away meanwhile is never answered or applied, like a request
// that never reached Stripe.
func (f *StripeFake) Hold(pathPrefix string) (reached <-chan struct{}, release func()) {
	return f.hold(&fakeHold{pathPrefix: pathPrefix})
}

// HoldAnswer is Hold for a request that Stripe carries out at once but
// answers only on release: its caller may die not knowing it succeeded.
func (f *StripeFake) HoldAnswer(pathPrefix string) (reached <-chan struct{}, release func()) {
	return f.hold(&fakeHold{pathPrefix: pathPrefix, afterApply: true})
}

func (f *StripeFake) hold(h *fakeHold) (<-chan struct{}, func()) {
	h.reached, h.released = make(chan struct{}), make(chan struct{})
	f.mu.Lock()
	f.holds = append(f.holds, h)
	f.mu.Unlock()
	f.t.Cleanup(h.release)
	return h.reached, h.release
}

func (f *StripeFake) takeHold(path string) *fakeHold {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, h := range f.holds {
		if strings.HasPrefix(path, h.pathPrefix) {
			f.holds = append(f.holds[:i], f.holds[i+1:]...)
			return h
		}
	}
	return nil
}

func (s *fakeSession) snapshot() FakeSession {
	out := s.FakeSession
	out.Metadata = maps.Clone(s.Metadata)
	return out
}

func (f *StripeFake) ensurePaymentIntent(s *fakeSession) {
	if s.PaymentIntent != "" {
		return
	}
	s.PaymentIntent = RandomID("pi_fake_")
	s.chargeID = RandomID("ch_fake_")
	f.byPI[s.PaymentIntent] = s.ID
	f.byCharge[s.chargeID] = s.ID
}

// ServeHTTP answers one API request. The whole request is handled under the
// lock, so requests (and the test's control calls) apply one at a time; an
// injected timeout or cut connection happens after the lock is released.
func (f *StripeFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hold := f.takeHold(r.URL.Path)
	if hold != nil && !hold.afterApply && !hold.wait(r) {
		return // the caller went away while held: Stripe never saw it
	}
	body, err := io.ReadAll(r.Body)
	var (
		a     fakeAnswer
		fault *faultState
	)
	if err != nil {
		a = stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "", "", "could not read the request body: "+err.Error())
	} else {
		f.mu.Lock()
		a, fault = f.answer(r, body)
		f.mu.Unlock()
	}
	if hold != nil && hold.afterApply && !hold.wait(r) {
		return // applied, but the caller went away before the answer
	}
	if fault != nil && (fault.Kind == FaultTimeout || fault.Kind == FaultCut) {
		if fault.Kind == FaultTimeout {
			select {
			case <-time.After(fault.delay()):
			case <-r.Context().Done():
			}
		}
		cutConnection(w, a)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Request-Id", RandomID("req_"))
	h.Set("Stripe-Version", stripe.APIVersion)
	if v := r.Header.Get("Stripe-Version"); v != "" {
		h.Set("Stripe-Version", v)
	}
	if k := r.Header.Get("Idempotency-Key"); k != "" && r.Method == http.MethodPost {
		h.Set("Idempotency-Key", k)
	}
	if a.replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(a.status)
	w.Write(a.body) //nolint:errcheck // the client went away
}

// cutConnection closes the client's connection in the middle of the answer,
// as a network failure between slotpay and Stripe does. Half the answer is
// sent first: a connection closed before any byte would be retried by Go's
// transport itself (it treats a request with an Idempotency-Key as
// idempotent), which hides the failure rather than injecting it.
func cutConnection(w http.ResponseWriter, a fakeAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	w.Write(a.body[:len(a.body)/2]) //nolint:errcheck // cut anyway
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http then closes the connection
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func (f *StripeFake) answer(r *http.Request, body []byte) (fakeAnswer, *faultState) {
	path := r.URL.Path
	f.calls = append(f.calls, fakeCall{method: r.Method, path: path})

	if a, ok := checkAPIKey(r.Header.Get("Authorization")); !ok {
		return a, nil
	}
	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if r.Method != http.MethodPost {
		key = ""
	}
	raw := r.URL.RawQuery
	if r.Method == http.MethodPost {
		raw = string(body)
	}
	params, err := url.ParseQuery(raw)
	if err != nil {
		return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "", "", "Invalid request body: "+err.Error()), nil
	}

	for i, fail := range f.failures {
		if strings.HasPrefix(path, fail.pathPrefix) {
			f.failures = slices.Delete(f.failures, i, i+1)
			a := fakeAnswer{status: fail.status, body: []byte(fail.body)}
			f.remember(key, r.Method, path, params, a)
			return a, nil
		}
	}
	fault := f.pickFault(r.Method, path)
	if fault != nil && fault.Kind == FaultError {
		a := fault.errorAnswer()
		f.remember(key, r.Method, path, params, a)
		return a, fault
	}

	if key != "" {
		if prev, ok := f.idempotency[key]; ok && time.Since(prev.at) < idempotencyWindow {
			if prev.method != r.Method || prev.path != path || !reflect.DeepEqual(prev.params, params) {
				return stripeErrorAnswer(http.StatusBadRequest, "idempotency_error", "", "",
					"Keys for idempotent requests can only be used with the same parameters they were first used with. "+
						"Try using a key other than '"+key+"' if you meant to execute a different request."), fault
			}
			a := prev.answer
			a.replayed = true
			return a, fault
		}
	}

	a := f.route(r.Method, path, params, key)
	if fault != nil && fault.Kind == FaultErrorAfter {
		// The request took effect; its answer was lost in Stripe's own
		// failure, and that failure is what the key now replays.
		a = fault.errorAnswer()
	}
	f.remember(key, r.Method, path, params, a)
	return a, fault
}

// remember stores an answer under its idempotency key: by default a success
// only; with StoreEveryAnswer whatever Stripe would store, which is every
// answer of a request that began executing (errors and 5xx included), not
// a refusal of its parameters, of its API key, or a rate limit.
func (f *StripeFake) remember(key, method, path string, params url.Values, a fakeAnswer) {
	if key == "" {
		return
	}
	if prev, ok := f.idempotency[key]; ok && time.Since(prev.at) < idempotencyWindow {
		return // a failure in front of a stored answer does not replace it
	}
	store := a.status < 300
	if f.opts.StoreEveryAnswer {
		store = !a.validation && a.status != http.StatusUnauthorized && a.status != http.StatusTooManyRequests
	}
	if store {
		f.idempotency[key] = idempotentResult{method: method, path: path, params: params, answer: a, at: time.Now()}
	}
}

func checkAPIKey(header string) (fakeAnswer, bool) {
	key, ok := strings.CutPrefix(header, "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return stripeErrorAnswer(http.StatusUnauthorized, "invalid_request_error", "", "",
			"You did not provide an API key. You need to provide your API key in the Authorization header, "+
				"using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."), false
	}
	if !strings.HasPrefix(key, "sk_test_") && !strings.HasPrefix(key, "rk_test_") {
		shown := key
		if len(shown) > 8 {
			shown = shown[:8] + "*********" + shown[len(shown)-4:]
		}
		return stripeErrorAnswer(http.StatusUnauthorized, "invalid_request_error", "", "",
			"Invalid API Key provided: "+shown+" (StripeFake takes test mode keys, sk_test_…)"), false
	}
	return fakeAnswer{}, true
}

func (f *StripeFake) route(method, path string, params url.Values, idemKey string) fakeAnswer {
	const sessionsPath = "/v1/checkout/sessions"
	switch {
	case path == sessionsPath && method == http.MethodPost:
		return f.createSession(params, idemKey)
	case strings.HasPrefix(path, sessionsPath+"/"):
		id, action, _ := strings.Cut(strings.TrimPrefix(path, sessionsPath+"/"), "/")
		switch {
		case action == "" && method == http.MethodGet:
			return f.retrieveSession(id, params)
		case action == "expire" && method == http.MethodPost:
			return f.expireSession(id, params)
		}
	case path == "/v1/refunds" && method == http.MethodPost:
		return f.createRefund(params, idemKey)
	case path == "/v1/refunds" && method == http.MethodGet:
		return f.listRefunds(params)
	case strings.HasPrefix(path, "/v1/refunds/") && method == http.MethodGet:
		return f.retrieveRefund(strings.TrimPrefix(path, "/v1/refunds/"))
	case strings.HasPrefix(path, "/v1/payment_intents/") && method == http.MethodGet:
		return f.retrievePaymentIntent(strings.TrimPrefix(path, "/v1/payment_intents/"))
	case path == "/v1/events" && method == http.MethodGet:
		return f.listEvents(params)
	case strings.HasPrefix(path, "/v1/events/") && method == http.MethodGet:
		return f.retrieveEvent(strings.TrimPrefix(path, "/v1/events/"))
	}
	return stripeErrorAnswer(http.StatusNotFound, "invalid_request_error", "", "",
		fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we can help at "+
			"https://support.stripe.com/. (StripeFake implements only what slotpay calls.)", method, path))
}

// --- Checkout Sessions ---

func (f *StripeFake) createSession(params url.Values, idemKey string) fakeAnswer {
	received := time.Now()
	mode := params.Get("mode")
	if mode == "" {
		return missingParam("mode")
	}
	if mode != "payment" {
		return invalidParam("mode", "StripeFake supports only mode payment, not "+mode+".")
	}
	if params.Get("success_url") == "" {
		return missingParam("success_url")
	}

	var total int64
	currency := params.Get("currency")
	n := 0
	for ; hasPrefixedParam(params, fmt.Sprintf("line_items[%d]", n)); n++ {
		p := fmt.Sprintf("line_items[%d]", n)
		if params.Has(p + "[price]") {
			return invalidParam(p+"[price]", "StripeFake supports only line items with price_data, not a Price id.")
		}
		if !params.Has(p + "[price_data][currency]") {
			return missingParam(p + "[price_data][currency]")
		}
		c := strings.ToLower(params.Get(p + "[price_data][currency]"))
		if currency == "" {
			currency = c
		} else if c != currency {
			return invalidParam(p+"[price_data][currency]", "All line items must have the same currency.")
		}
		if !hasPrefixedParam(params, p+"[price_data][product_data]") && !params.Has(p+"[price_data][product]") {
			return missingParam(p + "[price_data][product_data]")
		}
		unit, a, ok := intParam(params, p+"[price_data][unit_amount]", true)
		if !ok {
			return a
		}
		qty, a, ok := intParam(params, p+"[quantity]", true)
		if !ok {
			return a
		}
		if unit < 0 {
			return invalidParam(p+"[price_data][unit_amount]", "This value must be greater than or equal to 0.")
		}
		if qty < 1 {
			return invalidParam(p+"[quantity]", "This value must be greater than or equal to 1.")
		}
		total += unit * qty
	}
	if n == 0 {
		return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "line_items",
			"You must specify either `line_items` or `price` in `payment` mode.")
	}

	now := time.Now().Unix()
	expiresAt := now + 24*60*60
	if params.Has("expires_at") {
		v, a, ok := intParam(params, "expires_at", false)
		if !ok {
			return a
		}
		expiresAt = v
		if f.opts.CheckExpiresAt {
			// Stripe measures from the moment it receives the request, not
			// from whole seconds: an expires_at computed as now + 30 min
			// before a round trip elsewhere is refused.
			at := time.Unix(expiresAt, 0)
			if at.Before(received.Add(30 * time.Minute)) {
				return invalidParam("expires_at", "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.")
			}
			if at.After(received.Add(24 * time.Hour)) {
				return invalidParam("expires_at", "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.")
			}
		}
	}

	id := RandomID("cs_test_fake_")
	s := &fakeSession{
		FakeSession: FakeSession{
			ID:                id,
			Status:            "open",
			PaymentStatus:     "unpaid",
			ClientReferenceID: params.Get("client_reference_id"),
			Currency:          currency,
			URL:               "https://checkout.stripe.com/c/pay/" + id,
			AmountTotal:       total,
			ExpiresAt:         expiresAt,
			Metadata:          mapParam(params, "metadata"),
			IdempotencyKey:    idemKey,
		},
		created:       now,
		mode:          mode,
		customerEmail: params.Get("customer_email"),
		successURL:    params.Get("success_url"),
		cancelURL:     params.Get("cancel_url"),
		piMetadata:    mapParam(params, "payment_intent_data[metadata]"),
	}
	f.sessions[id] = s
	f.order = append(f.order, id)
	return f.sessionAnswer(s, params)
}

func (f *StripeFake) retrieveSession(id string, params url.Values) fakeAnswer {
	s, ok := f.sessions[id]
	if !ok {
		return noSuch("checkout.session", id)
	}
	return f.sessionAnswer(s, params)
}

func (f *StripeFake) expireSession(id string, params url.Values) fakeAnswer {
	s, ok := f.sessions[id]
	if !ok {
		return noSuch("checkout.session", id)
	}
	if s.Status != "open" {
		return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "", "",
			`Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of `+
				"`"+s.Status+"`.")
	}
	s.Status = "expired"
	f.emitSession(s, "checkout.session.expired")
	return f.sessionAnswer(s, params)
}

// sessionAnswer renders s on top of the fixture, so that it has every field a
// real session has.
func (f *StripeFake) sessionAnswer(s *fakeSession, params url.Values) fakeAnswer {
	expandPI := false
	for _, e := range listParam(params, "expand") {
		if e != "payment_intent" {
			return invalidParam("expand", "This property cannot be expanded ("+e+"). (StripeFake expands only payment_intent.)")
		}
		expandPI = true
	}

	dec := json.NewDecoder(bytes.NewReader(f.sessionBase))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return stripeErrorAnswer(http.StatusInternalServerError, "api_error", "", "", "StripeFake: fixture: "+err.Error())
	}
	set := map[string]any{
		"id":                  s.ID,
		"object":              "checkout.session",
		"livemode":            false,
		"mode":                s.mode,
		"status":              s.Status,
		"payment_status":      s.PaymentStatus,
		"client_reference_id": nullIfEmpty(s.ClientReferenceID),
		"customer_email":      nullIfEmpty(s.customerEmail),
		"currency":            s.Currency,
		"amount_subtotal":     s.AmountTotal,
		"amount_total":        s.AmountTotal,
		"total_details":       map[string]any{"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
		"metadata":            nonNilMap(s.Metadata),
		"created":             s.created,
		"expires_at":          s.ExpiresAt,
		"success_url":         s.successURL,
		"cancel_url":          nullIfEmpty(s.cancelURL),
		"url":                 nil,
		"payment_intent":      nil,
		"customer_details":    nil,
		"ui_mode":             "hosted",
		// Fixture fields that slotpay never sets.
		"after_expiration":                     nil,
		"shipping_address_collection":          nil,
		"shipping_cost":                        nil,
		"shipping_options":                     []any{},
		"currency_conversion":                  nil,
		"collected_information":                nil,
		"consent_collection":                   nil,
		"custom_text":                          map[string]any{"after_submit": nil, "shipping_address": nil, "submit": nil, "terms_of_service_acceptance": nil},
		"payment_method_configuration_details": nil,
		"invoice_creation":                     nil,
	}
	if s.paymentLink != "" {
		set["payment_link"] = s.paymentLink
	}
	if s.Status == "open" {
		// Stripe gives the URL only while the session can be paid.
		set["url"] = s.URL
	}
	if s.Status == "complete" {
		details, _ := obj["customer_details"].(map[string]any)
		if details == nil {
			details = map[string]any{}
		}
		details["email"] = nullIfEmpty(s.customerEmail)
		if s.customerEmail == "" {
			details["email"] = "customer@example.com"
		}
		set["customer_details"] = details
	}
	if s.PaymentIntent != "" {
		set["payment_intent"] = s.PaymentIntent
		if expandPI {
			set["payment_intent"] = s.paymentIntentObject()
		}
	}
	maps.Copy(obj, set)
	return jsonAnswer(http.StatusOK, obj)
}

func (s *fakeSession) paymentIntentObject() map[string]any {
	received := int64(0)
	if s.piStatus == "succeeded" {
		received = s.AmountTotal
	}
	return map[string]any{
		"id":                   s.PaymentIntent,
		"object":               "payment_intent",
		"amount":               s.AmountTotal,
		"amount_received":      received,
		"currency":             s.Currency,
		"status":               s.piStatus,
		"metadata":             nonNilMap(s.piMetadata),
		"latest_charge":        s.chargeID,
		"capture_method":       "automatic",
		"payment_method_types": []string{"card"},
		"livemode":             false,
		"created":              s.created,
	}
}

// --- Refunds ---

func (f *StripeFake) createRefund(params url.Values, idemKey string) fakeAnswer {
	var s *fakeSession
	switch {
	case params.Get("payment_intent") != "":
		pi := params.Get("payment_intent")
		id, ok := f.byPI[pi]
		if !ok {
			return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "resource_missing", "payment_intent",
				"No such payment_intent: '"+pi+"'")
		}
		s = f.sessions[id]
	case params.Get("charge") != "":
		ch := params.Get("charge")
		id, ok := f.byCharge[ch]
		if !ok {
			return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "resource_missing", "charge",
				"No such charge: '"+ch+"'")
		}
		s = f.sessions[id]
	default:
		return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "",
			"One of the following params should be provided for this request: payment_intent or charge.")
	}
	if s.piStatus != "succeeded" {
		return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "", "payment_intent",
			"This PaymentIntent ("+s.PaymentIntent+") does not have a successful charge to refund.")
	}
	if f.openDispute(s.PaymentIntent) != nil {
		return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "charge_disputed", "charge",
			"Charge "+s.chargeID+" has been charged back; cannot issue a refund.")
	}

	remaining := s.AmountTotal - s.refunded
	if remaining <= 0 {
		return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "charge_already_refunded", "",
			"Charge "+s.chargeID+" has already been refunded.")
	}
	amount := remaining
	if params.Has("amount") {
		v, a, ok := intParam(params, "amount", false)
		if !ok {
			return a
		}
		if v < 1 {
			return invalidParam("amount", "This value must be greater than or equal to 1.")
		}
		if v > remaining {
			return stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "amount_too_large", "amount",
				fmt.Sprintf("Refund amount (%d %s) is greater than unrefunded amount on charge (%d %s)",
					v, s.Currency, remaining, s.Currency))
		}
		amount = v
	}
	// Stripe counts a pending refund in the charge's amount_refunded too.
	s.refunded += amount

	ref := FakeRefund{
		ID:             RandomID("re_fake_"),
		PaymentIntent:  s.PaymentIntent,
		IdempotencyKey: idemKey,
		Amount:         amount,
		Metadata:       mapParam(params, "metadata"),
		Status:         "succeeded",
		Created:        time.Now().Unix(),
	}
	if f.opts.PendingRefunds {
		ref.Status = "pending"
	}
	f.refunds = append(f.refunds, ref)
	obj := f.refundObject(&f.refunds[len(f.refunds)-1], params.Get("reason"))
	f.emit("charge.refunded", f.chargeObject(s), nil)
	f.emit("refund.created", obj, nil)
	return jsonAnswer(http.StatusOK, obj)
}

// --- Events ---

// listEvents pages through the added events newest first, as Stripe does,
// with the filters stripe-go's EventListParams sends.
func (f *StripeFake) listEvents(params url.Values) fakeAnswer {
	limit := int64(10)
	if params.Has("limit") {
		v, a, ok := intParam(params, "limit", false)
		if !ok {
			return a
		}
		if v < 1 || v > 100 {
			return invalidParam("limit", "This value must be between 1 and 100.")
		}
		limit = v
	}
	types := listParam(params, "types")
	if t := params.Get("type"); t != "" {
		if len(types) > 0 {
			return invalidParam("types", "You may pass either `type` or `types`, but not both.")
		}
		types = []string{t}
	}
	var typeRes []*regexp.Regexp
	for _, t := range types {
		// "*" is Stripe's wildcard, e.g. "checkout.session.*".
		typeRes = append(typeRes, regexp.MustCompile("^"+strings.ReplaceAll(regexp.QuoteMeta(t), `\*`, ".*")+"$"))
	}
	created := map[string]int64{}
	if params.Has("created") {
		v, a, ok := intParam(params, "created", false)
		if !ok {
			return a
		}
		created["eq"] = v
	}
	for _, op := range []string{"gt", "gte", "lt", "lte"} {
		name := "created[" + op + "]"
		if params.Has(name) {
			v, a, ok := intParam(params, name, false)
			if !ok {
				return a
			}
			created[op] = v
		}
	}
	matches := func(e fakeEvent) bool {
		for op, v := range created {
			if (op == "eq" && e.created != v) || (op == "gt" && e.created <= v) || (op == "gte" && e.created < v) ||
				(op == "lt" && e.created >= v) || (op == "lte" && e.created > v) {
				return false
			}
		}
		if len(typeRes) == 0 {
			return true
		}
		for _, re := range typeRes {
			if re.MatchString(e.typ) {
				return true
			}
		}
		return false
	}

	// Newest first; of events created in the same second, the one added
	// last comes first.
	all := slices.Clone(f.events)
	slices.Reverse(all)
	sort.SliceStable(all, func(i, j int) bool { return all[i].created > all[j].created })
	index := func(param string) (int, fakeAnswer, bool) {
		id := params.Get(param)
		for i, e := range all {
			if e.id == id {
				return i, fakeAnswer{}, true
			}
		}
		return 0, stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "resource_missing", param,
			"No such event: '"+id+"'"), false
	}

	var candidates []fakeEvent // in list order, from the cursor on
	backwards := false
	switch {
	case params.Get("starting_after") != "":
		i, a, ok := index("starting_after")
		if !ok {
			return a
		}
		candidates = all[i+1:]
	case params.Get("ending_before") != "":
		i, a, ok := index("ending_before")
		if !ok {
			return a
		}
		candidates = slices.Clone(all[:i])
		slices.Reverse(candidates)
		backwards = true
	default:
		candidates = all
	}
	page := []json.RawMessage{}
	hasMore := false
	var picked []fakeEvent
	for _, e := range candidates {
		if !matches(e) {
			continue
		}
		if int64(len(picked)) == limit {
			hasMore = true
			break
		}
		picked = append(picked, e)
	}
	if backwards {
		slices.Reverse(picked)
	}
	for _, e := range picked {
		page = append(page, e.raw)
	}
	return jsonAnswer(http.StatusOK, map[string]any{
		"object":   "list",
		"data":     page,
		"has_more": hasMore,
		"url":      "/v1/events",
	})
}

func (f *StripeFake) retrieveEvent(id string) fakeAnswer {
	for _, e := range f.events {
		if e.id == id {
			return fakeAnswer{status: http.StatusOK, body: e.raw}
		}
	}
	return noSuch("event", id)
}

// --- helpers ---

func jsonAnswer(status int, v any) fakeAnswer {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Stripe leaves & < > in URLs as they are
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return stripeErrorAnswer(http.StatusInternalServerError, "api_error", "", "", "StripeFake: encode: "+err.Error())
	}
	return fakeAnswer{status: status, body: buf.Bytes()}
}

func stripeErrorAnswer(status int, typ, code, param, message string) fakeAnswer {
	e := map[string]any{"type": typ, "message": message}
	if code != "" {
		e["code"] = code
		e["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
	}
	if param != "" {
		e["param"] = param
	}
	b, _ := json.Marshal(map[string]any{"error": e}) // strings only: cannot fail
	return fakeAnswer{status: status, body: b}
}

func missingParam(name string) fakeAnswer {
	a := stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "parameter_missing", name,
		"Missing required param: "+name+".")
	a.validation = true
	return a
}

func invalidParam(name, message string) fakeAnswer {
	a := stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "", name, message)
	a.validation = true
	return a
}

func noSuch(object, id string) fakeAnswer {
	return stripeErrorAnswer(http.StatusNotFound, "invalid_request_error", "resource_missing", "id",
		"No such "+object+": '"+id+"'")
}

// intParam parses an integer parameter; a missing one is an error only when
// required.
func intParam(params url.Values, name string, required bool) (int64, fakeAnswer, bool) {
	if !params.Has(name) {
		if required {
			return 0, missingParam(name), false
		}
		return 0, fakeAnswer{}, true
	}
	v, err := strconv.ParseInt(params.Get(name), 10, 64)
	if err != nil {
		a := stripeErrorAnswer(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", name,
			"Invalid integer: "+params.Get(name))
		a.validation = true
		return 0, a, false
	}
	return v, fakeAnswer{}, true
}

func hasPrefixedParam(params url.Values, prefix string) bool {
	for k := range params {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// mapParam collects name[key]=value parameters, as stripe-go encodes a
// map[string]string (metadata).
func mapParam(params url.Values, name string) map[string]string {
	m := map[string]string{}
	for k, v := range params {
		rest, ok := strings.CutPrefix(k, name+"[")
		if !ok || !strings.HasSuffix(rest, "]") || strings.Contains(rest, "[") {
			continue
		}
		m[strings.TrimSuffix(rest, "]")] = v[0]
	}
	return m
}

// listParam collects an array parameter in any of the forms clients send:
// name[0]=…&name[1]=… (stripe-go), name[]=… or a repeated name=….
func listParam(params url.Values, name string) []string {
	out := slices.Clone(params[name])
	out = append(out, params[name+"[]"]...)
	var indexed []int
	for k := range params {
		rest, ok := strings.CutPrefix(k, name+"[")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil && strings.HasSuffix(rest, "]") {
			indexed = append(indexed, i)
		}
	}
	slices.Sort(indexed)
	for _, i := range indexed {
		out = append(out, params.Get(name+"["+strconv.Itoa(i)+"]"))
	}
	return out
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
