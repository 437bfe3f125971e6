// Package faults holds slotpay's proof under faults (SPEC §8 under load):
// PostgreSQL restarted and the server SIGKILLed during a stream of webhook
// deliveries, and three instances sharing one database. The tests run the
// real binary and carry the build tag faults: `make test-faults`, which CI
// runs after `make test`.
package faults
