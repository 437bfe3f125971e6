package httpapi_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/testkit"
)

// The customer after paying (SPEC §3.1): the manage_token, the cancellation
// policy's refunds, the reschedule, and the money rules under races, against
// the faithful Stripe simulator.

// daysAhead is a bookable time days from now at hour:00 UTC, far enough for
// the policy windows these tests set.
func daysAhead(days, hour int) time.Time {
	d := time.Now().UTC().AddDate(0, 0, days)
	return time.Date(d.Year(), d.Month(), d.Day(), hour, 0, 0, 0, time.UTC)
}

func bearer(token string) genapi.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// setPolicy gives the test's resource a cancellation policy.
func (b *testBundle) setPolicy(t *testing.T, full, partial, percent int) {
	t.Helper()
	_, err := b.db.Pool.Exec(t.Context(),
		`UPDATE resources SET full_refund_hours_before = $2, partial_refund_hours_before = $3, partial_refund_percent = $4 WHERE id = $1`,
		b.resource.ID, full, partial, percent)
	require.NoError(t, err)
}

// deliverAll delivers every event the fake emitted, until none is queued.
func (b *testBundle) deliverAll(t *testing.T, fake *testkit.StripeFake) {
	t.Helper()
	testkit.WaitFor(t, "every Stripe event delivered", func() bool {
		fake.DeliverEvents(t.Context(), testkit.Delivery{URL: b.url + "/v1/webhooks/stripe", Secret: webhookSecret, Rand: rand.New(rand.NewPCG(1, 2))})
		return fake.QueuedEvents() == 0
	})
}

// paidAt is a booking of [from, to) paid at the fake and confirmed by its
// webhook: the booking with its manage_token, and its session.
func (b *testBundle) paidAt(t *testing.T, fake *testkit.StripeFake, from, to time.Time) (genapi.CreatedBooking, string) {
	t.Helper()
	bk := b.hold(t, from, to)
	co := b.checkout(t, bk.Id)
	fake.Complete(co.CheckoutSessionId, "paid")
	b.deliverAll(t, fake)
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)
	return bk, co.CheckoutSessionId
}

func (b *testBundle) cancelWith(t *testing.T, id uuid.UUID, edit ...genapi.RequestEditorFn) *genapi.CancelBookingResponse {
	t.Helper()
	resp, err := b.client.CancelBookingWithResponse(t.Context(), id, &genapi.CancelBookingParams{}, edit...)
	require.NoError(t, err)
	return resp
}

func (b *testBundle) reschedule(t *testing.T, id uuid.UUID, from, to time.Time, edit ...genapi.RequestEditorFn) *genapi.RescheduleBookingResponse {
	t.Helper()
	resp, err := b.client.RescheduleBookingWithResponse(t.Context(), id, &genapi.RescheduleBookingParams{},
		genapi.RescheduleRequest{StartsAt: from, EndsAt: to}, edit...)
	require.NoError(t, err)
	return resp
}

// refundedAtStripe sums the refunds of a payment intent that did not fail.
func refundedAtStripe(fake *testkit.StripeFake, pi string) (total int64, count int) {
	for _, r := range fake.Refunds() {
		if r.PaymentIntent == pi && r.Status != "failed" && r.Status != "canceled" {
			total += r.Amount
			count++
		}
	}
	return total, count
}

// cancelRefundsAt counts the refunds customer cancels made of a payment
// intent.
func cancelRefundsAt(fake *testkit.StripeFake, pi string) int {
	n := 0
	for _, r := range fake.Refunds() {
		if r.PaymentIntent == pi && strings.HasPrefix(r.Metadata["slotpay_operation"], "cancel-refund-") {
			n++
		}
	}
	return n
}

// refundJobsDone waits until no refund job is left to run.
func (b *testBundle) refundJobsDone(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, "no refund job left to run", func() bool {
		return b.db.Count(t, "SELECT count(*) FROM river_job WHERE kind = 'refund' AND state NOT IN ('completed', 'discarded', 'cancelled')") == 0
	})
}

func TestManageToken_ReturnedOnlyInThe201AndItsReplay_NeverStored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key := "manage-" + uuid.NewString()
	first, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{IdempotencyKey: &key}, bookingRequest(b.resource.ID, at(10), at(12)))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, first.StatusCode(), string(first.Body))
	token := first.JSON201.ManageToken
	require.GreaterOrEqual(t, len(token), 22, "at least 128 bits")

	replay, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{IdempotencyKey: &key}, bookingRequest(b.resource.ID, at(10), at(12)))
	require.NoError(t, err)
	require.Equal(t, "true", replay.HTTPResponse.Header.Get("Idempotent-Replayed"))
	require.Equal(t, string(first.Body), string(replay.Body), "the replay answers what the first request did, token included")

	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM idempotency_keys WHERE position($1 in convert_from(response_body, 'UTF8')) > 0", token),
		"the token is not at rest in the stored response")
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM bookings WHERE position($1::bytea in manage_token_hash) > 0", []byte(token)))

	got, err := b.client.GetBookingWithResponse(t.Context(), first.JSON201.Id)
	require.NoError(t, err)
	require.NotContains(t, string(got.Body), token)
	require.NotContains(t, string(got.Body), "manage_token")
}

func TestManageToken_RequiredForCustomerActionsOnAPaidBooking(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withHoldCaps(-1, -1))
	bk, _ := b.paidAt(t, fake, daysAhead(3, 10), daysAhead(3, 12))
	other := b.hold(t, at(14), at(15))

	for name, edit := range map[string][]genapi.RequestEditorFn{
		"Missing":            nil,
		"Wrong":              {bearer("wrong")},
		"AnotherBookingsOne": {bearer(other.ManageToken)},
		"NotBearer": {func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Basic "+bk.ManageToken)
			return nil
		}},
	} {
		t.Run(name, func(t *testing.T) {
			resp := b.cancelWith(t, bk.Id, edit...)
			requireError(t, http.StatusUnauthorized, "unauthorized", resp.StatusCode(), resp.Body)
			re := b.reschedule(t, bk.Id, daysAhead(4, 10), daysAhead(4, 12), edit...)
			requireError(t, http.StatusUnauthorized, "unauthorized", re.StatusCode(), re.Body)
			if edit != nil {
				got, err := b.client.GetBookingWithResponse(t.Context(), bk.Id, edit...)
				require.NoError(t, err)
				requireError(t, http.StatusUnauthorized, "unauthorized", got.StatusCode(), got.Body)
			}
		})
	}
	require.Equal(t, "confirmed", b.booking(t, bk.Id).Status)

	t.Run("WithoutToken_ThePublicView", func(t *testing.T) {
		got, err := b.client.GetBookingWithResponse(t.Context(), bk.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, got.StatusCode())
		require.Nil(t, got.JSON200.Customer)
		require.Nil(t, got.JSON200.CancelRefundAmount)
	})
	t.Run("WithToken_CustomerPolicyAndWhatACancelWouldRefund", func(t *testing.T) {
		got, err := b.client.GetBookingWithResponse(t.Context(), bk.Id, bearer(bk.ManageToken))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, got.StatusCode(), string(got.Body))
		v := got.JSON200
		require.Equal(t, "ada@example.com", string(v.Customer.Email))
		require.Equal(t, genapi.CancellationPolicy{FullRefundHoursBefore: 24}, *v.CancellationPolicy, "the default policy")
		require.Equal(t, bk.AmountTotal, *v.CancelRefundAmount)
		require.WithinDuration(t, bk.StartsAt.Add(-24*time.Hour), *v.RescheduleUntil, 0)
	})
}

func TestCustomerCancel_BeforeFullRefundCutoff_RefundedInFull(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withJobs(), withHoldCaps(-1, -1))
	from, to := daysAhead(3, 10), daysAhead(3, 12)
	bk, session := b.paidAt(t, fake, from, to)
	pi := fake.Session(session).PaymentIntent

	resp := b.cancelWith(t, bk.Id, bearer(bk.ManageToken))
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	require.Equal(t, genapi.Cancelled, resp.JSON200.Status)
	require.Equal(t, bk.AmountTotal, *resp.JSON200.RefundAmount)
	require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND from_status = 'confirmed' AND to_status = 'cancelled' AND cause = 'customer_cancel_paid'", bk.Id))
	b.hold(t, from, to) // the slot is free again

	testkit.WaitFor(t, "the refund at Stripe", func() bool { _, n := refundedAtStripe(fake, pi); return n == 1 })
	total, _ := refundedAtStripe(fake, pi)
	require.Equal(t, bk.AmountTotal, total)
	b.deliverAll(t, fake)
	require.Equal(t, "refunded", b.booking(t, bk.Id).Status, "a full refund ends refunded when charge.refunded arrives")
}

func TestCustomerCancel_PartialRefundWindow_PercentRefundedAndStaysCancelled(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withJobs(), withHoldCaps(-1, -1))
	b.setPolicy(t, 24*10, 24, 30) // full until 10 days before, 30 % until a day before
	bk, session := b.paidAt(t, fake, daysAhead(3, 10), daysAhead(3, 11))
	pi := fake.Session(session).PaymentIntent

	resp := b.cancelWith(t, bk.Id, bearer(bk.ManageToken))
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	want := bk.AmountTotal * 30 / 100
	require.Equal(t, want, *resp.JSON200.RefundAmount)

	testkit.WaitFor(t, "the refund at Stripe", func() bool { _, n := refundedAtStripe(fake, pi); return n == 1 })
	total, _ := refundedAtStripe(fake, pi)
	require.Equal(t, want, total)
	b.deliverAll(t, fake)
	require.Equal(t, "cancelled", b.booking(t, bk.Id).Status, "a partial refund leaves it cancelled")
	// The worker notes the request once Stripe has answered, a moment after
	// the refund is visible at Stripe.
	testkit.WaitFor(t, "the refund noted as requested", func() bool { return b.booking(t, bk.Id).RefundRequestedAt != nil })
}

func TestCustomerCancel_InsideNoRefundWindow_AllowedAndRefundsNothing(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withJobs(), withHoldCaps(-1, -1))
	b.setPolicy(t, 24*10, 24*5, 50) // nothing back within 5 days
	bk, _ := b.paidAt(t, fake, daysAhead(3, 10), daysAhead(3, 12))

	got, err := b.client.GetBookingWithResponse(t.Context(), bk.Id, bearer(bk.ManageToken))
	require.NoError(t, err)
	require.Zero(t, *got.JSON200.CancelRefundAmount)

	resp := b.cancelWith(t, bk.Id, bearer(bk.ManageToken))
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	require.Equal(t, genapi.Cancelled, resp.JSON200.Status)
	require.Zero(t, *resp.JSON200.RefundAmount)
	require.Zero(t, b.db.Count(t, "SELECT count(*) FROM river_job WHERE kind = 'refund'"), "no refund job, so no Stripe call")
	require.Zero(t, fake.Calls(http.MethodPost, "/v1/refunds"))
}

func TestCustomerCancel_NotConfirmed_InvalidState(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withHoldCaps(-1, -1))
	bk, _ := b.paidAt(t, fake, daysAhead(3, 10), daysAhead(3, 12))
	require.Equal(t, http.StatusOK, b.cancelWith(t, bk.Id, bearer(bk.ManageToken)).StatusCode())
	again := b.cancelWith(t, bk.Id, bearer(bk.ManageToken))
	requireError(t, http.StatusConflict, "invalid_state", again.StatusCode(), again.Body)
	require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'cancelled'", bk.Id))
}

func TestCancelledAfterPayment_LateCompletionIgnored_NeverReconfirmed(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withHoldCaps(-1, -1))
	b.setPolicy(t, 24*10, 24*5, 50) // no refund: the booking stays cancelled
	bk, session := b.paidAt(t, fake, daysAhead(3, 10), daysAhead(3, 12))
	require.Equal(t, http.StatusOK, b.cancelWith(t, bk.Id, bearer(bk.ManageToken)).StatusCode())

	// The same payment reported again under another event id, as a
	// replay-events run or a second endpoint would.
	late := withID(testkit.CheckoutSessionCompleted(session, bk.Id.String(), bk.AmountTotal, bk.Currency))
	late.Object["payment_intent"] = fake.Session(session).PaymentIntent
	requireReceived(t, b.deliver(t, late.JSON(t)), false)
	require.Equal(t, "ignored", b.ledger(t, late.ID).Outcome)
	require.Equal(t, "cancelled", b.booking(t, bk.Id).Status)
	require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", bk.Id))
}

func TestOperatorRefundAfterPartialCancel_NeverMoreThanCaptured(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withJobs(), withHoldCaps(-1, -1))
	b.setPolicy(t, 24*10, 24, 40)
	bk, session := b.paidAt(t, fake, daysAhead(3, 10), daysAhead(3, 11))
	pi := fake.Session(session).PaymentIntent
	require.Equal(t, http.StatusOK, b.cancelWith(t, bk.Id, bearer(bk.ManageToken)).StatusCode())
	testkit.WaitFor(t, "the cancel's refund", func() bool { _, n := refundedAtStripe(fake, pi); return n == 1 })

	ops := b.as(t, admin.RoleOps)
	for range 2 {
		resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, ops)
		require.NoError(t, err)
		require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, resp.StatusCode(), string(resp.Body))
	}
	total, n := refundedAtStripe(fake, pi)
	require.Equal(t, bk.AmountTotal, total, "the operator refunded what remained, not the whole price again")
	require.Equal(t, 2, n)
	b.deliverAll(t, fake)
	require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
}

func TestReschedule(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withHoldCaps(-1, -1))

	t.Run("MovesTheSlot_HistoryRecordsFromAndTo", func(t *testing.T) {
		from, to := daysAhead(3, 10), daysAhead(3, 12)
		bk, _ := b.paidAt(t, fake, from, to)
		nFrom, nTo := daysAhead(4, 14), daysAhead(4, 16)
		resp := b.reschedule(t, bk.Id, nFrom, nTo, bearer(bk.ManageToken))
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		require.Equal(t, genapi.Confirmed, resp.JSON200.Status)
		require.WithinDuration(t, nFrom, resp.JSON200.StartsAt, 0)
		require.Equal(t, 1, b.db.Count(t, `SELECT count(*) FROM booking_status_changes WHERE booking_id = $1
			AND from_status = 'confirmed' AND to_status = 'confirmed' AND cause = 'rescheduled'
			AND from_starts_at = $2 AND from_ends_at = $3 AND to_starts_at = $4 AND to_ends_at = $5`, bk.Id, from, to, nFrom, nTo))
		b.hold(t, from, to) // the old slot is free
		other := b.hold(t, nFrom.Add(-time.Hour), nFrom)
		require.NotEqual(t, bk.Id, other.Id)
	})

	t.Run("ErrSlotUnavailable", func(t *testing.T) {
		bk, _ := b.paidAt(t, fake, daysAhead(5, 10), daysAhead(5, 12))
		b.hold(t, daysAhead(6, 10), daysAhead(6, 11))
		resp := b.reschedule(t, bk.Id, daysAhead(6, 10), daysAhead(6, 12), bearer(bk.ManageToken))
		requireError(t, http.StatusConflict, "slot_unavailable", resp.StatusCode(), resp.Body)
		require.WithinDuration(t, daysAhead(5, 10), b.booking(t, bk.Id).StartsAt, 0)
	})

	t.Run("ErrInvalidState_AnotherPrice", func(t *testing.T) {
		bk, _ := b.paidAt(t, fake, daysAhead(7, 10), daysAhead(7, 12))
		resp := b.reschedule(t, bk.Id, daysAhead(8, 10), daysAhead(8, 13), bearer(bk.ManageToken))
		requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
	})

	t.Run("ErrInvalidRequest_EverySlotRuleOfANewBooking", func(t *testing.T) {
		bk, _ := b.paidAt(t, fake, daysAhead(9, 10), daysAhead(9, 12))
		off := daysAhead(10, 10).Add(30 * time.Minute)
		resp := b.reschedule(t, bk.Id, off, off.Add(2*time.Hour), bearer(bk.ManageToken))
		requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode(), resp.Body)
		resp = b.reschedule(t, bk.Id, daysAhead(60, 10), daysAhead(60, 12), bearer(bk.ManageToken))
		requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode(), resp.Body)
	})

	t.Run("ErrInvalidState_PastTheFullRefundCutoff", func(t *testing.T) {
		bk, _ := b.paidAt(t, fake, daysAhead(11, 10), daysAhead(11, 12))
		_, err := b.db.Pool.Exec(t.Context(), `UPDATE resources SET full_refund_hours_before = 24*20 WHERE id = $1`, b.resource.ID)
		require.NoError(t, err)
		t.Cleanup(func() {
			_, _ = b.db.Pool.Exec(context.Background(), `UPDATE resources SET full_refund_hours_before = 24 WHERE id = $1`, b.resource.ID)
		})
		resp := b.reschedule(t, bk.Id, daysAhead(12, 10), daysAhead(12, 12), bearer(bk.ManageToken))
		requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
	})
}

// TestRace_CustomerCancelAgainstLateCompletion_NeverReconfirmed: a customer
// cancel and a second report of the same payment (another event id) race;
// whichever wins the row lock, the booking ends cancelled (or refunded), is
// confirmed once, and its refund is requested once.
func TestRace_CustomerCancelAgainstLateCompletion_NeverReconfirmed(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withJobs(), withHoldCaps(-1, -1))
	for i := range 12 {
		bk, session := b.paidAt(t, fake, daysAhead(2+i, 10), daysAhead(2+i, 12))
		pi := fake.Session(session).PaymentIntent
		late := withID(testkit.CheckoutSessionCompleted(session, bk.Id.String(), bk.AmountTotal, bk.Currency))
		late.Object["payment_intent"] = pi
		payload := late.JSON(t)
		var wg sync.WaitGroup
		wg.Go(func() {
			resp := b.cancelWith(t, bk.Id, bearer(bk.ManageToken))
			require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		})
		wg.Go(func() { requireReceived(t, b.deliver(t, payload), false) })
		wg.Wait()

		require.Equal(t, "ignored", b.ledger(t, late.ID).Outcome, "iteration %d", i)
		testkit.WaitFor(t, "the cancel's refund", func() bool { _, n := refundedAtStripe(fake, pi); return n == 1 })
		b.deliverAll(t, fake)
		require.Contains(t, []string{"cancelled", "refunded"}, b.booking(t, bk.Id).Status)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", bk.Id))
		total, n := refundedAtStripe(fake, pi)
		require.Equal(t, 1, n, "refunded once")
		require.LessOrEqual(t, total, bk.AmountTotal)
	}
}

// TestRace_CustomerCancelAgainstOperatorRefund_NeverMoreThanCaptured: an
// operator's refund and the customer's cancel race; Stripe never holds more
// refunded than was captured, and the cancel's own refund is made at most
// once.
func TestRace_CustomerCancelAgainstOperatorRefund_NeverMoreThanCaptured(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withJobs(), withHoldCaps(-1, -1))
	b.setPolicy(t, 24*10, 24, 50)
	ops := b.as(t, admin.RoleOps)
	for i := range 12 {
		bk, session := b.paidAt(t, fake, daysAhead(2+i, 10), daysAhead(2+i, 11))
		pi := fake.Session(session).PaymentIntent
		var wg sync.WaitGroup
		wg.Go(func() {
			resp := b.cancelWith(t, bk.Id, bearer(bk.ManageToken))
			require.Contains(t, []int{http.StatusOK, http.StatusConflict}, resp.StatusCode(), string(resp.Body))
		})
		wg.Go(func() {
			resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, ops)
			require.NoError(t, err)
			require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, resp.StatusCode(), string(resp.Body))
		})
		wg.Wait()
		b.refundJobsDone(t)
		b.deliverAll(t, fake)
		total, _ := refundedAtStripe(fake, pi)
		require.Equal(t, bk.AmountTotal, total, "iteration %d: the operator's refund takes what remains, never more", i)
		cancelRefunds := cancelRefundsAt(fake, pi)
		require.LessOrEqual(t, cancelRefunds, 1, "the cancel's refund is made at most once")
		require.Equal(t, "refunded", b.booking(t, bk.Id).Status)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'confirmed'", bk.Id))
	}
}

// TestRace_CustomerCancelAgainstRefundFailure_OperatorSignalNoAutomaticRetry:
// an operator's earlier refund fails at Stripe while the customer cancels.
// Whatever the order, nothing is refunded twice or beyond what was
// captured, the booking is never confirmed again, a failure is the
// operator's signal (outcome review) and no refund is retried on its own.
func TestRace_CustomerCancelAgainstRefundFailure_OperatorSignalNoAutomaticRetry(t *testing.T) {
	t.Parallel()
	fake := testkit.NewStripeFake(t)
	b := setup(t, withStripe(fake.URL), withJobs(), withHoldCaps(-1, -1))
	b.setPolicy(t, 24*10, 24, 50)
	ops := b.as(t, admin.RoleOps)
	for i := range 10 {
		bk, session := b.paidAt(t, fake, daysAhead(2+i, 10), daysAhead(2+i, 11))
		pi := fake.Session(session).PaymentIntent
		resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, ops)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, resp.StatusCode(), string(resp.Body))
		var refundID string
		for _, r := range fake.Refunds() {
			if r.PaymentIntent == pi {
				refundID = r.ID
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			resp := b.cancelWith(t, bk.Id, bearer(bk.ManageToken))
			require.Contains(t, []int{http.StatusOK, http.StatusConflict}, resp.StatusCode(), string(resp.Body))
		})
		wg.Go(func() {
			fake.SetRefundStatus(refundID, "failed")
			b.deliverAll(t, fake)
		})
		wg.Wait()
		b.refundJobsDone(t)
		b.deliverAll(t, fake)

		row := b.booking(t, bk.Id)
		require.NotEqual(t, "confirmed", row.Status, "iteration %d", i)
		require.NotNil(t, row.RefundFailedAt)
		require.Positive(t, b.db.Count(t, "SELECT count(*) FROM payment_events WHERE booking_id = $1 AND outcome = 'review'", bk.Id))
		total, _ := refundedAtStripe(fake, pi)
		require.LessOrEqual(t, total, bk.AmountTotal)
		cancelRefunds := cancelRefundsAt(fake, pi)
		require.LessOrEqual(t, cancelRefunds, 1)
		before := len(fake.Refunds())
		rec, body := b.do(t, http.MethodPost, "/v1/admin/reconcile", "", ops)
		require.Equal(t, http.StatusOK, rec.StatusCode, string(body))
		require.Equal(t, before, len(fake.Refunds()), "a failed refund is never retried automatically")
	}
}

func TestAdminResources_CancellationPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	adminSession := b.as(t, admin.RoleAdmin)

	resp, body := b.do(t, "POST", "/v1/admin/resources", resourceBody("policy-default"), adminSession)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	require.Equal(t, genapi.CancellationPolicy{FullRefundHoursBefore: 24}, decodeBytes[genapi.Resource](t, body).CancellationPolicy,
		"default: a full refund up to 24 h before, none after")

	withPolicy := strings.Replace(resourceBody("policy-set"), `"horizon_days":30`,
		`"horizon_days":30,"cancellation_policy":{"full_refund_hours_before":72,"partial_refund_hours_before":24,"partial_refund_percent":50}`, 1)
	resp, body = b.do(t, "POST", "/v1/admin/resources", withPolicy, adminSession)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	created := decodeBytes[genapi.Resource](t, body)
	require.Equal(t, genapi.CancellationPolicy{FullRefundHoursBefore: 72, PartialRefundHoursBefore: 24, PartialRefundPercent: 50}, created.CancellationPolicy)

	patch := genapi.ResourcePatch{CancellationPolicy: &genapi.CancellationPolicy{FullRefundHoursBefore: 48, PartialRefundHoursBefore: 2, PartialRefundPercent: 10}}
	patched, err := b.client.UpdateAdminResourceWithResponse(t.Context(), created.Id, patch, adminSession)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, patched.StatusCode(), string(patched.Body))
	require.Equal(t, *patch.CancellationPolicy, patched.JSON200.CancellationPolicy)
	require.Len(t, b.audited(t, "resource.update", created.Id), 1, "audited like every admin action")

	for name, policy := range map[string]string{
		"PartialAfterFull": `{"full_refund_hours_before":2,"partial_refund_hours_before":24,"partial_refund_percent":50}`,
		"PercentOver100":   `{"full_refund_hours_before":24,"partial_refund_hours_before":2,"partial_refund_percent":101}`,
		"NegativeHours":    `{"full_refund_hours_before":-1,"partial_refund_hours_before":0,"partial_refund_percent":0}`,
		"MissingField":     `{"full_refund_hours_before":24}`,
	} {
		t.Run("ErrInvalid_"+name, func(t *testing.T) {
			resp, out := b.do(t, "PATCH", "/v1/admin/resources/"+created.Id.String(), `{"cancellation_policy":`+policy+`}`, adminSession)
			requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode, out)
		})
	}
}
