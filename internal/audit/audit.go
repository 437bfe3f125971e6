// Package audit records operator actions (SPEC §3) in admin_audit, in the
// transaction of the action itself, as rocket-rides-atomic's audit records
// do: a row means the action took effect, and an action that rolled back
// leaves none. Logs may say more; this table is the record.
package audit

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/slotpay/slotpay/gen/db"
)

// Action names what an operator did; the admin_audit table lists the same.
type Action string

const (
	BookingRefund   Action = "booking.refund"
	BookingCancel   Action = "booking.cancel"
	ResourceCreate  Action = "resource.create"
	ResourceUpdate  Action = "resource.update"
	AdminUserCreate Action = "admin_user.create"
	AdminUserUpdate Action = "admin_user.update"
	EndpointCreate  Action = "webhook_endpoint.create"
	EndpointRotate  Action = "webhook_endpoint.rotate"
	EndpointDelete  Action = "webhook_endpoint.delete"
)

// Target is the kind of row an action changed.
type Target string

const (
	TargetBooking   Target = "booking"
	TargetResource  Target = "resource"
	TargetAdminUser Target = "admin_user"
	TargetEndpoint  Target = "webhook_endpoint"
)

// targetOf says what each action acts on, so a caller names the action and
// the row, never a mismatched pair.
var targetOf = map[Action]Target{
	BookingRefund:   TargetBooking,
	BookingCancel:   TargetBooking,
	ResourceCreate:  TargetResource,
	ResourceUpdate:  TargetResource,
	AdminUserCreate: TargetAdminUser,
	AdminUserUpdate: TargetAdminUser,
	EndpointCreate:  TargetEndpoint,
	EndpointRotate:  TargetEndpoint,
	EndpointDelete:  TargetEndpoint,
}

// Actor is who acted: an operator through the API, in a request, or someone
// at the command line of a server (slotpay admin create-user), who has
// neither.
type Actor struct {
	OperatorID *uuid.UUID
	RequestID  string
}

// Operator is an operator acting through the API in the request requestID.
func Operator(id uuid.UUID, requestID string) Actor {
	return Actor{OperatorID: &id, RequestID: requestID}
}

// CommandLine is the actor of slotpay's own commands.
var CommandLine = Actor{}

// Record writes one audit row for action on targetID, through q, which must
// be the action's own transaction.
func Record(ctx context.Context, q *db.Queries, by Actor, action Action, targetID uuid.UUID) error {
	target, ok := targetOf[action]
	if !ok {
		return fmt.Errorf("audit: unknown action %q", action)
	}
	params := db.AdminAuditInsertParams{
		OperatorID: by.OperatorID, Via: "cli", Action: string(action), TargetType: string(target), TargetID: targetID,
	}
	if by.OperatorID != nil {
		params.Via, params.RequestID = "api", &by.RequestID
	}
	if err := q.AdminAuditInsert(ctx, params); err != nil {
		return fmt.Errorf("audit %s of %s %s: %w", action, target, targetID, err)
	}
	return nil
}
