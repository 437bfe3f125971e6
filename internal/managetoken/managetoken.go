// Package managetoken issues and checks the customer's manage_token (SPEC
// §3.1): the secret that lets whoever booked manage a paid booking.
//
// A token is derived, not stored: HMAC-SHA256 under the deployment's
// MANAGE_TOKEN_KEY of the booking id and 16 random bytes kept with the
// booking (its salt). The database holds only the salt and the token's
// SHA-256, so a copy of the database alone manages nothing; the key alone
// names no booking. Deriving lets the confirmation e-mail, sent long after
// the 201 that first returned the token, carry the same token in its manage
// link without keeping a secret at rest.
package managetoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// KeyMinBytes is the least key length accepted: as long as the HMAC's
// output, so the key is never the weaker part.
const KeyMinBytes = 32

// saltBytes of randomness per booking: with the key secret, a token carries
// 256 bits an attacker cannot predict, and a fresh salt re-issues a token.
const saltBytes = 16

// ErrInvalid is any token that does not match: missing, malformed or wrong
// tokens are told apart by nobody.
var ErrInvalid = errors.New("manage token does not match")

// Issuer derives tokens under one key.
type Issuer struct{ key []byte }

// NewIssuer returns an Issuer for key, which must be at least KeyMinBytes.
func NewIssuer(key []byte) (*Issuer, error) {
	if len(key) < KeyMinBytes {
		return nil, fmt.Errorf("manage token key: %d bytes, want at least %d", len(key), KeyMinBytes)
	}
	return &Issuer{key: append([]byte(nil), key...)}, nil
}

// Secret is what a booking keeps of its token.
type Secret struct {
	Salt []byte // 16 random bytes
	Hash []byte // SHA-256 of the token
}

// Issue makes a new token for bookingID: the token to hand to the customer
// once, and the Secret to store with the booking.
func (i *Issuer) Issue(bookingID uuid.UUID) (string, Secret, error) {
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", Secret{}, fmt.Errorf("manage token salt: %w", err)
	}
	token := i.Derive(bookingID, salt)
	return token, Secret{Salt: salt, Hash: Hash(token)}, nil
}

// Derive returns the token of bookingID with salt: the same token Issue
// returned, for the manage link of a later e-mail.
func (i *Issuer) Derive(bookingID uuid.UUID, salt []byte) string {
	mac := hmac.New(sha256.New, i.key)
	mac.Write([]byte("slotpay manage_token v1\x00"))
	mac.Write(bookingID[:])
	mac.Write(salt)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Hash is the stored form of a token.
func Hash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// Check compares a presented token with the stored hash in constant time.
// A booking without a hash (made before tokens existed) matches nothing.
func Check(presented string, storedHash []byte) error {
	if presented == "" || len(storedHash) != sha256.Size {
		return ErrInvalid
	}
	if subtle.ConstantTimeCompare(Hash(presented), storedHash) != 1 {
		return ErrInvalid
	}
	return nil
}
