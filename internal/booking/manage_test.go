package booking_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/booking"
)

// TestDecide_CustomerAfterPaying walks SPEC §2.1's rows for a paid
// booking's customer (§3.1).
func TestDecide_CustomerAfterPaying(t *testing.T) {
	t.Parallel()
	now := time.Now()
	start := now.Add(72 * time.Hour)
	confirmed := booking.Booking{Status: booking.Confirmed, AmountTotal: 9000, Currency: "eur", StartsAt: start, HasPaymentIntent: true}
	cancelledPaid := booking.Booking{Status: booking.Cancelled, AmountTotal: 9000, Currency: "eur", StartsAt: start, HasPaymentIntent: true, CancelledAfterPayment: true}
	paid := booking.Fact{Kind: booking.SessionPaid, AmountTotal: 9000, Currency: "eur"}

	t.Run("CustomerCancelPaid_Confirmed_Cancelled", func(t *testing.T) {
		d := booking.Decide(confirmed, booking.Fact{Kind: booking.CustomerCancelPaid, At: now})
		require.Equal(t, booking.Cancelled, d.To)
		require.Empty(t, d.IfSlotTaken)
	})
	t.Run("CustomerCancelPaid_Started_Ignored", func(t *testing.T) {
		d := booking.Decide(confirmed, booking.Fact{Kind: booking.CustomerCancelPaid, At: start})
		require.Equal(t, booking.Confirmed, d.To)
	})
	t.Run("CustomerCancelPaid_PendingPayment_Ignored", func(t *testing.T) {
		b := confirmed
		b.Status = booking.PendingPayment
		require.Equal(t, booking.PendingPayment, booking.Decide(b, booking.Fact{Kind: booking.CustomerCancelPaid, At: now}).To)
	})
	t.Run("CompletionAfterCancelAfterPayment_Ignored_NeverALatePayment", func(t *testing.T) {
		d := booking.Decide(cancelledPaid, paid)
		require.Equal(t, booking.Cancelled, d.To)
		require.Equal(t, booking.Ignored, d.Outcome)
	})
	t.Run("CompletionAfterCancelBeforePayment_StillALatePayment", func(t *testing.T) {
		b := cancelledPaid
		b.CancelledAfterPayment = false
		require.Equal(t, booking.Confirmed, booking.Decide(b, paid).To)
	})
	t.Run("ChargeRefundedFull_CancelledAfterPayment_Refunded", func(t *testing.T) {
		d := booking.Decide(cancelledPaid, booking.Fact{Kind: booking.ChargeRefunded, FullRefund: true, At: now})
		require.Equal(t, booking.Refunded, d.To)
	})
	t.Run("ChargeRefundedPartial_CancelledAfterPayment_StaysCancelled", func(t *testing.T) {
		require.Equal(t, booking.Cancelled, booking.Decide(cancelledPaid, booking.Fact{Kind: booking.ChargeRefunded, At: now}).To)
	})
	t.Run("RefundFailed_CancelledAfterPayment_StaysCancelled_Review", func(t *testing.T) {
		d := booking.Decide(cancelledPaid, booking.Fact{Kind: booking.RefundFailed, RefundStatus: "failed", At: now})
		require.Equal(t, booking.Cancelled, d.To)
		require.Equal(t, booking.Review, d.Outcome)
		require.NotNil(t, d.RefundFailedAt, "remembered, so nothing requests it again automatically")
	})
	t.Run("Reschedule_Confirmed_Applied", func(t *testing.T) {
		d := booking.Decide(confirmed, booking.Fact{Kind: booking.CustomerReschedule, At: now})
		require.Equal(t, booking.Applied, d.Outcome)
		require.Equal(t, booking.Confirmed, d.To)
	})
	t.Run("Reschedule_Cancelled_Ignored", func(t *testing.T) {
		require.Equal(t, booking.Ignored, booking.Decide(cancelledPaid, booking.Fact{Kind: booking.CustomerReschedule, At: now}).Outcome)
	})
	t.Run("OperatorRefund_CancelledAfterPayment_Refundable", func(t *testing.T) {
		require.NoError(t, booking.Refundable(cancelledPaid))
		b := cancelledPaid
		b.CancelledAfterPayment = false
		require.Equal(t, apperr.InvalidState, apperr.CodeOf(booking.Refundable(b)))
	})
}

func TestPolicyRefund(t *testing.T) {
	t.Parallel()
	start := time.Date(2027, 1, 10, 10, 0, 0, 0, time.UTC)
	p := booking.Policy{FullHours: 48, PartialHours: 12, PartialPercent: 33}
	for _, c := range []struct {
		name string
		at   time.Time
		want int64
	}{
		{"FullUpToTheFullCutoff", start.Add(-48 * time.Hour), 1000},
		{"PartialAfterIt_RoundedDown", start.Add(-48*time.Hour + time.Second), 330},
		{"PartialUpToThePartialCutoff", start.Add(-12 * time.Hour), 330},
		{"NothingAfterIt", start.Add(-12*time.Hour + time.Second), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, p.Refund(1000, start, c.at))
		})
	}
	t.Run("Default_FullUpTo24HoursNoneAfter", func(t *testing.T) {
		require.Equal(t, int64(1000), booking.DefaultPolicy.Refund(1000, start, start.Add(-24*time.Hour)))
		require.Zero(t, booking.DefaultPolicy.Refund(1000, start, start.Add(-23*time.Hour)))
	})
	t.Run("NeverMoreThanTheAmount", func(t *testing.T) {
		for pct := 0; pct <= 100; pct++ {
			got := booking.Policy{FullHours: 10, PartialHours: 5, PartialPercent: pct}.Refund(999, start, start.Add(-6*time.Hour))
			require.True(t, got >= 0 && got <= 999)
		}
	})
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]booking.Policy{
		"NegativeHours":           {FullHours: -1},
		"PartialAfterFull":        {FullHours: 10, PartialHours: 11},
		"PercentOver100":          {FullHours: 10, PartialPercent: 101},
		"NegativePercent":         {FullHours: 10, PartialPercent: -1},
		"BeyondTheLongestHorizon": {FullHours: 17521},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, apperr.InvalidRequest, apperr.CodeOf(p.Validate()))
		})
	}
	require.NoError(t, booking.DefaultPolicy.Validate())
}
