// Command slotpay is the slotpay service and its operator commands (SPEC §7).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // resources name IANA zones; do not depend on the host's zoneinfo
)

const usage = `usage: slotpay <command>

commands:
  serve                   run the HTTP service
  migrate up|down|status  manage the database schema
  seed-demo               create the demo resources (idempotent)
  admin create-user --email E --role readonly|ops|admin [--update]
                          add a back-office user (password from
                          SLOTPAY_ADMIN_PASSWORD, or prompted on a terminal);
                          --update replaces an existing user's role and password
  reconcile               reconcile once with Stripe and print what was done
  replay-events --since D apply events Stripe sent within D that the ledger lacks
  dev setup               create the database if missing, migrate, seed (development)
  dev pay BOOKING_ID      deliver a signed "paid" webhook for a booking (development)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := exitCode(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode reports run's error the way an operator sees it: the usage and
// 2 for a wrong command line, one line and 1 for any other failure.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if _, ok := errors.AsType[usageError](err); ok {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fmt.Fprintln(stderr, "slotpay:", err)
	return 1
}

type usageError struct{}

func (usageError) Error() string { return "usage" }

// run is the whole program, with its environment passed in so that tests can
// drive it like a user would.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, getenv, stdout)
	case "migrate":
		return migrate(ctx, args[1:], getenv, stdout)
	case "seed-demo":
		return seedDemo(ctx, getenv, stdout)
	case "admin":
		return adminCommand(ctx, args[1:], getenv, stdout, stderr)
	case "reconcile":
		return reconcileOnce(ctx, getenv, stdout, stderr)
	case "replay-events":
		return replayEvents(ctx, args[1:], getenv, stdout, stderr)
	case "dev":
		return dev(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{}
}
