package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/audit"
)

// passwordEnv carries an operator's password to `admin create-user` without
// it appearing in the process list or the shell history.
const passwordEnv = "SLOTPAY_ADMIN_PASSWORD"

// adminCommand is `slotpay admin create-user --email E --role R [--update]`.
// An existing email is refused unless --update is given; then its role and
// password are replaced and its sessions ended.
func adminCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create-user" {
		return usageError{}
	}
	fs := flag.NewFlagSet("admin create-user", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "the operator's email address")
	roleName := fs.String("role", "", "readonly, ops or admin")
	update := fs.Bool("update", false, "replace the role and password of an existing user")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 || *email == "" || *roleName == "" {
		return usageError{}
	}
	role, err := admin.ParseRole(*roleName)
	if err != nil {
		return err
	}
	password, err := readPassword(getenv, stderr)
	if err != nil {
		return err
	}
	if err := admin.CheckPasswordStrength(password); err != nil {
		return err
	}

	pool, err := openDatabase(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	var user admin.User
	if *update {
		user, err = admin.UpdateUser(ctx, pool, *email, role, password, audit.CommandLine)
	} else {
		user, err = admin.CreateUser(ctx, pool, *email, role, password, audit.CommandLine)
	}
	if errors.Is(err, admin.ErrUserExists) {
		return fmt.Errorf("%w; pass --update to replace its role and password", err)
	}
	if err != nil {
		return err
	}
	verb := "created"
	if *update {
		verb = "updated (its sessions ended)"
	}
	fmt.Fprintf(stdout, "admin user %s %s with role %s\n", user.ID, verb, user.Role)
	return nil
}

// readPassword takes the password from SLOTPAY_ADMIN_PASSWORD, or prompts
// for it twice on a terminal without echo. Anything else is refused: a
// password piped in would sit in a file or a history somewhere.
func readPassword(getenv func(string) string, stderr io.Writer) (string, error) {
	if p := getenv(passwordEnv); p != "" {
		return p, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", fmt.Errorf("no password: set %s or run on a terminal to be prompted", passwordEnv)
	}
	fmt.Fprint(stderr, "Password: ")
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(stderr, "Repeat password: ")
	second, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(first) != string(second) {
		return "", errors.New("the passwords differ")
	}
	return string(first), nil
}
