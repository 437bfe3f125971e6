// Package stripehook verifies Stripe webhook signatures.
//
// stripe-go's webhook package is not used for verification because its
// tolerance check only looks into the past and its ConstructEvent rejects
// events of another API version; slotpay needs neither behaviour (SPEC §4).
// Tests sign with stripe-go's own GenerateTestSignedPayload, so the two agree.
package stripehook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Reasons a signature is refused. They are logged and counted, never shown
// beyond "invalid signature".
var (
	ErrMissingHeader   = errors.New("Stripe-Signature header missing")
	ErrMalformedHeader = errors.New("Stripe-Signature header malformed")
	ErrNoV1Signature   = errors.New("Stripe-Signature has no v1 signature")
	ErrTooOld          = errors.New("signature timestamp older than the tolerance")
	ErrTooNew          = errors.New("signature timestamp further in the future than the tolerance")
	ErrNoMatch         = errors.New("no signature matches any webhook secret")
)

// maxHeaderLen bounds the work an attacker can make us do per request.
const maxHeaderLen = 4096

// Header is a parsed Stripe-Signature header.
type Header struct {
	Timestamp time.Time
	unix      string
	V1        [][]byte
}

// ParseHeader reads "t=<unix>,v1=<hex>[,v1=<hex>…]"; other schemes (v0) are
// skipped as Stripe documents.
func ParseHeader(value string) (Header, error) {
	if value == "" {
		return Header{}, ErrMissingHeader
	}
	if len(value) > maxHeaderLen {
		return Header{}, ErrMalformedHeader
	}
	var h Header
	for part := range strings.SplitSeq(value, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Header{}, ErrMalformedHeader
		}
		switch key {
		case "t":
			if h.unix != "" {
				return Header{}, ErrMalformedHeader
			}
			sec, err := strconv.ParseInt(val, 10, 64)
			if err != nil || sec <= 0 {
				return Header{}, ErrMalformedHeader
			}
			h.unix, h.Timestamp = val, time.Unix(sec, 0)
		case "v1":
			sig, err := hex.DecodeString(val)
			if err != nil || len(sig) != sha256.Size {
				continue // an unreadable signature cannot match; others may
			}
			h.V1 = append(h.V1, sig)
		}
	}
	if h.unix == "" {
		return Header{}, ErrMalformedHeader
	}
	if len(h.V1) == 0 {
		return Header{}, ErrNoV1Signature
	}
	return h, nil
}

// CheckHeader is what can be known of a delivery before its body is read:
// the header is well formed, has a v1 signature, and was signed within
// tolerance of now, in either direction. A delivery that fails it can be
// refused without reading a byte of its body.
func CheckHeader(header string, tolerance time.Duration, now time.Time) (Header, error) {
	h, err := ParseHeader(header)
	if err != nil {
		return Header{}, err
	}
	if age := now.Sub(h.Timestamp); age > tolerance {
		return Header{}, ErrTooOld
	} else if age < -tolerance {
		return Header{}, ErrTooNew
	}
	return h, nil
}

// Verify checks that payload was signed at a time within tolerance of now, in
// either direction, by any of secrets (several during a rotation).
func Verify(payload []byte, header string, secrets []string, tolerance time.Duration, now time.Time) error {
	h, err := CheckHeader(header, tolerance, now)
	if err != nil {
		return err
	}
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(h.unix))
		mac.Write([]byte("."))
		mac.Write(payload)
		expected := mac.Sum(nil)
		for _, sig := range h.V1 {
			if hmac.Equal(expected, sig) {
				return nil
			}
		}
	}
	return ErrNoMatch
}
