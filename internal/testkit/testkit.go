// Package testkit is the shared test support of slotpay: a private PostgreSQL
// database per test cloned from a migrated template, a stripe-mock process per
// test binary, and Stripe-signed webhook events built from Stripe's own
// fixtures.
//
// Every test package that uses it calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
package testkit

import (
	"math/rand/v2"
	"os"
	"testing"
)

// Main runs the tests, then stops what the run started, so that a test binary
// never leaves a stripe-mock process behind.
func Main(m *testing.M) {
	code := m.Run()
	stopStripeMock()
	closeAdminPool()
	os.Exit(code)
}

const alphanumerics = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// RandomID returns prefix followed by 24 random alphanumerics, the shape of a
// Stripe object id ("cs_test_…", "pi_…").
func RandomID(prefix string) string {
	b := make([]byte, 24)
	for i := range b {
		b[i] = alphanumerics[rand.IntN(len(alphanumerics))]
	}
	return prefix + string(b)
}
