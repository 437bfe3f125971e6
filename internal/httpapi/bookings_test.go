package httpapi_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

// TestInvariant1_NoOverlappingSlotHoldingBookings: SPEC §8.1. Thirty
// customers racing for one slot get exactly one hold; the others are told the
// slot is taken, and nobody sees a 5xx.
func TestInvariant1_NoOverlappingSlotHoldingBookings(t *testing.T) {
	t.Parallel()

	t.Run("ThirtyConcurrentRequestsForOneSlot", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n = 30
		statuses := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{},
					bookingRequest(b.resource.ID, at(10), at(12)))
				if err == nil {
					statuses[i] = resp.StatusCode()
				}
			})
		}
		close(start)
		wg.Wait()

		count := map[int]int{}
		for _, s := range statuses {
			count[s]++
		}
		require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusConflict: n - 1}, count)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM bookings"))
	})

	t.Run("OverlappingRangesRacing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Every pair of these ranges overlaps in 11:00–12:00.
		ranges := [][2]int{{10, 12}, {11, 12}, {11, 13}, {9, 13}, {11, 14}, {10, 14}}
		var wg sync.WaitGroup
		for _, r := range ranges {
			wg.Go(func() {
				resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{},
					bookingRequest(b.resource.ID, at(r[0]), at(r[1])))
				if err == nil && resp.StatusCode() >= 500 {
					t.Errorf("5xx: %s", resp.Body)
				}
			})
		}
		wg.Wait()
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM bookings"))
	})

	t.Run("ConstraintRefusesEvenWithoutTheApplication", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.hold(t, at(10), at(12))
		// Raw SQL on purpose: the rule is that the database refuses it.
		_, err := b.db.Pool.Exec(t.Context(), `
			INSERT INTO bookings (id, resource_id, customer_email, customer_name, starts_at, ends_at, status,
			                      amount_total, currency, hold_expires_at)
			VALUES ($1, $2, 'x@example.com', 'X', $3, $4, 'confirmed', 4500, 'eur', now())`,
			uuid.New(), b.resource.ID, at(11), at(12))
		require.ErrorContains(t, err, "bookings_no_overlap")
		require.Equal(t, string(genapi.PendingPayment), b.booking(t, bk.Id).Status)
	})

	t.Run("ReleasedSlotCanBeBookedAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := b.hold(t, at(10), at(12))
		testkit.SetBooking(t, b.db, first.Id, testkit.BookingOpts{Status: booking.Cancelled})
		second := b.hold(t, at(10), at(12))
		require.NotEqual(t, first.Id, second.Id)
	})
}

func TestCreateBooking(t *testing.T) {
	t.Parallel()

	t.Run("HoldsTheSlotAtTheServersPrice", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		before := time.Now()
		bk := b.hold(t, at(10), at(13))
		require.Equal(t, genapi.PendingPayment, bk.Status)
		require.Equal(t, int64(3*4500), bk.AmountTotal)
		require.Equal(t, "eur", bk.Currency)
		require.Nil(t, bk.CheckoutSessionId)
		require.WithinRange(t, bk.HoldExpiresAt, before.Add(pendingHold-time.Second), time.Now().Add(pendingHold+time.Second))

		history, err := db.New(b.db.Pool).StatusChangeListByBooking(t.Context(), bk.Id)
		require.NoError(t, err)
		require.Len(t, history, 1)
		require.Nil(t, history[0].FromStatus)
		require.Equal(t, "pending_payment", history[0].ToStatus)
	})

	t.Run("AdjacentSlotsBothSucceed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.hold(t, at(10), at(12))
		b.hold(t, at(12), at(14))
		b.hold(t, at(9), at(10))
	})

	t.Run("ErrSlotUnavailable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.hold(t, at(10), at(12))
		resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, bookingRequest(b.resource.ID, at(11), at(13)))
		require.NoError(t, err)
		requireError(t, http.StatusConflict, "slot_unavailable", resp.StatusCode(), resp.Body)
	})

	t.Run("LapsedHoldWithoutSessionIsReleasedByTheNextBooking", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		lapsed := b.hold(t, at(10), at(12))
		testkit.LapseHold(t, b.db, lapsed.Id)
		b.hold(t, at(11), at(12))
		require.Equal(t, "expired", b.booking(t, lapsed.Id).Status)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND to_status = 'expired' AND cause = 'hold_lapsed'", lapsed.Id))
	})

	t.Run("LapsedHoldWithSessionIsClosedAtStripeFirst", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		b := setup(t, withStripe(fake.URL))
		lapsed, co := b.paidBooking(t, 10)
		testkit.LapseHold(t, b.db, lapsed.Id)

		b.hold(t, at(10), at(11))
		require.Equal(t, "expired", fake.Session(co.CheckoutSessionId).Status)
		require.Equal(t, "expired", b.booking(t, lapsed.Id).Status)
	})

	t.Run("LapsedHoldWhoseSessionWasPaidKeepsTheSlot", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		b := setup(t, withStripe(fake.URL))
		lapsed, co := b.paidBooking(t, 10)
		testkit.LapseHold(t, b.db, lapsed.Id)
		fake.Complete(co.CheckoutSessionId, "paid")

		resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, bookingRequest(b.resource.ID, at(10), at(11)))
		require.NoError(t, err)
		requireError(t, http.StatusConflict, "slot_unavailable", resp.StatusCode(), resp.Body)
		require.Equal(t, "confirmed", b.booking(t, lapsed.Id).Status)
	})

	t.Run("LapsedHoldWithSessionBlocksWhileStripeCannotBeAsked", func(t *testing.T) {
		t.Parallel()
		fake := testkit.NewStripeFake(t)
		b := setup(t, withStripe(fake.URL))
		lapsed, co := b.paidBooking(t, 10)
		testkit.LapseHold(t, b.db, lapsed.Id)
		fake.FailNext("/v1/checkout/sessions/"+co.CheckoutSessionId+"/expire", 500, "")

		// The session might still be paid: the slot is not released.
		resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, bookingRequest(b.resource.ID, at(10), at(11)))
		require.NoError(t, err)
		requireError(t, http.StatusConflict, "slot_unavailable", resp.StatusCode(), resp.Body)
		require.Equal(t, "pending_payment", b.booking(t, lapsed.Id).Status)
		require.Equal(t, "open", fake.Session(co.CheckoutSessionId).Status)
	})

	t.Run("ErrInvalidSlot", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		notice := createResource(t, b.db, func(p *db.ResourceUpsertBySlugParams) { p.MinNoticeMinutes = 48 * 60 })
		cases := map[string]genapi.CreateBookingRequest{
			"EndsBeforeStart": bookingRequest(b.resource.ID, at(12), at(10)),
			"OffGrid":         bookingRequest(b.resource.ID, at(10).Add(30*time.Minute), at(12)),
			"BeforeOpening":   bookingRequest(b.resource.ID, at(8), at(10)),
			"AfterClosing":    bookingRequest(b.resource.ID, at(20), at(22)),
			"TooManySlots":    bookingRequest(b.resource.ID, at(9), at(14)),
			"InThePast":       bookingRequest(b.resource.ID, at(10).AddDate(0, 0, -3), at(11).AddDate(0, 0, -3)),
			"BeyondHorizon":   bookingRequest(b.resource.ID, at(10).AddDate(0, 0, 40), at(11).AddDate(0, 0, 40)),
			"WithinNotice":    bookingRequest(notice.ID, at(10), at(11)),
		}
		for name, req := range cases {
			t.Run(name, func(t *testing.T) {
				resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, req)
				require.NoError(t, err)
				requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode(), resp.Body)
			})
		}
		require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM bookings"))
	})

	t.Run("ErrResourceNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		inactive := createResource(t, b.db, func(p *db.ResourceUpsertBySlugParams) { p.Active = false })
		for name, id := range map[string]uuid.UUID{"Unknown": uuid.Must(uuid.NewV7()), "Inactive": inactive.ID} {
			t.Run(name, func(t *testing.T) {
				resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, bookingRequest(id, at(10), at(11)))
				require.NoError(t, err)
				requireError(t, http.StatusNotFound, "not_found", resp.StatusCode(), resp.Body)
			})
		}
	})

	t.Run("ErrInvalidBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		valid := `"resource_id":"` + b.resource.ID.String() + `","starts_at":"` + at(10).Format(time.RFC3339) +
			`","ends_at":"` + at(11).Format(time.RFC3339) + `"`
		cases := map[string]string{
			"NotJSON":           `{"resource_id":`,
			"ClientSentAPrice":  `{` + valid + `,"customer":{"email":"a@example.com","name":"A"},"amount_total":1}`,
			"MissingCustomer":   `{` + valid + `}`,
			"BadEmail":          `{` + valid + `,"customer":{"email":"not an email","name":"A"}}`,
			"EmptyName":         `{` + valid + `,"customer":{"email":"a@example.com","name":""}}`,
			"ControlCharInName": `{` + valid + `,"customer":{"email":"a@example.com","name":"A\u0007B"}}`,
			"BadTime":           `{"resource_id":"` + b.resource.ID.String() + `","starts_at":"tomorrow","ends_at":"later","customer":{"email":"a@example.com","name":"A"}}`,
			"BadUUID":           `{"resource_id":"studio-a","starts_at":"` + at(10).Format(time.RFC3339) + `","ends_at":"` + at(11).Format(time.RFC3339) + `","customer":{"email":"a@example.com","name":"A"}}`,
		}
		for name, body := range cases {
			t.Run(name, func(t *testing.T) {
				resp, err := b.client.CreateBookingWithBodyWithResponse(t.Context(), &genapi.CreateBookingParams{}, "application/json", strings.NewReader(body))
				require.NoError(t, err)
				requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode(), resp.Body)
			})
		}
		require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM bookings"))
	})

	t.Run("ErrUnsupportedMediaType", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, err := b.client.CreateBookingWithBodyWithResponse(t.Context(), &genapi.CreateBookingParams{}, "text/plain", strings.NewReader(`{}`))
		require.NoError(t, err)
		requireError(t, http.StatusUnsupportedMediaType, "unsupported_media_type", resp.StatusCode(), resp.Body)
	})

	t.Run("ErrPayloadTooLarge", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"pad":"` + strings.Repeat("x", 70<<10) + `"}`
		resp, err := b.client.CreateBookingWithBodyWithResponse(t.Context(), &genapi.CreateBookingParams{}, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large", resp.StatusCode(), resp.Body)
	})
}

func TestGetBooking(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bk := b.hold(t, at(10), at(11))

	resp, err := b.client.GetBookingWithResponse(t.Context(), bk.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode())
	got := resp.JSON200
	require.Equal(t, []any{bk.Id, bk.Status, bk.StartsAt, bk.EndsAt, bk.AmountTotal, bk.HoldExpiresAt},
		[]any{got.Id, got.Status, got.StartsAt, got.EndsAt, got.AmountTotal, got.HoldExpiresAt})
	require.NotContains(t, string(resp.Body), "ada@example.com", "the public booking carries no customer data")
	require.NotContains(t, string(resp.Body), "manage_token", "only the 201 carries the token")

	resp, err = b.client.GetBookingWithResponse(t.Context(), uuid.Must(uuid.NewV7()))
	require.NoError(t, err)
	requireError(t, http.StatusNotFound, "not_found", resp.StatusCode(), resp.Body)
}

func TestAvailability(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.hold(t, at(10), at(12))
	day := at(0)

	resp, err := b.client.GetAvailabilityWithResponse(t.Context(), b.resource.ID, &genapi.GetAvailabilityParams{Date: dateOf(day)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	var starts []int
	for _, s := range resp.JSON200.Slots {
		require.Equal(t, time.Hour, s.EndsAt.Sub(s.StartsAt))
		starts = append(starts, s.StartsAt.Hour())
	}
	require.Equal(t, []int{9, 12, 13, 14, 15, 16, 17, 18, 19, 20}, starts)
	require.Equal(t, "UTC", resp.JSON200.Timezone)

	t.Run("ErrResourceNotFound", func(t *testing.T) {
		resp, err := b.client.GetAvailabilityWithResponse(t.Context(), uuid.Must(uuid.NewV7()), &genapi.GetAvailabilityParams{Date: dateOf(day)})
		require.NoError(t, err)
		requireError(t, http.StatusNotFound, "not_found", resp.StatusCode(), resp.Body)
	})
	t.Run("ErrBadDate", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.url+"/v1/resources/"+b.resource.ID.String()+"/availability?date=tomorrow", nil)
		require.NoError(t, err)
		raw, err := b.http.Do(req)
		require.NoError(t, err)
		defer raw.Body.Close()
		require.Equal(t, http.StatusBadRequest, raw.StatusCode)
		require.Equal(t, "invalid_request", decode[errorEnvelope](t, raw).Error.Code)
	})
}

func TestListResources(t *testing.T) {
	t.Parallel()
	b := setup(t)
	createResource(t, b.db, func(p *db.ResourceUpsertBySlugParams) { p.Active = false })
	resp, err := b.client.ListResourcesWithResponse(t.Context())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode())
	require.Len(t, resp.JSON200.Items, 1, "inactive resources are not listed")
	got := resp.JSON200.Items[0]
	require.Equal(t, b.resource.ID, got.Id)
	require.Equal(t, "09:00", got.OpenTime)
	require.Equal(t, "21:00", got.CloseTime)
	require.Equal(t, int64(4500), got.UnitAmount)
}
