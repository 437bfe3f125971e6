//go:build !linux

package testkit

import "syscall"

// dieWithParent has no portable equivalent outside Linux: there, Main's
// cleanup is the only thing that stops stripe-mock.
func dieWithParent() *syscall.SysProcAttr { return nil }
