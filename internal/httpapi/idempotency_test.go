package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/testkit"
)

func withKey(key string) *genapi.CreateBookingParams {
	return &genapi.CreateBookingParams{IdempotencyKey: &key}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()

	t.Run("ReplaysTheFirstResponse", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		req := bookingRequest(b.resource.ID, at(10), at(12))
		first, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-1"), req)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, first.StatusCode())
		require.Empty(t, first.HTTPResponse.Header.Get("Idempotent-Replayed"))

		again, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-1"), req)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, again.StatusCode())
		require.Equal(t, "true", again.HTTPResponse.Header.Get("Idempotent-Replayed"))
		require.JSONEq(t, string(first.Body), string(again.Body))
		require.NotEqual(t, first.HTTPResponse.Header.Get("X-Request-Id"), again.HTTPResponse.Header.Get("X-Request-Id"))
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM bookings"))
	})

	t.Run("ReplaysAnExpectedFailureToo", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.hold(t, at(10), at(12))
		req := bookingRequest(b.resource.ID, at(10), at(12))
		first, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-409"), req)
		require.NoError(t, err)
		require.Equal(t, http.StatusConflict, first.StatusCode())
		again, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-409"), req)
		require.NoError(t, err)
		require.Equal(t, http.StatusConflict, again.StatusCode())
		require.Equal(t, "true", again.HTTPResponse.Header.Get("Idempotent-Replayed"))
	})

	t.Run("ReplayedErrorNamesTheNewRequestID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.hold(t, at(10), at(12))
		req := bookingRequest(b.resource.ID, at(10), at(12))
		first, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-409-id"), req)
		require.NoError(t, err)
		again, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-409-id"), req)
		require.NoError(t, err)
		require.Equal(t, "true", again.HTTPResponse.Header.Get("Idempotent-Replayed"))
		require.NotNil(t, first.JSON409)
		require.NotNil(t, again.JSON409)
		require.Equal(t, first.HTTPResponse.Header.Get("X-Request-Id"), first.JSON409.Error.RequestId)
		require.Equal(t, again.HTTPResponse.Header.Get("X-Request-Id"), again.JSON409.Error.RequestId,
			"the replayed body names the request that received it, as its X-Request-Id does")
		require.NotEqual(t, first.JSON409.Error.RequestId, again.JSON409.Error.RequestId)
		require.Equal(t, first.JSON409.Error.Code, again.JSON409.Error.Code)
		require.Equal(t, first.JSON409.Error.Message, again.JSON409.Error.Message)
	})

	t.Run("ErrIdempotencyKeyReused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-2"), bookingRequest(b.resource.ID, at(10), at(12)))
		require.NoError(t, err)
		other, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-2"), bookingRequest(b.resource.ID, at(14), at(15)))
		require.NoError(t, err)
		requireError(t, http.StatusUnprocessableEntity, "idempotency_key_reused", other.StatusCode(), other.Body)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM bookings"))

		// The same key on another route is another request too.
		bk := b.hold(t, at(16), at(17))
		key := "key-2"
		resp, err := b.client.CreateCheckoutWithResponse(t.Context(), bk.Id, &genapi.CreateCheckoutParams{IdempotencyKey: &key})
		require.NoError(t, err)
		requireError(t, http.StatusUnprocessableEntity, "idempotency_key_reused", resp.StatusCode(), resp.Body)
	})

	t.Run("ErrIdempotencyKeyInUse", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		req := bookingRequest(b.resource.ID, at(10), at(12))
		// The first request is still being served (by this or another
		// instance): its key is claimed, with no response yet.
		first, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-3"), req)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, first.StatusCode())
		testkit.IdempotencyKeyInFlight(t, b.db, "key-3", time.Now().Add(time.Minute))

		again, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-3"), req)
		require.NoError(t, err)
		requireError(t, http.StatusConflict, "idempotency_key_in_use", again.StatusCode(), again.Body)

		// If the instance serving it died after creating the booking, the
		// lease lapses and the retry answers with that booking, from the
		// recovery point written in the booking's own transaction: it never
		// holds a second slot, and never answers its own hold with a 409.
		testkit.IdempotencyKeyInFlight(t, b.db, "key-3", time.Now().Add(-time.Second))
		retry, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-3"), req)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, retry.StatusCode(), string(retry.Body))
		require.Equal(t, first.JSON201.Id, retry.JSON201.Id)
		require.Equal(t, 1, b.db.Count(t, "SELECT count(*) FROM bookings"))

		// That answer is now the stored one.
		replay, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-3"), req)
		require.NoError(t, err)
		require.Equal(t, "true", replay.HTTPResponse.Header.Get("Idempotent-Replayed"))
		require.Equal(t, first.JSON201.Id, replay.JSON201.Id)
	})

	t.Run("ServerErrorsAreNotStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		req := bookingRequest(b.resource.ID, at(10), at(12))
		b.db.Exec(t, "ALTER TABLE bookings RENAME TO bookings_away")
		failed, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-5xx"), req)
		require.NoError(t, err)
		requireError(t, http.StatusInternalServerError, "internal_error", failed.StatusCode(), failed.Body)
		require.NotContains(t, string(failed.Body), "bookings", "no SQL detail reaches the client")
		require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM idempotency_keys"))

		b.db.Exec(t, "ALTER TABLE bookings_away RENAME TO bookings")
		retry, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-5xx"), req)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, retry.StatusCode())
	})

	t.Run("KeyExpiresAfter24Hours", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-old"), bookingRequest(b.resource.ID, at(10), at(11)))
		require.NoError(t, err)
		testkit.AgeIdempotencyKeys(t, b.db, 24*time.Hour+time.Second)
		fresh, err := b.client.CreateBookingWithResponse(t.Context(), withKey("key-old"), bookingRequest(b.resource.ID, at(12), at(13)))
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, fresh.StatusCode())
	})

	t.Run("ErrKeyTooLong", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, err := b.client.CreateBookingWithResponse(t.Context(), withKey(strings.Repeat("k", 256)), bookingRequest(b.resource.ID, at(10), at(11)))
		require.NoError(t, err)
		requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode(), resp.Body)
	})
}

// TestIdempotencyKeyIsPerOperator: two operators who choose the same key
// each get their own first response, never the other's.
func TestIdempotencyKeyIsPerOperator(t *testing.T) {
	t.Parallel()
	b := setup(t, withJobs()) // a reconcile pass runs as a job
	key := "shared-key"
	params := &genapi.RunAdminReconcileParams{IdempotencyKey: &key}
	alice, bob := b.as(t, admin.RoleOps), b.as(t, admin.RoleOps)

	first, err := b.client.RunAdminReconcileWithResponse(t.Context(), params, alice)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, first.StatusCode(), string(first.Body))
	again, err := b.client.RunAdminReconcileWithResponse(t.Context(), params, alice)
	require.NoError(t, err)
	require.Equal(t, "true", again.HTTPResponse.Header.Get("Idempotent-Replayed"))

	other, err := b.client.RunAdminReconcileWithResponse(t.Context(), params, bob)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, other.StatusCode(), string(other.Body))
	require.Empty(t, other.HTTPResponse.Header.Get("Idempotent-Replayed"), "bob's request ran: the key is his own")
	require.Equal(t, 2, b.db.Count(t, "SELECT count(*) FROM idempotency_keys WHERE key = $1", key))
}
