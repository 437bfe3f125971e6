package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/testkit"
)

// operator signs in a new operator with role and returns their id and what
// makes a client request theirs.
func (b *testBundle) operator(t *testing.T, role admin.Role) (uuid.UUID, genapi.RequestEditorFn) {
	t.Helper()
	email := b.adminUser(t, role)
	resp, err := b.client.AdminLoginWithResponse(t.Context(), genapi.AdminLoginRequest{Email: email, Password: adminPassword})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
	return resp.JSON200.User.Id, withCookie(sessionCookieOf(t, resp.HTTPResponse))
}

type auditRow struct {
	OperatorID *uuid.UUID
	Via        string
	RequestID  *string
}

// audited returns the audit rows of action on target.
func (b *testBundle) audited(t *testing.T, action string, target uuid.UUID) []auditRow {
	t.Helper()
	rows, err := b.db.Pool.Query(t.Context(),
		"SELECT operator_id, via, request_id FROM admin_audit WHERE action = $1 AND target_id = $2 ORDER BY id", action, target)
	require.NoError(t, err)
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		require.NoError(t, rows.Scan(&r.OperatorID, &r.Via, &r.RequestID))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// requireAuditedOnce requires exactly one audit row of action on target,
// by the operator, in the request that answered resp.
func (b *testBundle) requireAuditedOnce(t *testing.T, action string, target, operator uuid.UUID, resp *http.Response) {
	t.Helper()
	rows := b.audited(t, action, target)
	require.Len(t, rows, 1, "%s of %s", action, target)
	require.Equal(t, &operator, rows[0].OperatorID)
	require.Equal(t, "api", rows[0].Via)
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
	require.Equal(t, resp.Header.Get("X-Request-Id"), *rows[0].RequestID)
}

// TestAudit_EachOperatorActionLeavesOneRow: SPEC §3, every operator action is
// written to the audit table in the transaction of its effect, naming the
// operator, the action, the target and the request.
func TestAudit_EachOperatorActionLeavesOneRow(t *testing.T) {
	t.Parallel()

	t.Run("Cancel_RecordedWithTheOperatorInTheHistoryToo", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.hold(t, at(10), at(11))
		id, ops := b.operator(t, admin.RoleOps)
		resp, err := b.client.CancelAdminBookingWithResponse(t.Context(), bk.Id, &genapi.CancelAdminBookingParams{}, ops)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		b.requireAuditedOnce(t, "booking.cancel", bk.Id, id, resp.HTTPResponse)

		detail, err := b.client.GetAdminBookingWithResponse(t.Context(), bk.Id, ops)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, detail.StatusCode(), string(detail.Body))
		last := detail.JSON200.StatusHistory[len(detail.JSON200.StatusHistory)-1]
		require.Equal(t, genapi.BookingStatus("cancelled"), last.ToStatus)
		require.Equal(t, "operator_cancel", last.Cause, "an operator's cancel is not the customer's")
		require.Equal(t, &id, last.OperatorId)
	})

	t.Run("Refund", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.confirmedBooking(t, 10)
		id, ops := b.operator(t, admin.RoleOps)
		resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, ops)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, resp.StatusCode(), string(resp.Body))
		b.requireAuditedOnce(t, "booking.refund", bk.Id, id, resp.HTTPResponse)
	})

	t.Run("ResourceCreateAndChange", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id, adminSession := b.operator(t, admin.RoleAdmin)
		resp, body := b.do(t, "POST", "/v1/admin/resources", resourceBody("studio-audit"), adminSession)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		created := decodeBytes[genapi.Resource](t, body)
		b.requireAuditedOnce(t, "resource.create", created.Id, id, resp)

		patch, err := b.client.UpdateAdminResourceWithResponse(t.Context(), created.Id, genapi.ResourcePatch{Name: new("Studio C")}, adminSession)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, patch.StatusCode(), string(patch.Body))
		b.requireAuditedOnce(t, "resource.update", created.Id, id, patch.HTTPResponse)
	})

	t.Run("UserCreatedAtTheCommandLine", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id, _ := b.operator(t, admin.RoleOps)
		rows := b.audited(t, "admin_user.create", id)
		require.Len(t, rows, 1)
		require.Equal(t, auditRow{Via: "cli"}, rows[0], "no operator and no request at the command line")
	})
}

// TestAudit_FailedActionsLeaveNoRow: an action refused, or rolled back after
// its audit row was written, leaves no row, and the audit row cannot be lost
// while the action stays.
func TestAudit_FailedActionsLeaveNoRow(t *testing.T) {
	t.Parallel()

	t.Run("CancelRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.hold(t, at(10), at(11))
		testkit.SetBooking(t, b.db, bk.Id, testkit.BookingOpts{Status: booking.Confirmed})
		_, ops := b.operator(t, admin.RoleOps)
		resp, err := b.client.CancelAdminBookingWithResponse(t.Context(), bk.Id, &genapi.CancelAdminBookingParams{}, ops)
		require.NoError(t, err)
		requireError(t, http.StatusConflict, "invalid_state", resp.StatusCode(), resp.Body)
		require.Empty(t, b.audited(t, "booking.cancel", bk.Id))
	})

	t.Run("RefundRefusedByStripe", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withStripe(httptestStripeFailure(t)))
		bk := b.hold(t, at(10), at(11))
		testkit.SetBooking(t, b.db, bk.Id, testkit.BookingOpts{Status: booking.Confirmed, PaymentIntentID: testkit.RandomID("pi_")})
		_, ops := b.operator(t, admin.RoleOps)
		resp, err := b.client.RefundAdminBookingWithResponse(t.Context(), bk.Id, &genapi.RefundAdminBookingParams{}, ops)
		require.NoError(t, err)
		requireError(t, http.StatusBadGateway, "payment_provider_error", resp.StatusCode(), resp.Body)
		require.Empty(t, b.audited(t, "booking.refund", bk.Id))
	})

	t.Run("ResourceRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, adminSession := b.operator(t, admin.RoleAdmin)
		resp, err := b.client.UpdateAdminResourceWithResponse(t.Context(), b.resource.ID, genapi.ResourcePatch{SlotMinutes: new(int32(50))}, adminSession)
		require.NoError(t, err)
		requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode(), resp.Body)
		require.Empty(t, b.audited(t, "resource.update", b.resource.ID))
	})

	t.Run("AuditFailure_ActionRolledBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bk := b.hold(t, at(10), at(11))
		_, ops := b.operator(t, admin.RoleOps)
		_, adminSession := b.operator(t, admin.RoleAdmin)
		// Fault injection: a trigger makes the audit INSERT fail.
		b.db.Exec(t, `CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'audit refused'; END $$`)
		b.db.Exec(t, `CREATE TRIGGER fail_audit BEFORE INSERT ON admin_audit FOR EACH ROW EXECUTE FUNCTION fail_audit()`)

		resp, err := b.client.CancelAdminBookingWithResponse(t.Context(), bk.Id, &genapi.CancelAdminBookingParams{}, ops)
		require.NoError(t, err)
		requireError(t, http.StatusInternalServerError, "internal_error", resp.StatusCode(), resp.Body)
		require.Equal(t, "pending_payment", b.booking(t, bk.Id).Status, "no audit row, no cancel")

		resp2, body := b.do(t, "POST", "/v1/admin/resources", resourceBody("studio-unaudited"), adminSession)
		requireError(t, http.StatusInternalServerError, "internal_error", resp2.StatusCode, body)
		require.Equal(t, 0, b.db.Count(t, "SELECT count(*) FROM resources WHERE slug = 'studio-unaudited'"), "no audit row, no resource")
	})
}

// TestAudit_AdminsReadTheTrailPageByPage: GET /v1/admin/audit lists every
// row once, newest first, with the cursor of the other admin lists.
func TestAudit_AdminsReadTheTrailPageByPage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, adminSession := b.operator(t, admin.RoleAdmin)
	var resources []uuid.UUID
	for i := range 3 {
		resp, body := b.do(t, "POST", "/v1/admin/resources", resourceBody("studio-page-"+string(rune('a'+i))), adminSession)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		resources = append(resources, decodeBytes[genapi.Resource](t, body).Id)
	}

	params := genapi.ListAdminAuditParams{Limit: new(int32(2))}
	var all []genapi.AuditEntry
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		resp, err := b.client.ListAdminAuditWithResponse(t.Context(), &params, adminSession)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		all = append(all, resp.JSON200.Items...)
		if resp.JSON200.NextCursor == nil {
			break
		}
		params.Cursor = resp.JSON200.NextCursor
	}
	// The three resources, newest first, then the operator's own account,
	// created at the command line.
	require.Len(t, all, 4)
	for i, r := range resources {
		e := all[len(resources)-1-i]
		require.Equal(t, genapi.AuditEntryAction("resource.create"), e.Action)
		require.Equal(t, r, e.TargetId)
		require.Equal(t, &id, e.OperatorId)
	}
	require.Equal(t, genapi.AuditEntryAction("admin_user.create"), all[3].Action)
	require.Equal(t, id, all[3].TargetId)

	t.Run("Filters", func(t *testing.T) {
		byTarget, err := b.client.ListAdminAuditWithResponse(t.Context(), &genapi.ListAdminAuditParams{TargetId: &resources[1]}, adminSession)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, byTarget.StatusCode(), string(byTarget.Body))
		require.Len(t, byTarget.JSON200.Items, 1)
		require.Equal(t, resources[1], byTarget.JSON200.Items[0].TargetId)

		byOperator, err := b.client.ListAdminAuditWithResponse(t.Context(), &genapi.ListAdminAuditParams{OperatorId: &id}, adminSession)
		require.NoError(t, err)
		require.Len(t, byOperator.JSON200.Items, len(resources), "the account's own creation was nobody's action")
	})
	t.Run("ErrForeignCursor", func(t *testing.T) {
		resp, body := b.do(t, "GET", "/v1/admin/audit?cursor=cGF5bWVudC1ldmVudHM6MQ", "", adminSession)
		requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode, body)
	})
}
