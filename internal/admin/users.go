// Package admin is slotpay's back-office identity: operator accounts with a
// role, argon2id passwords, sessions held in PostgreSQL, and login
// throttling that every instance shares.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/database"
)

// Role is what an operator may do; each role includes the ones below it.
type Role string

const (
	RoleReadonly Role = "readonly"
	RoleOps      Role = "ops"
	RoleAdmin    Role = "admin"
)

var rank = map[Role]int{RoleReadonly: 1, RoleOps: 2, RoleAdmin: 3}

// ParseRole accepts the three role names.
func ParseRole(s string) (Role, error) {
	if _, ok := rank[Role(s)]; !ok {
		return "", fmt.Errorf("role must be readonly, ops or admin, got %q", s)
	}
	return Role(s), nil
}

// Allows reports whether r includes least. An unknown role allows nothing.
func (r Role) Allows(least Role) bool {
	return rank[r] > 0 && rank[r] >= rank[least]
}

// User is an operator account, without its password hash.
type User struct {
	ID        uuid.UUID
	Email     string
	Role      Role
	CreatedAt time.Time
}

func userOf(row db.AdminUser) User {
	return User{ID: row.ID, Email: row.Email, Role: Role(row.Role), CreatedAt: row.CreatedAt}
}

// ErrUserExists is returned by CreateUser for an email already in use.
var ErrUserExists = errors.New("an admin user with this email exists")

// normalizeEmail lowercases an email address: one account per address,
// whatever its case.
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validEmail(email string) error {
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		return fmt.Errorf("%q is not a plain email address", email)
	}
	return nil
}

// CreateUser adds an operator, recorded in the audit trail as done by by in
// the same transaction. The password must pass CheckPasswordStrength.
func CreateUser(ctx context.Context, pool *pgxpool.Pool, email string, role Role, password string, by audit.Actor) (User, error) {
	return writeUser(ctx, pool, email, role, password, by, audit.AdminUserCreate,
		func(q *db.Queries, email, hash string) (db.AdminUser, error) {
			row, err := q.AdminUserInsert(ctx, db.AdminUserInsertParams{
				ID: uuid.Must(uuid.NewV7()), Email: email, Role: string(role), PasswordHash: hash,
			})
			if database.IsUniqueViolation(err) {
				return row, ErrUserExists
			}
			if err != nil {
				return row, fmt.Errorf("create admin user: %w", err)
			}
			return row, nil
		})
}

// UpdateUser sets an existing operator's role and password, and ends every
// session of theirs: whoever held one may be why the password changes. It
// is recorded in the audit trail in the same transaction.
func UpdateUser(ctx context.Context, pool *pgxpool.Pool, email string, role Role, password string, by audit.Actor) (User, error) {
	return writeUser(ctx, pool, email, role, password, by, audit.AdminUserUpdate,
		func(q *db.Queries, email, hash string) (db.AdminUser, error) {
			row, err := q.AdminUserUpdate(ctx, db.AdminUserUpdateParams{Email: email, Role: string(role), PasswordHash: hash})
			if database.IsNotFound(err) {
				return row, fmt.Errorf("no admin user has the email %s", email)
			}
			if err != nil {
				return row, fmt.Errorf("update admin user: %w", err)
			}
			if err := q.AdminSessionRevokeAllOfUser(ctx, row.ID); err != nil {
				return row, fmt.Errorf("end sessions of admin user %s: %w", row.ID, err)
			}
			return row, nil
		})
}

// writeUser checks and hashes an operator's details (before any
// transaction: hashing takes a while), then, in one transaction, stores
// them with write and records action in the audit trail.
func writeUser(ctx context.Context, pool *pgxpool.Pool, email string, role Role, password string, by audit.Actor, action audit.Action,
	write func(q *db.Queries, email, hash string) (db.AdminUser, error),
) (User, error) {
	email = normalizeEmail(email)
	hash, err := prepare(email, role, password)
	if err != nil {
		return User{}, err
	}
	var user User
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := database.New(tx)
		row, err := write(q, email, hash)
		if err != nil {
			return err
		}
		user = userOf(row)
		return audit.Record(ctx, q, by, action, row.ID)
	})
	return user, err
}

func prepare(email string, role Role, password string) (string, error) {
	if err := validEmail(email); err != nil {
		return "", err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", err
	}
	if err := CheckPasswordStrength(password); err != nil {
		return "", err
	}
	return HashPassword(password)
}
