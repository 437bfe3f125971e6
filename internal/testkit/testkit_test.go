package testkit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestNewDatabase(t *testing.T) {
	t.Parallel()

	t.Run("IsMigrated", func(t *testing.T) {
		t.Parallel()
		db := testkit.NewDatabase(t)
		for _, table := range []string{"resources", "bookings", "payment_events"} {
			require.Equal(t, 1, db.Count(t,
				"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1", table),
				table)
		}
	})

	t.Run("IsolatesParallelTests", func(t *testing.T) {
		t.Parallel()
		a, b := testkit.NewDatabase(t), testkit.NewDatabase(t)
		require.NotEqual(t, a.Name, b.Name)

		// Raw SQL on purpose: a table only one clone has shows the isolation.
		a.Exec(t, "CREATE TABLE probe (id int)")
		a.Exec(t, "INSERT INTO probe VALUES ($1)", 1)
		require.Equal(t, 1, a.Count(t, "SELECT count(*) FROM probe"))
		require.Zero(t, b.Count(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'probe'"))
	})

	t.Run("URLReachesTheSameDatabase", func(t *testing.T) {
		t.Parallel()
		db := testkit.NewDatabase(t)
		pool, err := database.Open(t.Context(), db.URL)
		require.NoError(t, err)
		t.Cleanup(pool.Close)

		var name string
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&name))
		require.Equal(t, db.Name, name)
	})
}

func TestStripeMock(t *testing.T) {
	t.Parallel()
	sc := testkit.StripeClient(t, testkit.StripeMock(t))

	cs, err := sc.CheckoutSessions.New(&stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		SuccessURL:        stripe.String("https://example.com/success"),
		CancelURL:         stripe.String("https://example.com/cancel"),
		ClientReferenceID: stripe.String("booking-1"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String("eur"),
				UnitAmount:  stripe.Int64(4500),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("Studio A")},
			},
		}},
	})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(cs.ID, "cs_"), cs.ID)
	require.Equal(t, "booking-1", cs.ClientReferenceID)
}

func TestSignatureHeader(t *testing.T) {
	t.Parallel()
	payload := testkit.CheckoutSessionCompleted("cs_test_1", "b1", 4500, "eur").JSON(t)

	t.Run("VerifiesWithStripeGo", func(t *testing.T) {
		t.Parallel()
		header := testkit.SignatureHeader(payload, "whsec_test", time.Now())
		require.NoError(t, webhook.ValidatePayload(payload, header, "whsec_test"))
	})

	t.Run("FailsWithAnotherSecret", func(t *testing.T) {
		t.Parallel()
		header := testkit.SignatureHeader(payload, "whsec_other", time.Now())
		require.Error(t, webhook.ValidatePayload(payload, header, "whsec_test"))
	})

	t.Run("CarriesTheTimestamp", func(t *testing.T) {
		t.Parallel()
		header := testkit.SignatureHeader(payload, "whsec_test", time.Unix(1700000000, 0))
		require.True(t, strings.HasPrefix(header, "t=1700000000,v1="), header)
	})
}

func TestEvent(t *testing.T) {
	t.Parallel()

	t.Run("CheckoutSessionCompletedDecodesWithStripeGo", func(t *testing.T) {
		t.Parallel()
		e := testkit.CheckoutSessionCompleted("cs_test_1", "b1", 4500, "eur")
		var ev stripe.Event
		require.NoError(t, json.Unmarshal(e.JSON(t), &ev))
		require.True(t, strings.HasPrefix(ev.ID, "evt_test_"), ev.ID)
		require.Equal(t, stripe.EventTypeCheckoutSessionCompleted, ev.Type)
		require.Equal(t, stripe.APIVersion, ev.APIVersion)
		require.False(t, ev.Livemode)
		require.EqualValues(t, 1, ev.PendingWebhooks)
		require.WithinDuration(t, time.Now(), time.Unix(ev.Created, 0), time.Minute)

		var cs stripe.CheckoutSession
		require.NoError(t, json.Unmarshal(ev.Data.Raw, &cs))
		require.Equal(t, "cs_test_1", cs.ID)
		require.Equal(t, "b1", cs.ClientReferenceID)
		require.Equal(t, "b1", cs.Metadata["booking_id"])
		require.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, cs.PaymentStatus)
		require.Equal(t, stripe.CheckoutSessionStatusComplete, cs.Status)
		require.Equal(t, stripe.CheckoutSessionModePayment, cs.Mode)
		require.EqualValues(t, 4500, cs.AmountTotal)
		require.Equal(t, stripe.Currency("eur"), cs.Currency)
		require.True(t, strings.HasPrefix(cs.PaymentIntent.ID, "pi_test_"), cs.PaymentIntent.ID)
		require.Greater(t, cs.ExpiresAt, time.Now().Unix())
	})

	t.Run("ObjectOverridesWin", func(t *testing.T) {
		t.Parallel()
		e := testkit.CheckoutSessionCompleted("cs_test_1", "b1", 4500, "eur")
		e.ID, e.Livemode = "evt_fixed", true
		e.Object["payment_status"] = "unpaid"
		e.Object["payment_intent"] = nil

		var ev stripe.Event
		require.NoError(t, json.Unmarshal(e.JSON(t), &ev))
		require.Equal(t, "evt_fixed", ev.ID)
		require.True(t, ev.Livemode)
		var cs stripe.CheckoutSession
		require.NoError(t, json.Unmarshal(ev.Data.Raw, &cs))
		require.True(t, cs.Livemode)
		require.Equal(t, stripe.CheckoutSessionPaymentStatusUnpaid, cs.PaymentStatus)
		require.Nil(t, cs.PaymentIntent)
	})

	t.Run("ChargeRefundedDecodesWithStripeGo", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			refunded int64
			full     bool
		}{{4500, true}, {1000, false}} {
			var ev stripe.Event
			require.NoError(t, json.Unmarshal(testkit.ChargeRefunded("pi_1", 4500, tc.refunded, "eur").JSON(t), &ev))
			require.Equal(t, stripe.EventTypeChargeRefunded, ev.Type)
			var ch stripe.Charge
			require.NoError(t, json.Unmarshal(ev.Data.Raw, &ch))
			require.Equal(t, "pi_1", ch.PaymentIntent.ID)
			require.EqualValues(t, 4500, ch.Amount)
			require.Equal(t, tc.refunded, ch.AmountRefunded)
			require.Equal(t, tc.full, ch.Refunded)
		}
	})

	t.Run("DisputeCreatedDecodesWithStripeGo", func(t *testing.T) {
		t.Parallel()
		var ev stripe.Event
		require.NoError(t, json.Unmarshal(testkit.DisputeCreated("pi_1", 4500, "eur").JSON(t), &ev))
		require.Equal(t, stripe.EventTypeChargeDisputeCreated, ev.Type)
		var dp stripe.Dispute
		require.NoError(t, json.Unmarshal(ev.Data.Raw, &dp))
		require.Equal(t, "pi_1", dp.PaymentIntent.ID)
		require.EqualValues(t, 4500, dp.Amount)
		require.Equal(t, stripe.Currency("eur"), dp.Currency)
	})

	t.Run("IDsAreUnique", func(t *testing.T) {
		t.Parallel()
		a, b := testkit.RandomID("pi_"), testkit.RandomID("pi_")
		require.NotEqual(t, a, b)
		require.Len(t, a, len("pi_")+24)
	})
}
