package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// This file is the part of StripeFake that makes it a simulator of Stripe's
// real behaviour rather than a kind stand-in: the options that turn that
// behaviour on, injected faults, emitted events, refunds that fail later,
// disputes, Payment Link sessions, and the fake's own record of money.

// FakeOptions are the behaviours of Stripe that the kind default leaves out.
type FakeOptions struct {
	// StoreEveryAnswer stores every answer of a request that began
	// executing under its idempotency key for 24 hours, 5xx included, as
	// Stripe does; the default stores successes only.
	StoreEveryAnswer bool
	// CheckExpiresAt refuses a Checkout Session whose expires_at is less
	// than 30 minutes or more than 24 hours after the fake receives the
	// request, with Stripe's 400.
	CheckExpiresAt bool
	// EmitEvents emits the events Stripe sends for each change (sessions
	// completing and expiring, payments settling, refunds created and
	// failing, disputes), listed by the Events API and delivered by
	// DeliverEvents.
	EmitEvents bool
	// PendingRefunds creates refunds pending rather than succeeded, as
	// some payment methods do.
	PendingRefunds bool
	// FaultSeed seeds the choice of probabilistic faults (Fault.Probability).
	FaultSeed uint64
}

// FakeOption sets a FakeOptions field.
type FakeOption func(*FakeOptions)

// StoreEveryAnswer: see FakeOptions.StoreEveryAnswer.
func StoreEveryAnswer() FakeOption { return func(o *FakeOptions) { o.StoreEveryAnswer = true } }

// CheckExpiresAt: see FakeOptions.CheckExpiresAt.
func CheckExpiresAt() FakeOption { return func(o *FakeOptions) { o.CheckExpiresAt = true } }

// EmitEvents: see FakeOptions.EmitEvents.
func EmitEvents() FakeOption { return func(o *FakeOptions) { o.EmitEvents = true } }

// PendingRefunds: see FakeOptions.PendingRefunds.
func PendingRefunds() FakeOption { return func(o *FakeOptions) { o.PendingRefunds = true } }

// FaultSeed: see FakeOptions.FaultSeed.
func FaultSeed(seed uint64) FakeOption { return func(o *FakeOptions) { o.FaultSeed = seed } }

// Faithful is every behaviour of Stripe the fake models: StoreEveryAnswer,
// CheckExpiresAt and EmitEvents.
func Faithful() FakeOption {
	return func(o *FakeOptions) { o.StoreEveryAnswer, o.CheckExpiresAt, o.EmitEvents = true, true, true }
}

// Lenient turns off what Faithful turns on: a stand-in kinder than Stripe
// (only successes stored under a key, any expires_at, no events of its
// own). The fake is faithful by default; only the tests of these switches
// themselves, and STRIPEFAKE_FAITHFUL_DEFAULT=0, ask for this.
func Lenient() FakeOption {
	return func(o *FakeOptions) { o.StoreEveryAnswer, o.CheckExpiresAt, o.EmitEvents = false, false, false }
}

// --- Faults ---

// FaultKind is how an injected fault breaks a request.
type FaultKind int

const (
	// FaultError answers Status (default 500) before the request takes
	// effect; with StoreEveryAnswer the answer is stored under its key.
	FaultError FaultKind = iota
	// FaultErrorAfter lets the request take effect, then answers Status
	// (default 500): the outcome is unknown to the caller, and with
	// StoreEveryAnswer the 500 is what its key replays.
	FaultErrorAfter
	// FaultTimeout lets the request take effect, then holds the answer for
	// Delay (default 2 s) and closes the connection without one, as a
	// client timing out sees it.
	FaultTimeout
	// FaultCut lets the request take effect, then closes the connection
	// at once without an answer.
	FaultCut
)

func (k FaultKind) String() string {
	return [...]string{"error", "error_after", "timeout", "cut"}[k]
}

// Fault is a failure to inject into matching requests.
type Fault struct {
	Kind FaultKind
	// Method ("" for any) and Path, a prefix of the request path ("" for
	// any), choose the requests.
	Method, Path string
	// Times is how many matching requests fail; 0 means every one until
	// the fault is removed.
	Times int
	// Probability, when above 0, makes each matching request fail with
	// that chance, drawn from the fake's seeded generator (FaultSeed).
	Probability float64
	// Status of FaultError and FaultErrorAfter; default 500.
	Status int
	// Delay of FaultTimeout; default 2 s.
	Delay time.Duration
}

type faultState struct {
	Fault
	left int
}

func (f *faultState) delay() time.Duration {
	if f.Delay > 0 {
		return f.Delay
	}
	return 2 * time.Second
}

func (f *faultState) errorAnswer() fakeAnswer {
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	return stripeErrorAnswer(status, "api_error", "", "",
		"An unknown error occurred (injected by StripeFake: "+f.Kind.String()+").")
}

// Inject adds a fault; the returned function removes it.
func (f *StripeFake) Inject(fault Fault) (remove func()) {
	st := &faultState{Fault: fault, left: fault.Times}
	f.mu.Lock()
	f.faults = append(f.faults, st)
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.faults = slices.DeleteFunc(f.faults, func(x *faultState) bool { return x == st })
	}
}

// InjectedFaults counts the faults that have broken a request, by kind.
func (f *StripeFake) InjectedFaults() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.injected())
}

func (f *StripeFake) injected() map[string]int {
	if f.faultCounts == nil {
		f.faultCounts = map[string]int{}
	}
	return f.faultCounts
}

// pickFault returns the fault that breaks this request, if any.
func (f *StripeFake) pickFault(method, path string) *faultState {
	for i, st := range f.faults {
		if (st.Method != "" && st.Method != method) || !strings.HasPrefix(path, st.Path) {
			continue
		}
		if st.Probability > 0 && f.faultRNG.Float64() >= st.Probability {
			continue
		}
		if st.Times > 0 {
			st.left--
			if st.left <= 0 {
				f.faults = slices.Delete(f.faults, i, i+1)
			}
		}
		f.injected()[st.Kind.String()]++
		return st
	}
	return nil
}

// AgeIdempotencyKeys makes every stored answer age older, so a test can see
// a key forgotten after Stripe's 24 hours.
func (f *StripeFake) AgeIdempotencyKeys(age time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, r := range f.idempotency {
		r.at = r.at.Add(-age)
		f.idempotency[k] = r
	}
}

// --- Events ---

type outboxEvent struct {
	id  string
	typ string
	raw []byte
}

// emit records an event as Stripe creates one: listed by the Events API and
// queued for delivery. Without EmitEvents it does nothing.
func (f *StripeFake) emit(typ string, obj map[string]any, previous map[string]any) {
	if !f.opts.EmitEvents {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(f.eventBase()))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		f.t.Errorf("testkit: StripeFake: event fixture: %v", err)
		return
	}
	id := RandomID("evt_fake_")
	now := time.Now().Unix()
	data := map[string]any{"object": obj}
	if previous != nil {
		data["previous_attributes"] = previous
	}
	maps.Copy(ev, map[string]any{
		"id": id, "object": "event", "type": typ, "api_version": stripe.APIVersion, "created": now,
		"livemode": false, "data": data, "pending_webhooks": 1,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
	})
	raw, err := json.Marshal(ev)
	if err != nil {
		f.t.Errorf("testkit: StripeFake: encode event %s: %v", typ, err)
		return
	}
	f.events = append(f.events, fakeEvent{id: id, typ: typ, created: now, raw: raw})
	f.outbox = append(f.outbox, &outboxEvent{id: id, typ: typ, raw: raw})
}

func (f *StripeFake) eventBase() []byte {
	if f.eventFixture == nil {
		b, err := fixtures.ReadFile("testdata/event.json")
		if err != nil {
			f.t.Fatalf("testkit: %v", err)
		}
		f.eventFixture = b
	}
	return f.eventFixture
}

func (f *StripeFake) emitSession(s *fakeSession, typ string) {
	if !f.opts.EmitEvents {
		return
	}
	a := f.sessionAnswer(s, url.Values{})
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		f.t.Errorf("testkit: StripeFake: session %s: %v", s.ID, err)
		return
	}
	f.emit(typ, obj, nil)
}

// EmittedEvent is an event the fake emitted.
type EmittedEvent struct {
	ID, Type string
	JSON     []byte
}

// Emitted returns every event the fake has emitted or been given, oldest
// first.
func (f *StripeFake) Emitted() []EmittedEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]EmittedEvent, len(f.events))
	for i, e := range f.events {
		out[i] = EmittedEvent{ID: e.id, Type: e.typ, JSON: e.raw}
	}
	return out
}

// --- Objects ---

func (f *StripeFake) chargeObject(s *fakeSession) map[string]any {
	obj := fixture(f.t, "charge")
	var refunds []any
	for i := range f.refunds {
		if f.refunds[i].PaymentIntent == s.PaymentIntent {
			refunds = append(refunds, f.refundObject(&f.refunds[i], ""))
		}
	}
	if refunds == nil {
		refunds = []any{}
	}
	received := int64(0)
	if s.piStatus == "succeeded" {
		received = s.AmountTotal
	}
	maps.Copy(obj, map[string]any{
		"id": s.chargeID, "object": "charge", "amount": s.AmountTotal, "amount_captured": received,
		"amount_refunded": s.refunded, "refunded": s.refunded >= s.AmountTotal && s.AmountTotal > 0,
		"currency": s.Currency, "payment_intent": s.PaymentIntent, "paid": s.piStatus == "succeeded",
		"captured": s.piStatus == "succeeded", "status": chargeStatus(s.piStatus),
		"disputed": f.chargeDispute(s.PaymentIntent) != nil, "livemode": false, "created": s.created,
		"metadata": nonNilMap(s.piMetadata),
		"refunds": map[string]any{
			"object": "list", "data": refunds, "has_more": false, "total_count": len(refunds),
			"url": "/v1/charges/" + s.chargeID + "/refunds",
		},
	})
	return obj
}

func chargeStatus(piStatus string) string {
	switch piStatus {
	case "succeeded":
		return "succeeded"
	case "processing":
		return "pending"
	}
	return "failed"
}

func (f *StripeFake) refundObject(r *FakeRefund, reason string) map[string]any {
	obj := fixture(f.t, "refund")
	s := f.sessions[f.byPI[r.PaymentIntent]]
	maps.Copy(obj, map[string]any{
		"id": r.ID, "object": "refund", "amount": r.Amount, "charge": s.chargeID, "created": r.Created,
		"currency": s.Currency, "metadata": nonNilMap(r.Metadata), "payment_intent": r.PaymentIntent,
		"reason": nullIfEmpty(reason), "status": r.Status, "balance_transaction": "txn_fake_" + strings.TrimPrefix(r.ID, "re_fake_"),
	})
	if r.FailureReason != "" {
		obj["failure_reason"] = r.FailureReason
		obj["failure_balance_transaction"] = "txn_fake_f" + strings.TrimPrefix(r.ID, "re_fake_")
	}
	return obj
}

func (f *StripeFake) listRefunds(params url.Values) fakeAnswer {
	pi := params.Get("payment_intent")
	data := []any{}
	// Newest first, as Stripe lists.
	for i := len(f.refunds) - 1; i >= 0; i-- {
		if pi == "" || f.refunds[i].PaymentIntent == pi {
			data = append(data, f.refundObject(&f.refunds[i], ""))
		}
	}
	return jsonAnswer(http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": false, "url": "/v1/refunds"})
}

func (f *StripeFake) retrieveRefund(id string) fakeAnswer {
	for i := range f.refunds {
		if f.refunds[i].ID == id {
			return jsonAnswer(http.StatusOK, f.refundObject(&f.refunds[i], ""))
		}
	}
	return noSuch("refund", id)
}

func (f *StripeFake) retrievePaymentIntent(id string) fakeAnswer {
	sid, ok := f.byPI[id]
	if !ok {
		return noSuch("payment_intent", id)
	}
	return jsonAnswer(http.StatusOK, f.sessions[sid].paymentIntentObject())
}

// --- Refunds that fail later ---

// SetRefundStatus moves a refund on as Stripe does after creating it:
// pending → succeeded, failed or canceled; succeeded → failed (the
// customer's bank returned it). A refund that fails or is cancelled gives
// the money back to the merchant and emits refund.updated,
// charge.refund.updated and, when failed, refund.failed. A misuse fails
// the test.
func (f *StripeFake) SetRefundStatus(refundID, status string) {
	f.t.Helper()
	if err := f.TrySetRefundStatus(refundID, status); err != nil {
		f.t.Error(err)
	}
}

// TrySetRefundStatus is SetRefundStatus that returns its misuse as an error instead of failing
// the test, for callers racing the system under test.
func (f *StripeFake) TrySetRefundStatus(refundID, status string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.refunds, func(r FakeRefund) bool { return r.ID == refundID })
	if i < 0 {
		return fmt.Errorf("testkit: StripeFake.SetRefundStatus: no refund %s", refundID)
	}
	r := &f.refunds[i]
	allowed := map[string][]string{
		"pending":   {"succeeded", "failed", "canceled"},
		"succeeded": {"failed"},
	}[r.Status]
	if !slices.Contains(allowed, status) {
		return fmt.Errorf("testkit: StripeFake.SetRefundStatus: a %s refund cannot become %s", r.Status, status)
	}
	was := r.Status
	r.Status = status
	if status == "failed" || status == "canceled" {
		s := f.sessions[f.byPI[r.PaymentIntent]]
		s.refunded -= r.Amount
		if status == "failed" {
			r.FailureReason = "lost_or_stolen_card"
		}
	}
	obj := f.refundObject(r, "")
	prev := map[string]any{"status": was}
	f.emit("refund.updated", obj, prev)
	f.emit("charge.refund.updated", obj, prev)
	if status == "failed" {
		f.emit("refund.failed", obj, prev)
	}
	return nil
}

// --- Disputes ---

type fakeDispute struct {
	id, paymentIntent, reason, status string
	amount                            int64
	withdrawn                         bool
	created                           int64
}

// FakeDispute is a dispute as the fake holds it.
type FakeDispute struct {
	ID, PaymentIntent, Status string
	Amount                    int64
}

func (f *StripeFake) openDispute(pi string) *fakeDispute {
	for _, d := range f.disputes {
		if d.paymentIntent == pi && d.status != "won" && d.status != "lost" {
			return d
		}
	}
	return nil
}

// chargeDispute is the dispute of a payment intent's charge, open or
// closed, nil if it was never disputed.
func (f *StripeFake) chargeDispute(pi string) *fakeDispute {
	for _, d := range f.disputes {
		if d.paymentIntent == pi {
			return d
		}
	}
	return nil
}

func (f *StripeFake) disputeObject(d *fakeDispute) map[string]any {
	obj := fixture(f.t, "dispute")
	s := f.sessions[f.byPI[d.paymentIntent]]
	var txns []any
	if d.withdrawn {
		txns = append(txns, map[string]any{"id": "txn_fake_dw" + d.id, "object": "balance_transaction", "amount": -d.amount, "type": "adjustment"})
	}
	if d.status == "won" {
		txns = append(txns, map[string]any{"id": "txn_fake_dr" + d.id, "object": "balance_transaction", "amount": d.amount, "type": "adjustment"})
	}
	if txns == nil {
		txns = []any{}
	}
	maps.Copy(obj, map[string]any{
		"id": d.id, "object": "dispute", "amount": d.amount, "charge": s.chargeID, "currency": s.Currency,
		"payment_intent": d.paymentIntent, "reason": d.reason, "status": d.status, "created": d.created,
		"livemode": false, "balance_transactions": txns, "is_charge_refundable": false,
	})
	return obj
}

// OpenDispute has the customer's bank dispute a paid session's payment:
// status needs_response, the amount withdrawn from the merchant at once
// (charge.dispute.created, then charge.dispute.funds_withdrawn). It returns
// the dispute id. A misuse fails the test.
func (f *StripeFake) OpenDispute(sessionID, reason string) string {
	f.t.Helper()
	id, err := f.TryOpenDispute(sessionID, reason)
	if err != nil {
		f.t.Error(err)
	}
	return id
}

// TryOpenDispute is OpenDispute that returns its misuse as an error instead of failing
// the test, for callers racing the system under test.
func (f *StripeFake) TryOpenDispute(sessionID, reason string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[sessionID]
	if !ok || s.piStatus != "succeeded" {
		return "", fmt.Errorf("testkit: StripeFake.OpenDispute: session %s has no succeeded payment", sessionID)
	}
	// A charge has at most one dispute (the charge's dispute field names
	// it; won and lost are final, "closing a dispute is irreversible"):
	// Stripe never opens a second one, whatever the first one's status.
	// An inquiry that escalates is the same dispute object moving on,
	// which the simulator does not model.
	if f.chargeDispute(s.PaymentIntent) != nil {
		return "", fmt.Errorf("testkit: StripeFake.OpenDispute: the payment of %s is disputed already", sessionID)
	}
	d := &fakeDispute{
		id: RandomID("dp_fake_"), paymentIntent: s.PaymentIntent, reason: reason, status: "needs_response",
		amount: s.AmountTotal - s.refunded, created: time.Now().Unix(),
	}
	f.disputes[d.id] = d
	f.emit("charge.dispute.created", f.disputeObject(d), nil)
	d.withdrawn = true
	f.emit("charge.dispute.funds_withdrawn", f.disputeObject(d), nil)
	return d.id, nil
}

// UpdateDispute moves an open dispute to another open status (e.g.
// under_review, once evidence is submitted): charge.dispute.updated.
func (f *StripeFake) UpdateDispute(disputeID, status string) {
	f.t.Helper()
	if err := f.TryUpdateDispute(disputeID, status); err != nil {
		f.t.Error(err)
	}
}

// TryUpdateDispute is UpdateDispute returning a misuse as an error.
func (f *StripeFake) TryUpdateDispute(disputeID, status string) error {
	return f.moveDispute("UpdateDispute", disputeID, status, "charge.dispute.updated")
}

// CloseDispute ends a dispute won (funds reinstated:
// charge.dispute.closed then charge.dispute.funds_reinstated) or lost
// (charge.dispute.closed; the money stays with the customer).
func (f *StripeFake) CloseDispute(disputeID string, won bool) {
	f.t.Helper()
	if err := f.TryCloseDispute(disputeID, won); err != nil {
		f.t.Error(err)
	}
}

// TryCloseDispute is CloseDispute returning a misuse as an error.
func (f *StripeFake) TryCloseDispute(disputeID string, won bool) error {
	if !won {
		return f.moveDispute("CloseDispute", disputeID, "lost", "charge.dispute.closed")
	}
	return f.moveDispute("CloseDispute", disputeID, "won", "charge.dispute.closed", "charge.dispute.funds_reinstated")
}

// moveDispute gives an open dispute its next status and emits events.
func (f *StripeFake) moveDispute(caller, disputeID, status string, events ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.disputes[disputeID]
	if !ok || d.status == "won" || d.status == "lost" {
		return fmt.Errorf("testkit: StripeFake.%s: no open dispute %s", caller, disputeID)
	}
	prev := map[string]any{"status": d.status}
	d.status = status
	for _, typ := range events {
		if typ != "charge.dispute.closed" && typ != "charge.dispute.updated" {
			prev = nil
		}
		f.emit(typ, f.disputeObject(d), prev)
	}
	return nil
}

// ClearFaults removes every injected fault, and the queued FailNext
// failures.
func (f *StripeFake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults, f.failures = nil, nil
}

// Disputes returns every dispute.
func (f *StripeFake) Disputes() []FakeDispute {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FakeDispute
	for _, d := range f.disputes {
		out = append(out, FakeDispute{ID: d.id, PaymentIntent: d.paymentIntent, Status: d.status, Amount: d.amount})
	}
	slices.SortFunc(out, func(a, b FakeDispute) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// --- Sessions slotpay never created ---

// PayThroughPaymentLink is a customer paying through a Payment Link on the
// same Stripe account: a session slotpay never created, complete and paid,
// whose client_reference_id is whatever the customer put in the link's URL
// and which has no metadata.booking_id (checkout.session.completed). It
// returns the session.
func (f *StripeFake) PayThroughPaymentLink(clientReferenceID string, amount int64, currency string) FakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := RandomID("cs_test_fake_pl")
	s := &fakeSession{
		FakeSession: FakeSession{
			ID: id, Status: "complete", PaymentStatus: "paid", ClientReferenceID: clientReferenceID,
			Currency: currency, URL: "https://buy.stripe.com/test_" + RandomID(""), AmountTotal: amount,
			ExpiresAt: time.Now().Add(24 * time.Hour).Unix(), Metadata: map[string]string{},
		},
		created: time.Now().Unix(), mode: "payment", customerEmail: "someone@example.com",
		successURL: "https://example.com/thanks", piStatus: "succeeded",
		paymentLink: RandomID("plink_fake_"),
	}
	f.sessions[id] = s
	f.order = append(f.order, id)
	f.ensurePaymentIntent(s)
	f.emitSession(s, "checkout.session.completed")
	return s.snapshot()
}

// ExpireNow expires an open session as Stripe does when its expires_at
// passes (checkout.session.expired). A misuse fails the test.
func (f *StripeFake) ExpireNow(sessionID string) {
	f.t.Helper()
	if err := f.TryExpireNow(sessionID); err != nil {
		f.t.Error(err)
	}
}

// TryExpireNow is ExpireNow that returns its misuse as an error instead of failing
// the test, for callers racing the system under test.
func (f *StripeFake) TryExpireNow(sessionID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[sessionID]
	if !ok || s.Status != "open" {
		return fmt.Errorf("testkit: StripeFake.ExpireNow: no open session %s", sessionID)
	}
	s.Status = "expired"
	f.emitSession(s, "checkout.session.expired")
	return nil
}

// --- Money ---

// FakePayment is the fake's own record of the money of one session: what
// was charged and what left the merchant again. It is the ground truth a
// test compares slotpay's ledger with.
type FakePayment struct {
	SessionID, PaymentIntent string
	// BookingID is the session's metadata.booking_id (set only by
	// sessions slotpay created); ClientReferenceID is what the session
	// carries, which a Payment Link's customer chooses.
	BookingID, ClientReferenceID string
	PaymentLink                  bool
	Currency                     string
	// Charged is the amount of a succeeded payment.
	Charged int64
	// Refunded counts succeeded refunds only; RefundPending those still
	// pending; a failed or cancelled refund counts in neither.
	Refunded, RefundPending int64
	// Disputed is the amount withdrawn by a dispute not yet closed; Lost
	// that of disputes closed lost.
	Disputed, Lost int64
	// DisputeStatus is the status of the latest dispute, "" if none.
	DisputeStatus string
}

// Kept is what the merchant keeps of the payment.
func (p FakePayment) Kept() int64 {
	return p.Charged - p.Refunded - p.RefundPending - p.Disputed - p.Lost
}

// Payments returns the money record of every session, in creation order.
func (f *StripeFake) Payments() []FakePayment {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FakePayment, 0, len(f.order))
	for _, id := range f.order {
		s := f.sessions[id]
		p := FakePayment{
			SessionID: s.ID, PaymentIntent: s.PaymentIntent, BookingID: s.Metadata["booking_id"],
			ClientReferenceID: s.ClientReferenceID, PaymentLink: s.paymentLink != "", Currency: s.Currency,
		}
		if s.piStatus == "succeeded" {
			p.Charged = s.AmountTotal
		}
		for _, r := range f.refunds {
			if r.PaymentIntent != s.PaymentIntent || s.PaymentIntent == "" {
				continue
			}
			switch r.Status {
			case "succeeded":
				p.Refunded += r.Amount
			case "pending":
				p.RefundPending += r.Amount
			}
		}
		var latest *fakeDispute
		for _, d := range f.disputes {
			if d.paymentIntent != s.PaymentIntent || s.PaymentIntent == "" {
				continue
			}
			switch d.status {
			case "lost":
				p.Lost += d.amount
			case "won":
			default:
				p.Disputed += d.amount
			}
			if latest == nil || d.created > latest.created || (d.created == latest.created && d.id > latest.id) {
				latest = d
			}
		}
		if latest != nil {
			p.DisputeStatus = latest.status
		}
		out = append(out, p)
	}
	return out
}

// String shows a payment in one line, for failure messages.
func (p FakePayment) String() string {
	return fmt.Sprintf("session %s (booking %q, client_reference_id %q, payment link %t): charged %d, refunded %d, refund pending %d, disputed %d, lost %d %s",
		p.SessionID, p.BookingID, p.ClientReferenceID, p.PaymentLink, p.Charged, p.Refunded, p.RefundPending, p.Disputed, p.Lost, p.Currency)
}
