package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

// holdFrom asks for the hour-long slot at hour on the default resource for
// email, from client (told by X-Forwarded-For, which a server trusting
// loopback believes; an empty client is the socket's 127.0.0.1), and returns
// the status and the Retry-After header.
func (b *testBundle) holdFrom(t *testing.T, client, email string, hour int) (int, string) {
	t.Helper()
	return b.holdOn(t, b.resource.ID, client, email, hour)
}

func (b *testBundle) holdOn(t *testing.T, resource uuid.UUID, client, email string, hour int) (int, string) {
	t.Helper()
	resp := b.holdRequest(t, resource, client, email, hour)
	return resp.StatusCode(), resp.HTTPResponse.Header.Get("Retry-After")
}

// heldFrom is holdFrom for a hold that must be granted: it returns the
// booking's id, for the test to put the hold in another state.
func (b *testBundle) heldFrom(t *testing.T, client, email string, hour int, msgAndArgs ...any) uuid.UUID {
	t.Helper()
	resp := b.holdRequest(t, b.resource.ID, client, email, hour)
	require.Equal(t, http.StatusCreated, resp.StatusCode(), msgAndArgs...)
	return resp.JSON201.Id
}

func (b *testBundle) holdRequest(t *testing.T, resource uuid.UUID, client, email string, hour int) *genapi.CreateBookingResponse {
	t.Helper()
	req := bookingRequest(resource, at(hour), at(hour+1))
	req.Customer.Email = openapi_types.Email(email)
	resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{}, req,
		func(_ context.Context, r *http.Request) error {
			if client != "" {
				r.Header.Set("X-Forwarded-For", client)
			}
			return nil
		})
	require.NoError(t, err)
	if resp.StatusCode() != http.StatusCreated {
		requireError(t, http.StatusTooManyRequests, "rate_limited", resp.StatusCode(), resp.Body)
	}
	return resp
}

// holdsAtOnce sends twelve holds at once, spread over three resources (so
// that the resource's lock does not order them), and counts the answers by
// status.
func (b *testBundle) holdsAtOnce(t *testing.T, client, email func(i int) string) map[int]int {
	t.Helper()
	resources := []uuid.UUID{b.resource.ID, createResource(t, b.db, nil).ID, createResource(t, b.db, nil).ID}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[int]int{}
	)
	for i := range 12 {
		wg.Go(func() {
			status, retry := b.holdOn(t, resources[i%3], client(i), email(i), 9+i/3)
			if status == http.StatusTooManyRequests {
				seconds, err := strconv.Atoi(retry)
				require.NoError(t, err)
				require.InDelta(t, pendingHold.Seconds(), seconds, 10, "until the earliest open hold lapses")
			}
			mu.Lock()
			counts[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return counts
}

func TestInvariant7_NoClientOrEmailHoldsMoreUnpaidSlotsThanTheLimits(t *testing.T) {
	t.Parallel()
	loopback := withTrustedProxies(netipPrefix(t, "127.0.0.0/8"))
	same := func(s string) func(int) string { return func(int) string { return s } }
	each := func(format string) func(int) string { return func(i int) string { return fmt.Sprintf(format, i) } }

	t.Run("OneClientCannotHoldMoreThanItsCapEvenAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withHoldCaps(4, -1))
		counts := b.holdsAtOnce(t, same(""), each("customer%d@example.com"))
		require.Equal(t, map[int]int{http.StatusCreated: 4, http.StatusTooManyRequests: 8}, counts)
		require.Equal(t, 4, b.db.Count(t, "SELECT count(*) FROM bookings WHERE client_addr = '127.0.0.1' AND status = 'pending_payment'"))
	})

	t.Run("OneEmailCannotHoldMoreThanItsCapEvenAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withHoldCaps(-1, 2), loopback)
		// Twelve addresses, one customer whose e-mail is written in
		// another case each time.
		counts := b.holdsAtOnce(t, each("198.51.100.%d"), func(i int) string {
			if i%2 == 0 {
				return "Ada@Example.com"
			}
			return "ada@EXAMPLE.com"
		})
		require.Equal(t, map[int]int{http.StatusCreated: 2, http.StatusTooManyRequests: 10}, counts)
	})

	t.Run("DefaultsAreTenPerClientAndThreePerEmail", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for hour := 9; hour < 12; hour++ {
			status, _ := b.holdFrom(t, "", "ada@example.com", hour)
			require.Equal(t, http.StatusCreated, status)
		}
		status, _ := b.holdFrom(t, "", "ADA@example.com", 12)
		require.Equal(t, http.StatusTooManyRequests, status, "a fourth hold of one e-mail")
		for hour := 12; hour < 19; hour++ {
			status, _ := b.holdFrom(t, "", fmt.Sprintf("c%d@example.com", hour), hour)
			require.Equal(t, http.StatusCreated, status)
		}
		status, _ = b.holdFrom(t, "", "someone.else@example.com", 19)
		require.Equal(t, http.StatusTooManyRequests, status, "an eleventh hold of one client")
	})

	t.Run("RetryAfterIsWhenEnoughHoldsLapse", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withHoldCaps(2, -1))
		c9 := b.heldFrom(t, "", "c9@example.com", 9)
		b.heldFrom(t, "", "c10@example.com", 10)
		testkit.SetBooking(t, b.db, c9, testkit.BookingOpts{HoldExpiresAt: time.Now().Add(100 * time.Second)})
		status, retry := b.holdFrom(t, "", "c11@example.com", 11)
		require.Equal(t, http.StatusTooManyRequests, status)
		seconds, err := strconv.Atoi(retry)
		require.NoError(t, err)
		require.InDelta(t, 100, seconds, 5)
	})

	t.Run("OnlyOpenUnpaidHoldsCount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withHoldCaps(1, 1))
		first := b.heldFrom(t, "", "ada@example.com", 9)
		status, _ := b.holdFrom(t, "", "ada@example.com", 10)
		require.Equal(t, http.StatusTooManyRequests, status)

		testkit.SetBooking(t, b.db, first, testkit.BookingOpts{Status: booking.Confirmed})
		second := b.heldFrom(t, "", "ada@example.com", 10, "a paid booking is not a hold")

		testkit.LapseHold(t, b.db, second)
		status, _ = b.holdFrom(t, "", "ada@example.com", 11)
		require.Equal(t, http.StatusCreated, status, "a lapsed hold is not open")
	})

	t.Run("ARefusedHoldIsNotStoredUnderItsIdempotencyKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withHoldCaps(1, -1))
		held := b.heldFrom(t, "", "a@example.com", 9)
		key := "hold-" + uuid.NewString()
		retry := func() *genapi.CreateBookingResponse {
			resp, err := b.client.CreateBookingWithResponse(t.Context(), &genapi.CreateBookingParams{IdempotencyKey: &key},
				bookingRequest(b.resource.ID, at(10), at(11)))
			require.NoError(t, err)
			return resp
		}
		require.Equal(t, http.StatusTooManyRequests, retry().StatusCode())
		testkit.SetBooking(t, b.db, held, testkit.BookingOpts{Status: booking.Cancelled})
		resp := retry()
		require.Equal(t, http.StatusCreated, resp.StatusCode(), "the retry runs afresh once a place is free")
		require.Empty(t, resp.HTTPResponse.Header.Get("Idempotent-Replayed"))
	})

	t.Run("ClientsBehindATrustedProxyAreCountedApart", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withHoldCaps(1, -1), loopback)
		status, _ := b.holdFrom(t, "198.51.100.1", "a@example.com", 9)
		require.Equal(t, http.StatusCreated, status)
		status, _ = b.holdFrom(t, "198.51.100.1", "b@example.com", 10)
		require.Equal(t, http.StatusTooManyRequests, status)
		status, _ = b.holdFrom(t, "198.51.100.2", "c@example.com", 11)
		require.Equal(t, http.StatusCreated, status)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM bookings WHERE client_addr = '198.51.100.2'"))
	})
}
