package testkit

import (
	"testing"
	"time"
)

// WaitTimeout is how long WaitFor waits: far beyond what any condition takes
// on an idle machine, so that a loaded one (two cores, several test binaries
// and compilers at once) never fails a test that is right.
const WaitTimeout = 2 * time.Minute

// WaitFor polls cond until it holds, failing the test after WaitTimeout. Use
// it for work that happens after the call under test returns (River jobs,
// another instance, a process starting), never a sleep.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testkit: gave up after %s waiting for %s", WaitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
