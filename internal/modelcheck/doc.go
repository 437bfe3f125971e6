// Package modelcheck holds slotpay's randomized, model-based checker of the
// money paths (its tests are the whole package): many customers book, pay,
// pay asynchronously, let sessions expire, cancel and dispute; operators
// refund and cancel; a Stripe simulator (testkit.StripeFake, faithful mode)
// delivers its events concurrently, out of order and more than once through
// the real webhook handler while reconcile and replay-events run beside it;
// Stripe faults and killed PostgreSQL connections are injected. When the
// system is quiet, every SPEC §8 invariant is checked against the
// simulator's own record of money — and §8.8 against the history: every
// committed status change that calls for a notification has it, with its
// e-mail delivered (here to the log), across restarts and killed
// connections. Customer cancel and reschedule (issue 14) are not among the
// operations yet.
//
//	go test ./internal/modelcheck                          # the short budget of make test
//	MODELCHECK_SEED=17 MODELCHECK_STEPS=23 go test ./internal/modelcheck -run 'TestModel$' -v
//	SOAK_DURATION=30m make soak                            # as long as asked, with a coverage report
//	MODELCHECK_DEFECTS=all go test ./internal/modelcheck   # every scenario (the default)
//	MODELCHECK_DEFECTS=none go test ./internal/modelcheck  # without the scenarios of fixed defects
//
// See model_test.go for the defects each scenario found before its fix.
package modelcheck
