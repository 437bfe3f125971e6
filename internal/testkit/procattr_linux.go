package testkit

import "syscall"

// dieWithParent has the kernel kill stripe-mock when the test binary dies,
// even by SIGKILL (e.g. go test's timeout), when Main never gets to stop it.
// Strictly the signal follows the OS thread that started the child; the Go
// runtime keeps its threads alive, so in practice it follows the process.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
