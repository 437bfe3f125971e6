package stripehook_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/slotpay/slotpay/internal/stripehook"
)

const tolerance = 300 * time.Second

// sign uses stripe-go's own signing code, so these tests prove slotpay
// verifies exactly what Stripe produces.
func sign(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

func TestVerify(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"id":"evt_1","type":"checkout.session.completed"}`)
	now := time.Now()
	secrets := []string{"whsec_current"}

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, stripehook.Verify(payload, sign(payload, "whsec_current", now), secrets, tolerance, now))
	})
	t.Run("SecondSecretDuringRotation", func(t *testing.T) {
		t.Parallel()
		header := sign(payload, "whsec_next", now)
		require.ErrorIs(t, stripehook.Verify(payload, header, secrets, tolerance, now), stripehook.ErrNoMatch)
		require.NoError(t, stripehook.Verify(payload, header, []string{"whsec_current", "whsec_next"}, tolerance, now))
	})
	t.Run("OneOfSeveralV1Signatures", func(t *testing.T) {
		t.Parallel()
		good := sign(payload, "whsec_current", now)
		header := fmt.Sprintf("%s,v1=%064x", good, 0)
		require.NoError(t, stripehook.Verify(payload, header, secrets, tolerance, now))
	})
	t.Run("WithinToleranceBothWays", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, stripehook.Verify(payload, sign(payload, "whsec_current", now.Add(-tolerance+time.Second)), secrets, tolerance, now))
		require.NoError(t, stripehook.Verify(payload, sign(payload, "whsec_current", now.Add(tolerance-time.Second)), secrets, tolerance, now))
	})

	refused := map[string]struct {
		header  string
		payload []byte
		want    error
	}{
		"Missing":     {"", payload, stripehook.ErrMissingHeader},
		"Malformed":   {"garbage", payload, stripehook.ErrMalformedHeader},
		"NoTimestamp": {"v1=" + fmt.Sprintf("%064x", 1), payload, stripehook.ErrMalformedHeader},
		"NoV1":        {fmt.Sprintf("t=%d,v0=abc", now.Unix()), payload, stripehook.ErrNoV1Signature},
		"WrongSecret": {sign(payload, "whsec_other", now), payload, stripehook.ErrNoMatch},
		"Tampered":    {sign(payload, "whsec_current", now), []byte(`{"id":"evt_1","type":"checkout.session.completed" }`), stripehook.ErrNoMatch},
		"Stale":       {sign(payload, "whsec_current", now.Add(-tolerance-time.Second)), payload, stripehook.ErrTooOld},
		"FarFuture":   {sign(payload, "whsec_current", now.Add(tolerance+time.Second)), payload, stripehook.ErrTooNew},
		"TooLong":     {sign(payload, "whsec_current", now) + ",v1=" + string(make([]byte, 5000)), payload, stripehook.ErrMalformedHeader},
	}
	for name, c := range refused {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.ErrorIs(t, stripehook.Verify(c.payload, c.header, secrets, tolerance, now), c.want)
		})
	}
}

// FuzzParseHeader: no header, however hostile, panics the parser, and a
// header it accepts always has a timestamp and a 32-byte v1 signature.
func FuzzParseHeader(f *testing.F) {
	f.Add("t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd")
	f.Add("t=1700000000,v1=00,v0=ab,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd")
	f.Add("t=,v1=")
	f.Add(",,,=")
	f.Fuzz(func(t *testing.T, header string) {
		h, err := stripehook.ParseHeader(header)
		if err != nil {
			return
		}
		require.False(t, h.Timestamp.IsZero())
		require.NotEmpty(t, h.V1)
		for _, sig := range h.V1 {
			require.Len(t, sig, 32)
		}
	})
}
