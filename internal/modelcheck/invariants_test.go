package modelcheck_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	slotpayconfig "github.com/slotpay/slotpay/internal/config"

	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/notify"
	"github.com/slotpay/slotpay/internal/payment"
	"github.com/slotpay/slotpay/internal/testkit"
)

// row is a booking as the database holds it once the world is quiet.
type row struct {
	id                    uuid.UUID
	status                string
	amount                int64
	currency              string
	session, paymentIntnt *string
	disputed              bool
	disputeStatus         *string
	email                 string
}

type ledgerRow struct {
	eventID, typ, outcome string
	bookingID             *uuid.UUID
	session, pi           *string
}

// check tests every SPEC §8 invariant against the database and the
// simulator's own record of money, and returns what it found violated.
func (w *world) check(ctx context.Context) []string {
	var v []string
	fail := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	pool := w.db.Pool

	hasDisputeStatus := w.db.Count(w.t, `SELECT count(*) FROM information_schema.columns
		WHERE table_name = 'bookings' AND column_name = 'dispute_status'`) == 1
	disputeCol := "NULL::text"
	if hasDisputeStatus {
		disputeCol = "dispute_status"
	}
	rows, err := pool.Query(ctx, `SELECT id, status, amount_total, currency, checkout_session_id, payment_intent_id,
		disputed, `+disputeCol+`, customer_email FROM bookings`)
	if err != nil {
		return []string{"read bookings: " + err.Error()}
	}
	bookings := map[uuid.UUID]*row{}
	for rows.Next() {
		var b row
		if err := rows.Scan(&b.id, &b.status, &b.amount, &b.currency, &b.session, &b.paymentIntnt, &b.disputed, &b.disputeStatus, &b.email); err != nil {
			rows.Close()
			return []string{"read bookings: " + err.Error()}
		}
		bookings[b.id] = &b
	}
	rows.Close()

	ledger := map[string]ledgerRow{}
	erows, err := pool.Query(ctx, `SELECT stripe_event_id, type, outcome, booking_id, checkout_session_id, payment_intent_id FROM payment_events`)
	if err != nil {
		return []string{"read payment_events: " + err.Error()}
	}
	for erows.Next() {
		var e ledgerRow
		if err := erows.Scan(&e.eventID, &e.typ, &e.outcome, &e.bookingID, &e.session, &e.pi); err != nil {
			erows.Close()
			return []string{"read payment_events: " + err.Error()}
		}
		ledger[e.eventID] = e
	}
	erows.Close()

	// §8.1: no two slot-holding bookings of one resource overlap.
	if n := w.db.Count(w.t, `SELECT count(*) FROM bookings a JOIN bookings b ON a.resource_id = b.resource_id AND a.id < b.id
		AND tstzrange(a.starts_at, a.ends_at, '[)') && tstzrange(b.starts_at, b.ends_at, '[)')
		WHERE a.status IN ('pending_payment','processing','confirmed','needs_review')
		  AND b.status IN ('pending_payment','processing','confirmed','needs_review')`); n > 0 {
		fail("§8.1: %d pairs of slot-holding bookings overlap", n)
	}

	// The simulator's record of money, by the booking slotpay created each
	// session for.
	payments := w.stripe.Payments()
	byBooking := map[uuid.UUID][]testkit.FakePayment{}
	for _, p := range payments {
		if id, err := uuid.Parse(p.BookingID); err == nil && !p.PaymentLink {
			byBooking[id] = append(byBooking[id], p)
		}
	}
	failedRefund := map[string]bool{} // payment intents with a refund that failed or was cancelled
	for _, r := range w.stripe.Refunds() {
		if r.Status == "failed" || r.Status == "canceled" {
			failedRefund[r.PaymentIntent] = true
		}
	}

	for _, b := range bookings {
		ps := byBooking[b.id]
		var charged, net int64
		var disputeStatus string
		for _, p := range ps {
			charged += p.Charged
			net += p.Charged - p.Refunded - p.RefundPending
			if p.DisputeStatus != "" {
				disputeStatus = p.DisputeStatus
			}
		}
		money := describe(ps)
		switch b.status {
		case "confirmed", "needs_review":
			// §8.2: confirmed only by a paid session slotpay created for
			// it, at the amount the server computed.
			paidOwn := slices.ContainsFunc(ps, func(p testkit.FakePayment) bool {
				return p.Charged == b.amount && p.Currency == b.currency && b.session != nil && *b.session == p.SessionID
			})
			if !paidOwn {
				fail("§8.2: booking %s is %s but no session of its own was paid %d %s at Stripe (%s)", b.id, b.status, b.amount, b.currency, money)
			}
			// §8.6: the money is still with the merchant.
			if net != b.amount {
				fail("§8.6: booking %s is %s, but Stripe holds %d of %d for it (%s)", b.id, b.status, net, b.amount, money)
			}
		case "refunded":
			if charged == 0 || net != 0 {
				fail("§8.6: booking %s is refunded, but Stripe charged %d and holds %d for it (%s)", b.id, charged, net, money)
			}
		case "refund_pending":
			// Once quiet, a refund is pending only because Stripe failed
			// one and an operator must act (SPEC §2.1); otherwise it never
			// went through.
			if b.paymentIntnt == nil || !failedRefund[*b.paymentIntnt] {
				fail("§8.6: booking %s is still refund_pending once quiet, with no failed refund (%s)", b.id, money)
			}
		default:
			if net != 0 {
				fail("§8.6: booking %s is %s, but Stripe holds %d for it (%s)", b.id, b.status, net, money)
			}
		}
		// Disputes: disputed as soon as Stripe says so; with the
		// lifecycle, the dispute's status too (a lost one is money gone).
		if disputeStatus != "" && !b.disputed {
			fail("§8.6: booking %s is not marked disputed, but Stripe has a dispute %s (%s)", b.id, disputeStatus, money)
		}
		if disputeStatus != "" && w.cfg.defects[defectDispute] {
			switch {
			case !hasDisputeStatus:
				fail("§8.6 (dispute): bookings has no dispute_status; booking %s's dispute is %s at Stripe", b.id, disputeStatus)
			case b.disputeStatus == nil || *b.disputeStatus != disputeStatus:
				fail("§8.6 (dispute): booking %s has dispute_status %v, Stripe says %s", b.id, deref(b.disputeStatus), disputeStatus)
			}
		}
	}

	// §8.2 and SPEC §2.1: only sessions slotpay created pay a booking; a
	// Payment Link's session is recorded for review and changes nothing.
	for _, p := range payments {
		if !p.PaymentLink {
			continue
		}
		for _, e := range ledger {
			if e.session != nil && *e.session == p.SessionID && e.typ == "checkout.session.completed" && e.outcome != "review" {
				fail("§2.1 provenance: Payment Link session %s (client_reference_id %s) was recorded %s, not review", p.SessionID, p.ClientReferenceID, e.outcome)
			}
		}
	}

	// §8.3: each booking confirmed at most once, each event applied once.
	if n := w.db.Count(w.t, `SELECT count(*) FROM (SELECT booking_id FROM booking_status_changes
		WHERE to_status = 'confirmed' GROUP BY booking_id HAVING count(*) > 1) twice`); n > 0 {
		fail("§8.3: %d bookings reached confirmed more than once", n)
	}
	if n := w.db.Count(w.t, `SELECT count(*) FROM (SELECT stripe_event_id FROM booking_status_changes
		WHERE stripe_event_id IS NOT NULL GROUP BY stripe_event_id HAVING count(*) > 1) twice`); n > 0 {
		fail("§8.3: %d events changed a status more than once", n)
	}

	// §8.4: every webhook answered 2xx was durably recorded.
	w.mu.Lock()
	for id := range w.acked {
		if _, ok := ledger[id]; !ok {
			fail("§8.4: event %s was answered 2xx but is not in payment_events", id)
		}
	}
	refused := w.checkoutsRefused
	v = append(v, w.liveness...)
	w.mu.Unlock()

	// §8.5: no event Stripe delivered is lost, whatever its order; none
	// stays unmatched once its booking is known.
	bySession, byIntent := map[string]uuid.UUID{}, map[string]uuid.UUID{}
	for _, b := range bookings {
		if b.session != nil {
			bySession[*b.session] = b.id
		}
		if b.paymentIntnt != nil {
			byIntent[*b.paymentIntnt] = b.id
		}
	}
	for _, e := range w.stripe.Emitted() {
		if !slices.Contains(payment.HandledEventTypes, e.Type) {
			continue
		}
		le, ok := ledger[e.ID]
		if !ok {
			fail("§8.5: %s %s was delivered by Stripe and listed by its Events API, but is not in payment_events", e.Type, e.ID)
			continue
		}
		if le.outcome != "unmatched" {
			continue
		}
		if le.session != nil && bySession[*le.session] != uuid.Nil {
			fail("§8.5: %s %s is unmatched, but its session %s belongs to booking %s", le.typ, le.eventID, *le.session, bySession[*le.session])
		} else if le.pi != nil && byIntent[*le.pi] != uuid.Nil {
			fail("§8.5: %s %s is unmatched, but its payment intent %s belongs to booking %s", le.typ, le.eventID, *le.pi, byIntent[*le.pi])
		}
	}

	// SPEC §2.2 and §5: once quiet (the reconciler has run with Stripe
	// answering), no lapsed hold still holds its slot.
	if n := w.db.Count(w.t, `SELECT count(*) FROM bookings WHERE status = 'pending_payment' AND hold_expires_at < now()`); n > 0 {
		fail("§2.2: %d lapsed holds still hold their slots once quiet (the reconciler could not release them)", n)
	}

	// §8.7: no e-mail holds more unpaid slots than the limit.
	perEmail := map[string]int{}
	for _, b := range bookings {
		if b.status == "pending_payment" {
			perEmail[strings.ToLower(b.email)]++
		}
	}
	for email, n := range perEmail {
		if n > slotpayconfig.DefaultMaxHoldsPerEmail {
			fail("§8.7: %s holds %d unpaid slots (MAX_HOLDS_PER_EMAIL %d)", email, n, slotpayconfig.DefaultMaxHoldsPerEmail)
		}
	}

	// §8.8: every notification a committed transition calls for is made
	// (once) and its e-mail delivered; none exists for anything else.
	v = append(v, w.checkNotifications(ctx, bookings)...)

	// SPEC §2.2: a checkout Stripe refuses with no fault injected means
	// slotpay sent what Stripe does not accept (expires_at too close).
	if w.cfg.defects[defectExpiresAt] && refused > 0 {
		fail("§2.2 expires_at: %d checkouts were refused by Stripe with no fault injected", refused)
	}
	slices.Sort(v)
	return v
}

// checkNotifications is §8.8 against the history: every committed status
// change that notify.Decide says someone hears about has its notification,
// and each notification with an e-mail has a delivered (here: logged)
// attempt, whatever restarts and killed connections came between; a
// disputed booking has told the merchant. A notification belongs to a
// committed row by its foreign key, so one for a rolled-back transition
// cannot exist; at most one per change is checked.
func (w *world) checkNotifications(ctx context.Context, bookings map[uuid.UUID]*row) []string {
	var v []string
	fail := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	rows, err := w.db.Pool.Query(ctx, `SELECT c.id, c.booking_id, coalesce(c.from_status, ''), c.to_status, c.cause,
			count(n.id), count(n.id) FILTER (WHERE n.email_kind IS NOT NULL AND NOT EXISTS (
				SELECT 1 FROM notification_attempts a
				WHERE a.notification_id = n.id AND a.channel = 'email' AND a.outcome IN ('delivered', 'logged')))
		FROM booking_status_changes c LEFT JOIN notifications n ON n.status_change_id = c.id
		GROUP BY c.id ORDER BY c.id`)
	if err != nil {
		return []string{"read status changes and notifications: " + err.Error()}
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                int64
			bookingID         uuid.UUID
			from, to, cause   string
			made, undelivered int
		)
		if err := rows.Scan(&id, &bookingID, &from, &to, &cause, &made, &undelivered); err != nil {
			return append(v, "read status changes and notifications: "+err.Error())
		}
		eventType, _ := notify.Decide(booking.Status(from), booking.Status(to), cause)
		switch {
		case eventType != "" && made == 0:
			fail("§8.8: booking %s's change %s → %s (%s) was committed, but no %s notification was made", bookingID, from, to, cause, eventType)
		case eventType == "" && made > 0:
			fail("§8.8: booking %s's change %s → %s (%s) calls for no notification, but has %d", bookingID, from, to, cause, made)
		case made > 1:
			fail("§8.8: booking %s's change %s → %s has %d notifications", bookingID, from, to, made)
		}
		if undelivered > 0 {
			fail("§8.8: booking %s's %s notification has an e-mail never delivered", bookingID, eventType)
		}
	}
	if err := rows.Err(); err != nil {
		return append(v, "read status changes and notifications: "+err.Error())
	}
	for _, b := range bookings {
		if b.disputed && w.db.Count(w.t, `SELECT count(*) FROM notifications WHERE booking_id = $1 AND type = $2`, b.id, notify.TypeDisputed) == 0 {
			fail("§8.8: booking %s is disputed, but the merchant was never told (%s)", b.id, notify.TypeDisputed)
		}
	}
	return v
}

func describe(ps []testkit.FakePayment) string {
	if len(ps) == 0 {
		return "no session paid at Stripe"
	}
	var parts []string
	for _, p := range ps {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, "; ")
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// interleavings records, per booking, the order in which its events reached
// slotpay (the ledger's order), and whether it differs from the order Stripe
// created them in.
func (w *world) interleavings(ctx context.Context) {
	created := map[string]int{}
	for i, e := range w.stripe.Emitted() {
		created[e.ID] = i
	}
	rows, err := w.db.Pool.Query(ctx, `SELECT booking_id, stripe_event_id, type FROM payment_events
		WHERE booking_id IS NOT NULL ORDER BY booking_id, id`)
	if err != nil {
		return
	}
	defer rows.Close()
	type seen struct {
		types   []string
		created []int
	}
	per := map[uuid.UUID]*seen{}
	for rows.Next() {
		var (
			id       uuid.UUID
			ev, kind string
		)
		if rows.Scan(&id, &ev, &kind) != nil {
			return
		}
		if per[id] == nil {
			per[id] = &seen{}
		}
		per[id].types = append(per[id].types, kind)
		per[id].created = append(per[id].created, created[ev])
	}
	for _, s := range per {
		w.cov.bookingsSeen++
		w.cov.orders[shorten(strings.Join(s.types, ">"))]++
		if !slices.IsSorted(s.created) {
			w.cov.outOfOrder++
		}
	}
}

func shorten(order string) string {
	r := strings.NewReplacer("checkout.session.", "cs.", "charge.dispute.", "dispute.", "charge.", "ch.")
	return r.Replace(order)
}
