package modelcheck_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"

	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/testkit"
)

type opKind string

const (
	opBook           opKind = "book"
	opCheckout       opKind = "checkout"
	opPay            opKind = "pay"
	opPayAsync       opKind = "pay_async"
	opSettle         opKind = "settle_async"
	opLetExpire      opKind = "let_expire"
	opLapse          opKind = "lapse_hold"
	opCancel         opKind = "cancel"
	opOperatorCancel opKind = "operator_cancel"
	opOperatorRefund opKind = "operator_refund"
	opDashRefund     opKind = "dashboard_refund"
	opPayRefundBurst opKind = "pay_refund_burst"
	opRefundFails    opKind = "refund_fails"
	opRetryAfter5xx  opKind = "retry_after_5xx"
	opDispute        opKind = "dispute_open"
	opDisputeUpdate  opKind = "dispute_update"
	opDisputeClose   opKind = "dispute_close"
	opPaymentLink    opKind = "payment_link"
	opDeliver        opKind = "deliver"
	opBurst          opKind = "deliver_burst"
	opReconcile      opKind = "reconcile"
	opReplay         opKind = "replay"
	opStripeFault    opKind = "stripe_fault"
	opKillBackend    opKind = "pg_kill"
	opRestart        opKind = "server_restart"
)

// weights of each kind in a plan; a kind whose defect scenario is off is
// left out.
var weights = []struct {
	kind   opKind
	weight int
	gate   defect
}{
	{opBook, 14, ""}, {opCheckout, 12, ""}, {opPay, 10, ""}, {opPayAsync, 3, ""}, {opSettle, 3, ""},
	{opLetExpire, 3, ""}, {opLapse, 2, ""}, {opCancel, 3, ""}, {opOperatorCancel, 2, ""},
	{opOperatorRefund, 5, ""}, {opDashRefund, 2, ""}, {opPayRefundBurst, 3, defectRace}, {opRefundFails, 3, defectRefundFailure}, {opRetryAfter5xx, 3, defectIdempotent5xx}, {opDispute, 2, ""},
	{opDisputeUpdate, 1, ""}, {opDisputeClose, 2, ""}, {opPaymentLink, 2, defectProvenance},
	{opDeliver, 10, ""}, {opBurst, 3, ""}, {opReconcile, 4, ""}, {opReplay, 2, ""},
	{opStripeFault, 4, ""}, {opKillBackend, 2, ""}, {opRestart, 1, ""},
}

// feeders are the kinds that feed Stripe's facts to slotpay: webhooks, the
// reconciler, replay, and the API calls that read a session back and apply
// it (cancel, and a new hold closing lapsed sessions in its way). Without
// the race scenario a step has at most one of them, and deliveries go one
// by one: the race of issue 10 §1 needs two at once.
var feeders = map[opKind]bool{
	opDeliver: true, opBurst: true, opReconcile: true, opReplay: true, opPayRefundBurst: true,
	opCancel: true, opOperatorCancel: true, opBook: true, opRestart: true,
}

type op struct {
	Kind opKind
	A, B int
}

func (o op) String() string { return fmt.Sprintf("%s(%d,%d)", o.Kind, o.A, o.B) }

// makePlan draws a seed's plan: steps of one to three operations each, run
// concurrently. It depends on the seed alone, so a prefix of a plan is the
// plan of fewer steps, which is what shrinking relies on.
func makePlan(cfg config) [][]op {
	rng := newRand(cfg.seed, 1)
	total := 0
	for _, w := range weights {
		total += w.weight
	}
	var plan [][]op
	for range cfg.steps {
		n := 1 + rng.IntN(3)
		var st []op
		feeding := false
		for range n {
			o := op{A: rng.IntN(1 << 16), B: rng.IntN(1 << 16)}
			r := rng.IntN(total)
			for _, w := range weights {
				if r < w.weight {
					o.Kind = w.kind
					if w.gate != "" && !cfg.defects[w.gate] {
						o.Kind = opDeliver // keep the plan's shape whatever the gates
					}
					break
				}
				r -= w.weight
			}
			if feeders[o.Kind] && !cfg.defects[defectRace] {
				if feeding {
					continue
				}
				feeding = true
			}
			st = append(st, o)
		}
		plan = append(plan, st)
	}
	return plan
}

// do runs one operation and says what it did.
func (w *world) do(ctx context.Context, o op) string {
	w.mu.Lock()
	w.cov.ops[string(o.Kind)]++
	w.mu.Unlock()
	out, effective := w.run(ctx, o)
	if effective {
		w.mu.Lock()
		w.cov.effective[string(o.Kind)]++
		w.mu.Unlock()
	}
	return out
}

func (w *world) run(ctx context.Context, o op) (string, bool) {
	_, processor, checkouts, reconciler := w.server()
	switch o.Kind {
	case opBook:
		res := w.resources[o.B%len(w.resources)]
		hour := 9 + (o.A/7)%11
		length := 1 + o.B%2
		start := testkit.TomorrowAt(hour)
		status, body := w.api(ctx, http.MethodPost, "/v1/bookings", map[string]any{
			"resource_id": res.ID, "starts_at": start, "ends_at": start.Add(time.Duration(length) * time.Hour),
			"customer": map[string]any{"email": fmt.Sprintf("customer%d@example.com", o.A%7), "name": "Customer"},
		})
		if status != http.StatusCreated {
			return fmt.Sprint(status), false
		}
		id, err := uuid.Parse(fmt.Sprint(body["id"]))
		if err != nil {
			return "201 without an id", false
		}
		amount, _ := body["amount_total"].(float64)
		w.mu.Lock()
		w.bookings = append(w.bookings, &tracked{id: id, amount: int64(amount)})
		n := len(w.bookings)
		w.mu.Unlock()
		return fmt.Sprintf("201 b%d %s", n-1, id), true

	case opCheckout:
		b := w.pick(o.A)
		if b == nil {
			return "no booking", false
		}
		faults := faultTotal(w.stripe.InjectedFaults())
		status, body := w.api(ctx, http.MethodPost, "/v1/bookings/"+b.id.String()+"/checkout", nil)
		if status == http.StatusBadGateway && faultTotal(w.stripe.InjectedFaults()) == faults {
			w.mu.Lock()
			w.checkoutsRefused++
			w.mu.Unlock()
		}
		if status != http.StatusOK {
			return fmt.Sprint(status), false
		}
		w.mu.Lock()
		b.session = fmt.Sprint(body["checkout_session_id"])
		w.mu.Unlock()
		return "200 " + b.session, true

	case opPay, opPayAsync:
		b := w.pickPaid(o.A)
		if b == nil || w.session(b) == "" {
			return "no session", false
		}
		ps := "paid"
		if o.Kind == opPayAsync {
			ps = "unpaid"
		}
		if err := w.stripe.TryComplete(w.session(b), ps); err != nil {
			return "not open", false
		}
		if o.Kind == opPayAsync {
			w.mu.Lock()
			b.async = true
			w.mu.Unlock()
		}
		return "paid " + ps, true

	case opSettle:
		b := w.pickPaid(o.A)
		if b == nil || w.session(b) == "" {
			return "no session", false
		}
		s := w.stripe.Session(w.session(b))
		w.mu.Lock()
		already := b.settled
		if s.Status == "complete" && s.PaymentStatus == "unpaid" && !already {
			b.settled = true
		}
		w.mu.Unlock()
		if s.Status != "complete" || s.PaymentStatus != "unpaid" || already {
			return "nothing settling", false
		}
		status := "succeeded"
		if o.B%3 == 0 {
			status = "requires_payment_method"
		}
		if err := w.stripe.TrySetPaymentIntentStatus(s.ID, status); err != nil {
			return err.Error(), false
		}
		return status, true

	case opLetExpire, opLapse:
		b := w.pick(o.A)
		if b == nil {
			return "no booking", false
		}
		// Time cannot pass in a test: the hold ends now, and (let_expire)
		// Stripe expires the session as it does at its expires_at.
		testkit.LapseHold(w.t, w.db, b.id)
		if o.Kind == opLetExpire && w.session(b) != "" {
			if err := w.stripe.TryExpireNow(w.session(b)); err != nil {
				return "hold lapsed; session not open", true
			}
			return "hold lapsed, session expired", true
		}
		return "hold lapsed", true

	case opCancel:
		b := w.pick(o.A)
		if b == nil {
			return "no booking", false
		}
		status, _ := w.api(ctx, http.MethodPost, "/v1/bookings/"+b.id.String()+"/cancel", nil)
		return fmt.Sprint(status), status == http.StatusOK

	case opOperatorCancel:
		b := w.pick(o.A)
		if b == nil {
			return "no booking", false
		}
		_, err := checkouts.CancelByOperator(ctx, b.id, audit.Operator(w.operator, "req_modelcheck"))
		return errText(err), err == nil

	case opOperatorRefund:
		b := w.pickPaid(o.A)
		if b == nil {
			return "no booking", false
		}
		_, err := processor.RefundByOperator(ctx, b.id, audit.Operator(w.operator, "req_modelcheck"))
		return errText(err), err == nil

	case opDashRefund:
		// The merchant refunds in Stripe's Dashboard: a refund slotpay
		// did not ask for, possibly before slotpay knows the payment.
		b := w.pickPaid(o.A)
		if b == nil {
			return "no session", false
		}
		pi := w.stripe.Session(w.session(b)).PaymentIntent
		if pi == "" {
			return "not paid", false
		}
		w.mu.Lock()
		async := b.async
		w.mu.Unlock()
		if async && !w.cfg.defects[defectRefundWhileProcessing] {
			return "paid asynchronously (refund-while-processing gated)", false
		}
		_, err := w.dashboard.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi)})
		return errText(err), err == nil

	case opPayRefundBurst:
		// Issue 10 §1 as it happens after an outage: the customer pays,
		// the merchant refunds at once, and Stripe's retries deliver the
		// completion and the refund at the same instant.
		b := w.pickPaid(o.A)
		if b == nil {
			return "no session", false
		}
		if err := w.stripe.TryComplete(w.session(b), "paid"); err != nil {
			return "not open", false
		}
		pi := w.stripe.Session(w.session(b)).PaymentIntent
		if _, err := w.dashboard.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi)}); err != nil {
			return "paid; refund: " + errText(err), true
		}
		rep := w.deliver(ctx, 0, 0.3, w.concurrency(8))
		return fmt.Sprintf("paid, refunded, burst of %d", rep.Sent), true

	case opRetryAfter5xx:
		// SPEC §2.2: after a Stripe 500 the outcome is unknown; once Stripe
		// answers again, slotpay's retry must get through (a new key after
		// reading the outcome back), not the stored 500 for 24 hours.
		b := w.pickPaid(o.A)
		if b == nil {
			return "no session", false
		}
		path := "/v1/refunds"
		retry := func() error {
			_, err := processor.RefundByOperator(ctx, b.id, audit.Operator(w.operator, "req_modelcheck"))
			return err
		}
		if o.B%2 == 1 {
			path = "/v1/checkout/sessions/" + w.session(b) + "/expire"
			retry = func() error {
				_, err := checkouts.CancelByOperator(ctx, b.id, audit.Operator(w.operator, "req_modelcheck"))
				return err
			}
		}
		remove := w.stripe.Inject(testkit.Fault{Kind: testkit.FaultError, Path: path, Times: 1})
		first := retry()
		remove()
		if first == nil || !strings.Contains(first.Error(), "500") {
			return "first: " + errText(first), first == nil
		}
		calls := w.stripe.Calls(http.MethodPost, path)
		second := retry()
		if second != nil && w.stripe.Calls(http.MethodPost, path) > calls && strings.Contains(second.Error(), "500") {
			w.mu.Lock()
			w.liveness = append(w.liveness, fmt.Sprintf("§2.2: booking %s: after one Stripe 500 on %s, the retry got a 500 again with Stripe healthy (the stored answer): %s", b.id, path, errText(second)))
			w.mu.Unlock()
		}
		return "first: 500; retry: " + errText(second), true

	case opRefundFails:
		b := w.pickPaid(o.A)
		if b == nil {
			return "no booking", false
		}
		pi := w.stripe.Session(w.session(b)).PaymentIntent
		for _, r := range w.stripe.Refunds() {
			if r.PaymentIntent == pi && pi != "" && r.Status == "succeeded" {
				if err := w.stripe.TrySetRefundStatus(r.ID, "failed"); err == nil {
					return "refund " + r.ID + " failed", true
				}
			}
		}
		return "no succeeded refund", false

	case opDispute:
		b := w.pickPaid(o.A)
		if b == nil || w.session(b) == "" {
			return "no session", false
		}
		id, err := w.stripe.TryOpenDispute(w.session(b), "fraudulent")
		if err != nil {
			return "not disputable", false
		}
		return id, true

	case opDisputeUpdate, opDisputeClose:
		b := w.pickPaid(o.A)
		if b == nil || w.session(b) == "" {
			return "no session", false
		}
		pi := w.stripe.Session(w.session(b)).PaymentIntent
		for _, d := range w.stripe.Disputes() {
			if d.PaymentIntent != pi || pi == "" || d.Status == "won" || d.Status == "lost" {
				continue
			}
			var err error
			if o.Kind == opDisputeUpdate {
				err = w.stripe.TryUpdateDispute(d.ID, "under_review")
			} else {
				err = w.stripe.TryCloseDispute(d.ID, o.B%2 == 0)
			}
			return errText(err), err == nil
		}
		return "no open dispute", false

	case opPaymentLink:
		b := w.pick(o.A)
		if b == nil {
			return "no booking", false
		}
		amount := b.amount
		if o.B%2 == 1 {
			amount = 100 // another price
		}
		s := w.stripe.PayThroughPaymentLink(b.id.String(), amount, "eur")
		return s.ID, true

	case opDeliver:
		rep := w.deliver(ctx, 1+o.B%4, 0.2, w.concurrency(1+o.B%4))
		return fmt.Sprintf("sent %d, failed %d, order %v", rep.Sent, rep.Failed, rep.Order), rep.Sent > 0

	case opBurst:
		rep := w.deliver(ctx, 0, 0.3, w.concurrency(8))
		return fmt.Sprintf("sent %d, failed %d", rep.Sent, rep.Failed), rep.Sent > 0

	case opReconcile:
		s, err := reconciler.Run(ctx)
		if err != nil {
			return errText(err), false
		}
		return fmt.Sprintf("%+v", s), true

	case opReplay:
		s, err := reconciler.Replay(ctx, time.Hour)
		if err != nil {
			return errText(err), false
		}
		return fmt.Sprintf("%+v", s), s.Applied > 0

	case opStripeFault:
		paths := []string{"/v1/refunds", "/v1/checkout/sessions", "/v1/checkout/sessions/", "/v1/events"}
		kinds := []testkit.FaultKind{testkit.FaultError, testkit.FaultErrorAfter, testkit.FaultTimeout, testkit.FaultCut}
		f := testkit.Fault{
			Kind: kinds[o.B%len(kinds)], Path: paths[o.A%len(paths)], Times: 1 + o.A%2,
			Delay: 100 * time.Millisecond,
		}
		if o.B%5 == 0 {
			f.Status = http.StatusServiceUnavailable
		}
		w.stripe.Inject(f)
		return fmt.Sprintf("%s ×%d on %s", f.Kind, f.Times, f.Path), true

	case opRestart:
		if err := w.restart(ctx); err != nil {
			return errText(err), false
		}
		w.mu.Lock()
		w.cov.faults["server_restarted"]++
		w.mu.Unlock()
		return "restarted", true

	case opKillBackend:
		// One of the server's connections, preferring one inside a
		// transaction or a statement: killed mid-transaction.
		var killed bool
		err := w.db.Pool.QueryRow(ctx, `
			SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM (
				SELECT pid FROM pg_stat_activity
				WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
				ORDER BY (state <> 'idle') DESC, random() LIMIT 1) victim`, serverApp).Scan(&killed)
		if err != nil {
			return errText(err), false
		}
		if killed {
			w.mu.Lock()
			w.cov.faults["pg_backend_killed"]++
			w.mu.Unlock()
		}
		return fmt.Sprint(killed), killed
	}
	return "unknown operation", false
}

func (w *world) session(b *tracked) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return b.session
}

func faultTotal(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
