package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	stripeclient "github.com/stripe/stripe-go/v76/client"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/testkit"
)

// TestOnlySessionsSlotpayCreatedPayABooking: SPEC §2.1. A session names its
// booking as slotpay's own only through its id or through metadata.booking_id
// agreeing with client_reference_id; a Payment Link (whose URL the customer
// edits) or another integration on the account sets client_reference_id
// alone. Such a session is recorded review and changes no booking.
func TestOnlySessionsSlotpayCreatedPayABooking(t *testing.T) {
	t.Parallel()

	foreign := map[string]func(ev *testkit.Event){
		"ClientReferenceIDOnly": func(ev *testkit.Event) { ev.Object["metadata"] = map[string]any{} },
		"MetadataDisagrees": func(ev *testkit.Event) {
			ev.Object["metadata"] = map[string]any{"booking_id": testUUID().String()}
		},
		"PaymentLinkAtAnotherPrice": func(ev *testkit.Event) {
			ev.Object["metadata"] = map[string]any{}
			ev.Object["payment_link"] = testkit.RandomID("plink_test_")
			ev.Object["amount_total"], ev.Object["amount_subtotal"] = 100, 100
		},
	}
	for name, edit := range foreign {
		t.Run(name+"_Review_BookingUnchanged", func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			bk := b.hold(t, at(10), at(12)) // no checkout started: nothing of slotpay's names a session
			ev := withID(testkit.CheckoutSessionCompleted(testkit.RandomID("cs_test_plink_"), bk.Id.String(), bk.AmountTotal, bk.Currency))
			edit(&ev)
			requireReceived(t, b.deliver(t, ev.JSON(t)), false)

			row := b.booking(t, bk.Id)
			require.Equal(t, "pending_payment", row.Status)
			require.Nil(t, row.CheckoutSessionID, "the foreign session is not linked")
			require.Nil(t, row.PaymentIntentID)
			l := b.ledger(t, ev.ID)
			require.Equal(t, "review", l.Outcome)
			require.Equal(t, bk.Id, *l.BookingID, "the operator finds it on the booking's page")
		})
	}

	t.Run("SlotpaysSessionOvertakingTheCheckoutResponse_Confirmed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.hold(t, at(10), at(12))
		ev := withID(testkit.CheckoutSessionCompleted(testkit.RandomID("cs_test_"), bk.Id.String(), bk.AmountTotal, bk.Currency))
		requireReceived(t, b.deliver(t, ev.JSON(t)), false)
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	})

	t.Run("ForeignSessionExpired_Ignored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.hold(t, at(10), at(12))
		ev := withID(testkit.CheckoutSessionCompleted(testkit.RandomID("cs_test_plink_"), bk.Id.String(), bk.AmountTotal, bk.Currency))
		ev.Type = "checkout.session.expired"
		ev.Object["status"], ev.Object["payment_status"], ev.Object["metadata"] = "expired", "unpaid", map[string]any{}
		requireReceived(t, b.deliver(t, ev.JSON(t)), false)
		require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status)
		require.Equal(t, "ignored", b.ledger(t, ev.ID).Outcome)
	})
}

// confirmedWithIntent is a booking Stripe reported paid, and its intent.
func (b *testBundle) confirmedWithIntent(t *testing.T, hour int) (genapi.CreatedBooking, string) {
	t.Helper()
	bk, co := b.paidBooking(t, hour)
	paid := completed(bk, co)
	requireReceived(t, b.deliver(t, paid.JSON(t)), false)
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	return bk, paid.Object["payment_intent"].(string)
}

// TestRefundThatFailsLater_RefundPendingForAnOperator: SPEC §2.1, the
// refund-failure row. charge.refunded arrives when a refund is created; the
// refund can still fail or be cancelled. The booking goes back to
// refund_pending with outcome review — the customer is owed the money
// again — and nothing asks Stripe for the refund again on its own.
func TestRefundThatFailsLater_RefundPendingForAnOperator(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ eventType, status string }{
		{"refund.failed", "failed"},
		{"refund.updated", "canceled"},
		{"charge.refund.updated", "failed"},
	} {
		t.Run(c.eventType+"_"+c.status, func(t *testing.T) {
			t.Parallel()
			rec, base := newStripeRecorder(t)
			// With the background jobs worked: the reconciler's pass and any
			// refund job it might (wrongly) insert run for real.
			b := setup(t, withStripe(base), withJobs())
			bk, pi := b.confirmedWithIntent(t, 10)

			refunded := withID(testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency))
			refunded.Created = time.Now().Add(-time.Minute)
			requireReceived(t, b.deliver(t, refunded.JSON(t)), false)
			require.Equal(t, "refunded", b.booking(t, bk.Id).Status)

			failed := withID(testkit.Refund(c.eventType, pi, bk.AmountTotal, bk.Currency, c.status))
			requireReceived(t, b.deliver(t, failed.JSON(t)), false)
			row := b.booking(t, bk.Id)
			require.Equal(t, "refund_pending", row.Status)
			require.NotNil(t, row.RefundFailedAt)
			require.Equal(t, "review", b.ledger(t, failed.ID).Outcome)

			resp, body := b.do(t, http.MethodPost, "/v1/admin/reconcile", "", b.as(t, admin.RoleOps))
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			require.Empty(t, rec.calls("/v1/refunds"), "a failed refund is never requested again automatically")
			require.Equal(t, "refund_pending", b.booking(t, bk.Id).Status)
		})
	}

	t.Run("FailureDeliveredBeforeTheRefund_StaysConfirmed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, pi := b.confirmedWithIntent(t, 10)
		refunded := withID(testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency))
		refunded.Created = time.Now().Add(-time.Minute)
		failed := withID(testkit.Refund("refund.failed", pi, bk.AmountTotal, bk.Currency, "failed"))
		requireReceived(t, b.deliver(t, failed.JSON(t)), false)
		require.Equal(t, "review", b.ledger(t, failed.ID).Outcome)
		requireReceived(t, b.deliver(t, refunded.JSON(t)), false)
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status, "the money is back with the merchant: the booking is paid")
		require.Equal(t, "ignored", b.ledger(t, refunded.ID).Outcome)

		// An operator's new refund, reported after the failure, lands.
		again := withID(testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency))
		again.Created = time.Now().Add(time.Second)
		requireReceived(t, b.deliver(t, again.JSON(t)), false)
		require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
	})

	t.Run("AnOperatorRefundsAgain_UnderANewKey", func(t *testing.T) {
		t.Parallel()
		rec, base := newStripeRecorder(t)
		b := setup(t, withStripe(base))
		bk, pi := b.confirmedWithIntent(t, 10)
		ops := b.as(t, admin.RoleOps)
		refundByOperator := func() {
			resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, ops)
			require.NoError(t, err)
			require.Equal(t, http.StatusAccepted, resp.StatusCode(), string(resp.Body))
		}
		refundByOperator()
		refunded := withID(testkit.ChargeRefunded(pi, bk.AmountTotal, bk.AmountTotal, bk.Currency))
		refunded.Created = time.Now().Add(-time.Minute)
		requireReceived(t, b.deliver(t, refunded.JSON(t)), false)
		requireReceived(t, b.deliver(t, withID(testkit.Refund("refund.failed", pi, bk.AmountTotal, bk.Currency, "failed")).JSON(t)), false)
		require.Equal(t, "refund_pending", b.booking(t, bk.Id).Status)

		// The first refund's key holds Stripe's success: the operator's new
		// refund goes out under the next one, or Stripe would replay it.
		refundByOperator()
		var keys []string
		for _, c := range rec.calls("/v1/refunds") {
			if c.IdempotencyKey != "" {
				keys = append(keys, c.IdempotencyKey)
			}
		}
		id := bk.Id.String()
		require.Equal(t, []string{"slotpay-refund-" + id + "-1", "slotpay-refund-" + id + "-2"}, keys)
	})

	t.Run("SucceededUpdate_Ignored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk, pi := b.confirmedWithIntent(t, 10)
		ev := withID(testkit.Refund("refund.updated", pi, bk.AmountTotal, bk.Currency, "succeeded"))
		requireReceived(t, b.deliver(t, ev.JSON(t)), false)
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
		require.Equal(t, "ignored", b.ledger(t, ev.ID).Outcome)
	})
}

// TestDisputeLifecycle_StatusFollowsStripe: SPEC §2.1, the dispute rows, and
// §3: every charge.dispute.* event leaves the status alone, marks the
// booking disputed and records the dispute's status; a late older event
// never puts an earlier stage back. Operators list disputed bookings.
func TestDisputeLifecycle_StatusFollowsStripe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk, pi := b.confirmedWithIntent(t, 10)
	other, _ := b.confirmedWithIntent(t, 14)
	now := time.Now()
	dispute := func(eventType, status string, at time.Time) {
		ev := withID(testkit.Dispute(eventType, pi, bk.AmountTotal, bk.Currency, status))
		ev.Created = at
		requireReceived(t, b.deliver(t, ev.JSON(t)), false)
		require.Equal(t, "applied", b.ledger(t, ev.ID).Outcome)
	}
	dispute("charge.dispute.created", "needs_response", now.Add(-4*time.Minute))
	dispute("charge.dispute.funds_withdrawn", "needs_response", now.Add(-4*time.Minute))
	dispute("charge.dispute.updated", "under_review", now.Add(-3*time.Minute))
	dispute("charge.dispute.closed", "lost", now.Add(-time.Minute))
	// Stripe's retry of an older update arrives last.
	dispute("charge.dispute.updated", "needs_response", now.Add(-2*time.Minute))

	row := b.booking(t, bk.Id)
	require.Equal(t, "confirmed", row.Status)
	require.True(t, row.Disputed)
	require.Equal(t, "lost", *row.DisputeStatus)

	readonly := b.as(t, admin.RoleReadonly)
	yes, no := true, false
	list := func(disputed *bool) []genapi.AdminBooking {
		resp, err := b.client.ListAdminBookingsWithResponse(t.Context(), &genapi.ListAdminBookingsParams{Disputed: disputed}, readonly)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		return resp.JSON200.Items
	}
	disputed := list(&yes)
	require.Len(t, disputed, 1)
	require.Equal(t, bk.Id, disputed[0].Id)
	require.Equal(t, "lost", *disputed[0].DisputeStatus)
	undisputed := list(&no)
	require.Len(t, undisputed, 1)
	require.Equal(t, other.Id, undisputed[0].Id)
	require.Nil(t, undisputed[0].DisputeStatus)

	view, err := b.client.GetAdminBookingWithResponse(t.Context(), bk.Id, readonly)
	require.NoError(t, err)
	require.Equal(t, "lost", *view.JSON200.Booking.DisputeStatus)

	// Won after all (funds reinstated): the later stage, a later event.
	dispute("charge.dispute.funds_reinstated", "won", now)
	require.Equal(t, "won", *b.booking(t, bk.Id).DisputeStatus)
}

// TestUnmatchedSessionEventWithPaymentIntent_AppliedOnce: SPEC §2.1 and
// §8.3. A session event kept unmatched waits both for its session and for
// its payment intent; when one event links both, it is applied once and its
// ledger row keeps the outcome of that application.
func TestUnmatchedSessionEventWithPaymentIntent_AppliedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk := b.hold(t, at(10), at(12))
	sessionID := testkit.RandomID("cs_test_")

	completedUnpaid := withID(testkit.CheckoutSessionCompleted(sessionID, bk.Id.String(), bk.AmountTotal, bk.Currency))
	completedUnpaid.Object["payment_status"] = "unpaid"
	completedUnpaid.Created = time.Now().Add(-time.Minute)
	pi := completedUnpaid.Object["payment_intent"].(string)

	// The settled payment, without any booking reference (its object was
	// trimmed), overtakes the completion: nothing names its booking yet.
	succeeded := withID(testkit.CheckoutSessionCompleted(sessionID, "", bk.AmountTotal, bk.Currency))
	succeeded.Type = "checkout.session.async_payment_succeeded"
	succeeded.Object["client_reference_id"], succeeded.Object["metadata"] = nil, map[string]any{}
	succeeded.Object["payment_intent"] = pi
	requireReceived(t, b.deliver(t, succeeded.JSON(t)), false)
	require.Equal(t, "unmatched", b.ledger(t, succeeded.ID).Outcome)

	requireReceived(t, b.deliver(t, completedUnpaid.JSON(t)), false)
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	l := b.ledger(t, succeeded.ID)
	require.Equal(t, "applied", l.Outcome, l.Detail)
	require.Equal(t, 1, b.db.Count(t, `SELECT count(*) FROM booking_status_changes
		WHERE booking_id = $1 AND to_status = 'confirmed' AND stripe_event_id = $2`, bk.Id, succeeded.ID))
}

// TestRefundFactsInOneSecond_StripesRefundsDecide: SPEC §8.6. Stripe's event
// times are whole seconds, so a refund that fails and a new refund that
// covers the charge can carry the same time as the charge.refunded of the
// first refund, and no order can be read from them (model checker, soak
// seeds 50 and 272: the new refund's charge.refunded was ignored as older
// than the failure, and the booking stayed confirmed with its money
// refunded). A refund fact tied with a recorded one is decided by the
// payment's refunds read back from Stripe.
func TestRefundFactsInOneSecond_StripesRefundsDecide(t *testing.T) {
	t.Parallel()
	// one delivers the events of the given types the faithful simulator
	// emitted and were not delivered yet, all stamped with the same second,
	// in the order Stripe created them; it returns their ids by type.
	sent := sync.Map{}
	one := func(t *testing.T, b *testBundle, fake *testkit.StripeFake, at time.Time, types ...string) map[string][]string {
		t.Helper()
		ids := map[string][]string{}
		for _, e := range fake.Emitted() {
			if !slices.Contains(types, e.Type) {
				continue
			}
			if _, done := sent.LoadOrStore(e.ID, true); done {
				continue
			}
			var ev map[string]any
			require.NoError(t, json.Unmarshal(e.JSON, &ev))
			ev["created"] = at.Unix()
			raw, err := json.Marshal(ev)
			require.NoError(t, err)
			requireReceived(t, b.deliver(t, raw), false)
			ids[e.Type] = append(ids[e.Type], e.ID)
		}
		return ids
	}
	start := func(t *testing.T) (*testBundle, *testkit.StripeFake, *stripeclient.API, genapi.CreatedBooking, string) {
		fake := testkit.NewStripeFake(t)
		b := setup(t, withStripe(fake.URL))
		bk, co := b.paidBooking(t, 10)
		fake.Complete(co.CheckoutSessionId, "paid")
		sc := testkit.StripeClient(t, fake.URL)
		return b, fake, sc, bk, fake.Session(co.CheckoutSessionId).PaymentIntent
	}
	refund := func(t *testing.T, sc *stripeclient.API, pi string) string {
		r, err := sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi)})
		require.NoError(t, err)
		return r.ID
	}
	second := time.Now().Truncate(time.Second)

	t.Run("FailureThenANewRefund_Refunded", func(t *testing.T) {
		t.Parallel()
		b, fake, sc, bk, pi := start(t)
		first := refund(t, sc, pi)
		fake.SetRefundStatus(first, "failed")
		one(t, b, fake, second, "checkout.session.completed", "refund.failed")
		stale := one(t, b, fake, second, "charge.refunded")["charge.refunded"]
		require.Equal(t, "confirmed", b.booking(t, bk.Id).Status, "the only refund failed: the merchant has the money")
		require.Equal(t, "ignored", b.ledger(t, stale[0]).Outcome)

		refund(t, sc, pi) // an operator refunds again, in the same second
		again := one(t, b, fake, second, "charge.refunded")["charge.refunded"]
		require.Len(t, again, 1)
		require.Equal(t, "refunded", b.booking(t, bk.Id).Status, "Stripe holds nothing of the payment now")
		require.Equal(t, "applied", b.ledger(t, again[0]).Outcome)
	})

	t.Run("LateFailureOfAnOlderRefund_StaysRefunded", func(t *testing.T) {
		t.Parallel()
		b, fake, sc, bk, pi := start(t)
		first := refund(t, sc, pi)
		fake.SetRefundStatus(first, "failed")
		refund(t, sc, pi)
		one(t, b, fake, second, "checkout.session.completed")
		one(t, b, fake, second, "charge.refunded")
		require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
		failed := one(t, b, fake, second, "refund.failed")["refund.failed"]
		require.Equal(t, "refunded", b.booking(t, bk.Id).Status, "the second refund still covers the charge")
		require.Equal(t, "ignored", b.ledger(t, failed[0]).Outcome)
	})
}

// TestStripeRetry_AFailedAttemptIsNotedEvenWhenTheCallerLeft: SPEC §2.2.
// Stripe stores a 5xx under its key for a day, so an attempt that failed
// must be noted (the next one uses a new key) even when the customer's
// request ended while Stripe answered; else every later expiry of the
// session replays that 5xx, and the lapsed hold can never be released.
func TestStripeRetry_AFailedAttemptIsNotedEvenWhenTheCallerLeft(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t) // faithful: stores the 500
	b := setup(t, withStripe(fake.URL))
	bk, co := b.paidBooking(t, 10)
	expire := "/v1/checkout/sessions/" + co.CheckoutSessionId + "/expire"
	fake.FailNext(expire, http.StatusInternalServerError, "")
	reached, _ := fake.HoldAnswer(expire)
	ctx, leave := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = b.client.CancelBookingWithResponse(ctx, bk.Id, &genapi.CancelBookingParams{})
	}()
	<-reached
	leave() // the customer goes away while Stripe holds its (stored) 500
	<-done
	testkit.WaitFor(t, "the failed expiry attempt noted", func() bool {
		return b.db.Count(t, `SELECT count(*) FROM stripe_request_attempts WHERE operation = $1 AND attempt = 2`, "expire-"+co.CheckoutSessionId) == 1
	})

	resp, err := b.client.CancelBookingWithResponse(t.Context(), bk.Id, &genapi.CancelBookingParams{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	require.Equal(t, "cancelled", b.booking(t, bk.Id).Status)
	require.Equal(t, "expired", fake.Session(co.CheckoutSessionId).Status)
}
