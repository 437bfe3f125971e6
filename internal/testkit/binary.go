package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// MainWithBinary is Main for tests that run slotpay as an operator would: it
// builds cmd/slotpay once into a temporary directory, points *binary at it,
// runs the tests and removes it again.
func MainWithBinary(m *testing.M, binary *string) {
	dir, err := os.MkdirTemp("", "slotpay-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testkit:", err)
		os.Exit(1)
	}
	*binary = filepath.Join(dir, "slotpay")
	build := exec.Command("go", "build", "-o", *binary, "github.com/slotpay/slotpay/cmd/slotpay")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "testkit: build slotpay: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	stopStripeMock()
	closeAdminPool()
	os.RemoveAll(dir)
	os.Exit(code)
}
