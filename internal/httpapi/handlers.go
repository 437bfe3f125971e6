package httpapi

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	openapi_types "github.com/oapi-codegen/runtime/types"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
	"github.com/slotpay/slotpay/internal/booking"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/idempotency"
)

// handlers implements the generated strict server. Expected failures are
// returned as *apperr.Error and rendered by Server.writeError, the one place
// that maps errors to the envelope.
type handlers struct{ s *Server }

var _ genapi.StrictServerInterface = (*handlers)(nil)

func (h *handlers) ListResources(ctx context.Context, _ genapi.ListResourcesRequestObject) (genapi.ListResourcesResponseObject, error) {
	rows, err := database.New(h.s.pool).ResourceListActive(ctx)
	if err != nil {
		return nil, err
	}
	items := make([]genapi.Resource, len(rows))
	for i, r := range rows {
		items[i] = resourceOut(r)
	}
	return genapi.ListResources200JSONResponse{Body: genapi.ResourceList{Items: items}}, nil
}

func (h *handlers) GetAvailability(ctx context.Context, req genapi.GetAvailabilityRequestObject) (genapi.GetAvailabilityResponseObject, error) {
	d := req.Params.Date.Time
	avail, err := booking.FreeSlots(ctx, database.New(h.s.pool), req.Id, d.Year(), d.Month(), d.Day())
	if err != nil {
		return nil, err
	}
	slots := make([]genapi.Slot, len(avail.Slots))
	for i, s := range avail.Slots {
		slots[i] = genapi.Slot{StartsAt: s.StartsAt.UTC(), EndsAt: s.EndsAt.UTC()}
	}
	return genapi.GetAvailability200JSONResponse{Body: genapi.Availability{
		ResourceId: req.Id,
		Date:       req.Params.Date,
		Timezone:   avail.Resource.Timezone,
		Slots:      slots,
	}}, nil
}

func (h *handlers) CreateBooking(ctx context.Context, req genapi.CreateBookingRequestObject) (genapi.CreateBookingResponseObject, error) {
	// A first run of this request that created its booking and then died
	// before answering: answer with that booking, never hold twice.
	if id, ok := idempotency.RecoveredBooking(ctx); ok {
		b, err := booking.Get(ctx, database.New(h.s.pool), id)
		if err != nil {
			return nil, err
		}
		return genapi.CreateBooking201JSONResponse{Body: h.s.createdOut(b)}, nil
	}
	body := req.Body
	b, err := h.s.checkout.Hold(ctx, booking.Request{
		ResourceID:    body.ResourceId,
		Slot:          booking.Slot{StartsAt: body.StartsAt, EndsAt: body.EndsAt},
		CustomerEmail: string(body.Customer.Email),
		CustomerName:  body.Customer.Name,
		Record:        idempotency.RecordBooking,
		Client:        clientFrom(ctx),
		Caps:          h.s.holdCaps(),
		Tokens:        h.s.tokens,
	}, h.s.cfg.PendingHold)
	if err != nil {
		return nil, err
	}
	return genapi.CreateBooking201JSONResponse{Body: h.s.createdOut(b)}, nil
}

// createdOut is the 201 of POST /v1/bookings: the public view and the
// manage_token, derived again from the booking's salt (never stored).
func (s *Server) createdOut(b db.Booking) genapi.CreatedBooking {
	out := bookingOut(b)
	created := genapi.CreatedBooking{
		Id: out.Id, ResourceId: out.ResourceId, Status: out.Status, StartsAt: out.StartsAt, EndsAt: out.EndsAt,
		AmountTotal: out.AmountTotal, Currency: out.Currency, HoldExpiresAt: out.HoldExpiresAt,
		CheckoutSessionId: out.CheckoutSessionId, CreatedAt: out.CreatedAt, RefundAmount: out.RefundAmount,
	}
	if b.ManageTokenSalt != nil {
		created.ManageToken = s.tokens.Derive(b.ID, b.ManageTokenSalt)
	}
	return created
}

// GetBooking answers the public view, and with the booking's manage_token
// what its customer may see besides (SPEC §3.1).
func (h *handlers) GetBooking(ctx context.Context, req genapi.GetBookingRequestObject) (genapi.GetBookingResponseObject, error) {
	q := database.New(h.s.pool)
	b, err := booking.Get(ctx, q, req.Id)
	if err != nil {
		return nil, err
	}
	out := bookingOut(b)
	view := genapi.BookingView{
		Id: out.Id, ResourceId: out.ResourceId, Status: out.Status, StartsAt: out.StartsAt, EndsAt: out.EndsAt,
		AmountTotal: out.AmountTotal, Currency: out.Currency, HoldExpiresAt: out.HoldExpiresAt,
		CheckoutSessionId: out.CheckoutSessionId, CreatedAt: out.CreatedAt, RefundAmount: out.RefundAmount,
	}
	if _, sent := bearerFrom(ctx); !sent {
		return genapi.GetBooking200JSONResponse{Body: view}, nil
	}
	if err := authorize(ctx, b); err != nil {
		return nil, err
	}
	r, err := q.ResourceGetByID(ctx, b.ResourceID)
	if err != nil {
		return nil, err
	}
	refund := booking.CancelRefund(b, r, time.Now())
	policy := policyOut(booking.PolicyOf(r))
	until := booking.PolicyOf(r).FullRefundCutoff(b.StartsAt).UTC()
	view.CancelRefundAmount, view.CancellationPolicy, view.RescheduleUntil = &refund, &policy, &until
	view.Customer = &struct {
		Email openapi_types.Email `json:"email"`
		Name  string              `json:"name"`
	}{Email: openapi_types.Email(b.CustomerEmail), Name: b.CustomerName}
	return genapi.GetBooking200JSONResponse{Body: view}, nil
}

func (h *handlers) CreateCheckout(ctx context.Context, req genapi.CreateCheckoutRequestObject) (genapi.CreateCheckoutResponseObject, error) {
	session, err := h.s.checkout.Start(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	return genapi.CreateCheckout200JSONResponse{Body: genapi.Checkout{
		CheckoutUrl:       session.URL,
		CheckoutSessionId: session.ID,
		ExpiresAt:         session.ExpiresAt.UTC(),
	}}, nil
}

// CancelBooking releases an unpaid hold by id alone; a confirmed booking is
// the customer's paid booking, which needs its manage_token (SPEC §3.1).
// Any other status cannot be cancelled: invalid_state, after the token's
// check when one was sent.
func (h *handlers) CancelBooking(ctx context.Context, req genapi.CancelBookingRequestObject) (genapi.CancelBookingResponseObject, error) {
	b, err := booking.Get(ctx, database.New(h.s.pool), req.Id)
	if err != nil {
		return nil, err
	}
	_, sent := bearerFrom(ctx)
	switch status := booking.Status(b.Status); {
	case status == booking.PendingPayment:
		b, err = h.s.checkout.Cancel(ctx, req.Id)
	case status == booking.Confirmed || sent:
		if err := authorize(ctx, b); err != nil {
			return nil, err
		}
		b, err = h.s.processor.CancelPaid(ctx, req.Id)
	default:
		err = apperr.New(apperr.InvalidState, "the booking is %s; only a pending_payment or confirmed booking can be cancelled", status)
	}
	if err != nil {
		return nil, err
	}
	return genapi.CancelBooking200JSONResponse{Body: bookingOut(b)}, nil
}

func (h *handlers) RescheduleBooking(ctx context.Context, req genapi.RescheduleBookingRequestObject) (genapi.RescheduleBookingResponseObject, error) {
	b, err := booking.Get(ctx, database.New(h.s.pool), req.Id)
	if err != nil {
		return nil, err
	}
	if err := authorize(ctx, b); err != nil {
		return nil, err
	}
	moved, err := booking.Reschedule(ctx, h.s.pool, req.Id, booking.Slot{StartsAt: req.Body.StartsAt, EndsAt: req.Body.EndsAt})
	if err != nil {
		return nil, err
	}
	return genapi.RescheduleBooking200JSONResponse{Body: bookingOut(moved)}, nil
}

// bookingOut is the public view of a booking: no customer data (SPEC §3).
func bookingOut(b db.Booking) genapi.Booking {
	return genapi.Booking{
		Id:                b.ID,
		ResourceId:        b.ResourceID,
		Status:            genapi.BookingStatus(b.Status),
		StartsAt:          b.StartsAt.UTC(),
		EndsAt:            b.EndsAt.UTC(),
		AmountTotal:       b.AmountTotal,
		Currency:          b.Currency,
		HoldExpiresAt:     b.HoldExpiresAt.UTC(),
		CheckoutSessionId: b.CheckoutSessionID,
		CreatedAt:         b.CreatedAt.UTC(),
		RefundAmount:      b.RefundAmount,
	}
}

func policyOut(p booking.Policy) genapi.CancellationPolicy {
	return genapi.CancellationPolicy{
		FullRefundHoursBefore:    int32(p.FullHours),      //nolint:gosec // a database integer
		PartialRefundHoursBefore: int32(p.PartialHours),   //nolint:gosec // a database integer
		PartialRefundPercent:     int32(p.PartialPercent), //nolint:gosec // a database integer
	}
}

func resourceOut(r db.Resource) genapi.Resource {
	return genapi.Resource{
		Id:                 openapi_types.UUID(r.ID),
		Slug:               r.Slug,
		Name:               r.Name,
		Description:        r.Description,
		Timezone:           r.Timezone,
		Currency:           r.Currency,
		UnitAmount:         r.UnitAmount,
		SlotMinutes:        r.SlotMinutes,
		MinSlots:           r.MinSlots,
		MaxSlots:           r.MaxSlots,
		OpenTime:           clock(r.OpenTime),
		CloseTime:          clock(r.CloseTime),
		MinNoticeMinutes:   r.MinNoticeMinutes,
		HorizonDays:        r.HorizonDays,
		Active:             r.Active,
		CancellationPolicy: policyOut(booking.PolicyOf(r)),
	}
}

func clock(t pgtype.Time) string {
	return time.Time{}.Add(time.Duration(t.Microseconds) * time.Microsecond).Format("15:04")
}
