package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/resource"
)

// Page sizes of the admin lists (SPEC §3).
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

func (h *handlers) AdminLogin(ctx context.Context, req genapi.AdminLoginRequestObject) (genapi.AdminLoginResponseObject, error) {
	session, err := h.s.sessions.Login(ctx, req.Body.Email, req.Body.Password, clientFrom(ctx))
	if err != nil {
		return nil, err
	}
	h.s.logger.LogAttrs(ctx, slog.LevelInfo, "admin signed in",
		slog.String("request_id", requestID(ctx)), slog.String("admin_user_id", session.User.ID.String()))
	cookie := h.s.newSessionCookie(session.Token, admin.SessionLifetime)
	return genapi.AdminLogin200JSONResponse{
		Body:    genapi.AdminSession{User: adminUserOut(session.User), ExpiresAt: session.ExpiresAt.UTC()},
		Headers: genapi.AdminLogin200ResponseHeaders{SetCookie: &cookie},
	}, nil
}

func (h *handlers) AdminLogout(ctx context.Context, _ genapi.AdminLogoutRequestObject) (genapi.AdminLogoutResponseObject, error) {
	token, _ := ctx.Value(sessionTokenKey).(string)
	if err := h.s.sessions.Logout(ctx, token); err != nil {
		return nil, err
	}
	cookie := h.s.newSessionCookie("", -1)
	return genapi.AdminLogout204Response{Headers: genapi.AdminLogout204ResponseHeaders{SetCookie: &cookie}}, nil
}

func (h *handlers) AdminMe(ctx context.Context, _ genapi.AdminMeRequestObject) (genapi.AdminMeResponseObject, error) {
	p, ok := principalFrom(ctx)
	if !ok {
		return nil, errors.New("admin route served without requireRole")
	}
	return genapi.AdminMe200JSONResponse{Body: adminUserOut(p.user)}, nil
}

func (h *handlers) ListAdminBookings(ctx context.Context, req genapi.ListAdminBookingsRequestObject) (genapi.ListAdminBookingsResponseObject, error) {
	p := req.Params
	limit := pageSize(p.Limit)
	params := db.BookingListForAdminParams{
		Status:       (*string)(p.Status),
		ResourceID:   p.ResourceId,
		StartsFrom:   p.From,
		StartsBefore: p.To,
		Disputed:     p.Disputed,
		MaxRows:      limit + 1,
	}
	if p.Cursor != nil {
		after, err := decodeCursor(*p.Cursor, cursorBookings)
		if err != nil {
			return nil, err
		}
		id, err := uuid.Parse(after)
		if err != nil {
			return nil, errBadCursor
		}
		params.AfterID = &id
	}
	rows, err := database.New(h.s.pool).BookingListForAdmin(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list bookings: %w", err)
	}
	var page genapi.AdminBookingPage
	page.Items, page.NextCursor = paginate(rows, limit, cursorBookings, func(b db.Booking) string { return b.ID.String() }, adminBookingOut)
	return genapi.ListAdminBookings200JSONResponse{Body: page}, nil
}

func (h *handlers) GetAdminBooking(ctx context.Context, req genapi.GetAdminBookingRequestObject) (genapi.GetAdminBookingResponseObject, error) {
	q := database.New(h.s.pool)
	b, err := booking.Get(ctx, q, req.Id)
	if err != nil {
		return nil, err
	}
	changes, err := q.StatusChangeListByBooking(ctx, b.ID)
	if err != nil {
		return nil, fmt.Errorf("list status changes: %w", err)
	}
	events, err := q.PaymentEventListByBooking(ctx, &b.ID)
	if err != nil {
		return nil, fmt.Errorf("list payment events: %w", err)
	}
	notifications, err := bookingNotifications(ctx, q, b.ID)
	if err != nil {
		return nil, err
	}
	detail := genapi.AdminBookingDetail{
		Notifications: notifications,
		Booking:       adminBookingOut(b),
		StatusHistory: make([]genapi.StatusChange, len(changes)),
		PaymentEvents: make([]genapi.PaymentEvent, len(events)),
	}
	for i, c := range changes {
		detail.StatusHistory[i] = genapi.StatusChange{
			FromStatus:    (*genapi.BookingStatus)(c.FromStatus),
			ToStatus:      genapi.BookingStatus(c.ToStatus),
			Cause:         c.Cause,
			StripeEventId: c.StripeEventID,
			OperatorId:    c.OperatorID,
			At:            c.At.UTC(),
		}
		if c.FromStartsAt != nil && c.ToStartsAt != nil {
			detail.StatusHistory[i].FromSlot = &genapi.Slot{StartsAt: c.FromStartsAt.UTC(), EndsAt: c.FromEndsAt.UTC()}
			detail.StatusHistory[i].ToSlot = &genapi.Slot{StartsAt: c.ToStartsAt.UTC(), EndsAt: c.ToEndsAt.UTC()}
		}
	}
	for i, e := range events {
		detail.PaymentEvents[i] = paymentEventOut(e)
	}
	return genapi.GetAdminBooking200JSONResponse{Body: detail}, nil
}

func (h *handlers) ListAdminPaymentEvents(ctx context.Context, req genapi.ListAdminPaymentEventsRequestObject) (genapi.ListAdminPaymentEventsResponseObject, error) {
	p := req.Params
	limit := pageSize(p.Limit)
	params := db.PaymentEventListForAdminParams{
		Type:      p.Type,
		Outcome:   (*string)(p.Outcome),
		BookingID: p.BookingId,
		MaxRows:   limit + 1,
	}
	var err error
	if params.AfterID, err = idCursor(p.Cursor, cursorEvents); err != nil {
		return nil, err
	}
	rows, err := database.New(h.s.pool).PaymentEventListForAdmin(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list payment events: %w", err)
	}
	var page genapi.PaymentEventPage
	page.Items, page.NextCursor = paginate(rows, limit, cursorEvents, func(e db.PaymentEvent) string { return strconv.FormatInt(e.ID, 10) }, paymentEventOut)
	return genapi.ListAdminPaymentEvents200JSONResponse{Body: page}, nil
}

func (h *handlers) ListAdminAudit(ctx context.Context, req genapi.ListAdminAuditRequestObject) (genapi.ListAdminAuditResponseObject, error) {
	limit := pageSize(req.Params.Limit)
	after, err := idCursor(req.Params.Cursor, cursorAudit)
	if err != nil {
		return nil, err
	}
	rows, err := database.New(h.s.pool).AdminAuditList(ctx, db.AdminAuditListParams{
		TargetID: req.Params.TargetId, OperatorID: req.Params.OperatorId, AfterID: after, MaxRows: limit + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	var page genapi.AuditEntryPage
	page.Items, page.NextCursor = paginate(rows, limit, cursorAudit, func(a db.AdminAudit) string { return strconv.FormatInt(a.ID, 10) }, auditEntryOut)
	return genapi.ListAdminAudit200JSONResponse{Body: page}, nil
}

// RefundAdminBooking asks Stripe to refund a paid booking in full; the
// booking becomes refunded when charge.refunded arrives.
func (h *handlers) RefundAdminBooking(ctx context.Context, req genapi.RefundAdminBookingRequestObject) (genapi.RefundAdminBookingResponseObject, error) {
	by, err := operatorOf(ctx)
	if err != nil {
		return nil, err
	}
	b, err := h.s.processor.RefundByOperator(ctx, req.Id, by)
	if err != nil {
		return nil, err
	}
	return genapi.RefundAdminBooking202JSONResponse{Body: adminBookingOut(b)}, nil
}

func (h *handlers) CancelAdminBooking(ctx context.Context, req genapi.CancelAdminBookingRequestObject) (genapi.CancelAdminBookingResponseObject, error) {
	by, err := operatorOf(ctx)
	if err != nil {
		return nil, err
	}
	b, err := h.s.checkout.CancelByOperator(ctx, req.Id, by)
	if err != nil {
		return nil, err
	}
	return genapi.CancelAdminBooking200JSONResponse{Body: adminBookingOut(b)}, nil
}

// operatorOf is the operator a request acts for, as the audit trail and
// the booking history name them.
func operatorOf(ctx context.Context) (audit.Actor, error) {
	p, ok := principalFrom(ctx)
	if !ok {
		return audit.Actor{}, errors.New("admin route served without requireRole")
	}
	return audit.Operator(p.user.ID, requestID(ctx)), nil
}

func (h *handlers) RunAdminReconcile(ctx context.Context, _ genapi.RunAdminReconcileRequestObject) (genapi.RunAdminReconcileResponseObject, error) {
	s, err := h.s.reconciler.Run(ctx)
	if err != nil {
		return nil, err
	}
	// Counts of one run: far below int32's range.
	return genapi.RunAdminReconcile200JSONResponse{Body: genapi.ReconcileSummary{
		Skipped:           s.Skipped,
		HoldsExpired:      int32(s.HoldsExpired),
		SessionsExpired:   int32(s.SessionsExpired),
		SessionsCompleted: int32(s.SessionsCompleted),
		ProcessingChecked: int32(s.ProcessingChecked),
		RefundsRequested:  int32(s.RefundsRequested),
		Failures:          int32(s.Failures),
		UnmatchedApplied:  new(int32(s.UnmatchedApplied)),
	}}, nil
}

func (h *handlers) CreateAdminResource(ctx context.Context, req genapi.CreateAdminResourceRequestObject) (genapi.CreateAdminResourceResponseObject, error) {
	in := req.Body
	r := db.Resource{
		Slug: in.Slug, Name: in.Name, Description: deref(in.Description, ""), Timezone: in.Timezone,
		Currency: in.Currency, UnitAmount: in.UnitAmount, SlotMinutes: in.SlotMinutes,
		MinSlots: in.MinSlots, MaxSlots: in.MaxSlots, MinNoticeMinutes: deref(in.MinNoticeMinutes, 0),
		HorizonDays: in.HorizonDays, Active: deref(in.Active, true),
	}
	setPolicy(&r, booking.DefaultPolicy)
	if in.CancellationPolicy != nil {
		setPolicy(&r, policyIn(*in.CancellationPolicy))
	}
	var err error
	if r.OpenTime, err = resource.ParseClock(in.OpenTime); err != nil {
		return nil, err
	}
	if r.CloseTime, err = resource.ParseClock(in.CloseTime); err != nil {
		return nil, err
	}
	by, err := operatorOf(ctx)
	if err != nil {
		return nil, err
	}
	created, err := resource.Create(ctx, h.s.pool, r, by)
	if err != nil {
		return nil, err
	}
	return genapi.CreateAdminResource201JSONResponse{Body: resourceOut(created)}, nil
}

func (h *handlers) UpdateAdminResource(ctx context.Context, req genapi.UpdateAdminResourceRequestObject) (genapi.UpdateAdminResourceResponseObject, error) {
	in := req.Body
	open, err := optionalClock(in.OpenTime)
	if err != nil {
		return nil, err
	}
	closing, err := optionalClock(in.CloseTime)
	if err != nil {
		return nil, err
	}
	by, err := operatorOf(ctx)
	if err != nil {
		return nil, err
	}
	updated, err := resource.Update(ctx, h.s.pool, req.Id, func(r *db.Resource) {
		set(&r.Slug, in.Slug)
		set(&r.Name, in.Name)
		set(&r.Description, in.Description)
		set(&r.Timezone, in.Timezone)
		set(&r.Currency, in.Currency)
		set(&r.UnitAmount, in.UnitAmount)
		set(&r.SlotMinutes, in.SlotMinutes)
		set(&r.MinSlots, in.MinSlots)
		set(&r.MaxSlots, in.MaxSlots)
		set(&r.OpenTime, open)
		set(&r.CloseTime, closing)
		set(&r.MinNoticeMinutes, in.MinNoticeMinutes)
		set(&r.HorizonDays, in.HorizonDays)
		set(&r.Active, in.Active)
		if in.CancellationPolicy != nil {
			setPolicy(r, policyIn(*in.CancellationPolicy))
		}
	}, by)
	if err != nil {
		return nil, err
	}
	return genapi.UpdateAdminResource200JSONResponse{Body: resourceOut(updated)}, nil
}

func policyIn(p genapi.CancellationPolicy) booking.Policy {
	return booking.Policy{
		FullHours: int(p.FullRefundHoursBefore), PartialHours: int(p.PartialRefundHoursBefore),
		PartialPercent: int(p.PartialRefundPercent),
	}
}

// setPolicy stores p in r; resource.Validate checks it with the rest. The
// API's bounds keep every value within int32.
func setPolicy(r *db.Resource, p booking.Policy) {
	r.FullRefundHoursBefore = int32(p.FullHours)       //nolint:gosec // bounded by the contract and Validate
	r.PartialRefundHoursBefore = int32(p.PartialHours) //nolint:gosec // bounded by the contract and Validate
	r.PartialRefundPercent = int32(p.PartialPercent)   //nolint:gosec // bounded by the contract and Validate
}

func optionalClock(s *string) (*pgtype.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := resource.ParseClock(*s)
	return &t, err
}

// set overwrites *dst with a field a PATCH gave.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func deref[T any](v *T, def T) T {
	if v == nil {
		return def
	}
	return *v
}

func pageSize(limit *int32) int32 {
	if limit == nil {
		return defaultPageSize
	}
	return min(max(*limit, 1), maxPageSize)
}

// Cursors are opaque to clients: the list they belong to and the last key
// seen, base64url-encoded. A cursor of another list is refused.
const (
	cursorBookings = "bookings"
	cursorEvents   = "payment-events"
	cursorAudit    = "audit"
)

var errBadCursor = apperr.New(apperr.InvalidRequest, "cursor is not a next_cursor of this list")

func encodeCursor(list, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(list + ":" + key))
}

// paginate turns the rows of a list query, asked for limit+1 rows, into one
// page: at most limit items, and the cursor after the last one when more
// rows follow.
func paginate[R, T any](rows []R, limit int32, list string, key func(R) string, out func(R) T) ([]T, *string) {
	items := make([]T, 0, min(len(rows), int(limit)))
	for i, r := range rows {
		if i == int(limit) {
			return items, new(encodeCursor(list, key(rows[i-1])))
		}
		items = append(items, out(r))
	}
	return items, nil
}

// idCursor reads the cursor of a list keyed by a bigint id; none is nil.
func idCursor(cursor *string, list string) (*int64, error) {
	if cursor == nil {
		return nil, nil
	}
	after, err := decodeCursor(*cursor, list)
	if err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(after, 10, 64)
	if err != nil {
		return nil, errBadCursor
	}
	return &id, nil
}

func decodeCursor(cursor, list string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", errBadCursor
	}
	key, ok := strings.CutPrefix(string(raw), list+":")
	if !ok {
		return "", errBadCursor
	}
	return key, nil
}

func adminUserOut(u admin.User) genapi.AdminUser {
	return genapi.AdminUser{Id: u.ID, Email: u.Email, Role: genapi.AdminRole(u.Role), CreatedAt: u.CreatedAt.UTC()}
}

// adminBookingOut is the operators' view of a booking, customer included.
func adminBookingOut(b db.Booking) genapi.AdminBooking {
	out := genapi.AdminBooking{
		Id:                    b.ID,
		ResourceId:            b.ResourceID,
		Status:                genapi.BookingStatus(b.Status),
		StartsAt:              b.StartsAt.UTC(),
		EndsAt:                b.EndsAt.UTC(),
		AmountTotal:           b.AmountTotal,
		Currency:              b.Currency,
		HoldExpiresAt:         b.HoldExpiresAt.UTC(),
		CheckoutSessionId:     b.CheckoutSessionID,
		PaymentIntentId:       b.PaymentIntentID,
		Disputed:              b.Disputed,
		DisputeStatus:         b.DisputeStatus,
		RefundRequestedAt:     utc(b.RefundRequestedAt),
		RefundAmount:          b.RefundAmount,
		CancelledAfterPayment: &b.CancelledAfterPayment,
		CreatedAt:             b.CreatedAt.UTC(),
		UpdatedAt:             b.UpdatedAt.UTC(),
	}
	out.Customer.Email = b.CustomerEmail
	out.Customer.Name = b.CustomerName
	return out
}

// paymentEventOut leaves the payload out: it is Stripe's whole object,
// customer details included, and the columns say what slotpay made of it.
func paymentEventOut(e db.PaymentEvent) genapi.PaymentEvent {
	return genapi.PaymentEvent{
		Id:                e.ID,
		StripeEventId:     e.StripeEventID,
		Type:              e.Type,
		ApiVersion:        apiVersion(e.APIVersion),
		Livemode:          e.Livemode,
		StripeCreatedAt:   e.StripeCreatedAt.UTC(),
		ReceivedAt:        e.ReceivedAt.UTC(),
		Source:            genapi.PaymentEventSource(e.Source),
		BookingId:         e.BookingID,
		CheckoutSessionId: e.CheckoutSessionID,
		PaymentIntentId:   e.PaymentIntentID,
		Outcome:           genapi.EventOutcome(e.Outcome),
		Detail:            e.Detail,
		ResolvedAt:        utc(e.ResolvedAt),
	}
}

// apiVersion is null for an event that named no API version: the ledger
// keeps "" for it, which is not a version.
func apiVersion(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return new(t.UTC())
}

func auditEntryOut(a db.AdminAudit) genapi.AuditEntry {
	return genapi.AuditEntry{
		Id:         a.ID,
		OperatorId: a.OperatorID,
		Via:        genapi.AuditEntryVia(a.Via),
		Action:     genapi.AuditEntryAction(a.Action),
		TargetType: genapi.AuditEntryTargetType(a.TargetType),
		TargetId:   a.TargetID,
		RequestId:  a.RequestID,
		At:         a.At.UTC(),
	}
}
