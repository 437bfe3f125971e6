package httpapi

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/notify"
)

// The merchant's webhook endpoints and the delivery log (SPEC §9); the
// deliveries themselves are internal/notify's.

func (h *handlers) CreateAdminWebhookEndpoint(ctx context.Context, req genapi.CreateAdminWebhookEndpointRequestObject) (genapi.CreateAdminWebhookEndpointResponseObject, error) {
	by, err := operatorOf(ctx)
	if err != nil {
		return nil, err
	}
	types := make([]string, len(req.Body.EnabledEvents))
	for i, t := range req.Body.EnabledEvents {
		types[i] = string(t)
	}
	e, err := notify.CreateEndpoint(ctx, h.s.pool, by, req.Body.Url, types)
	if err != nil {
		return nil, err
	}
	return genapi.CreateAdminWebhookEndpoint201JSONResponse{Body: endpointWithSecretOut(e)}, nil
}

func (h *handlers) ListAdminWebhookEndpoints(ctx context.Context, _ genapi.ListAdminWebhookEndpointsRequestObject) (genapi.ListAdminWebhookEndpointsResponseObject, error) {
	rows, err := database.New(h.s.pool).WebhookEndpointList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	list := genapi.WebhookEndpointList{Items: make([]genapi.WebhookEndpoint, len(rows))}
	for i, e := range rows {
		list.Items[i] = endpointOut(e)
	}
	return genapi.ListAdminWebhookEndpoints200JSONResponse{Body: list}, nil
}

func (h *handlers) DeleteAdminWebhookEndpoint(ctx context.Context, req genapi.DeleteAdminWebhookEndpointRequestObject) (genapi.DeleteAdminWebhookEndpointResponseObject, error) {
	by, err := operatorOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := notify.DeleteEndpoint(ctx, h.s.pool, by, req.Id); err != nil {
		return nil, err
	}
	return genapi.DeleteAdminWebhookEndpoint204Response{}, nil
}

func (h *handlers) RotateAdminWebhookEndpointSecret(ctx context.Context, req genapi.RotateAdminWebhookEndpointSecretRequestObject) (genapi.RotateAdminWebhookEndpointSecretResponseObject, error) {
	by, err := operatorOf(ctx)
	if err != nil {
		return nil, err
	}
	e, err := notify.RotateEndpointSecret(ctx, h.s.pool, by, req.Id)
	if err != nil {
		return nil, err
	}
	return genapi.RotateAdminWebhookEndpointSecret200JSONResponse{Body: endpointWithSecretOut(e)}, nil
}

const cursorDeliveries = "webhook-deliveries"

func (h *handlers) ListAdminWebhookDeliveries(ctx context.Context, req genapi.ListAdminWebhookDeliveriesRequestObject) (genapi.ListAdminWebhookDeliveriesResponseObject, error) {
	p := req.Params
	limit := pageSize(p.Limit)
	params := db.WebhookDeliveryListParams{
		EndpointID: p.EndpointId, BookingID: p.BookingId, NotificationID: p.EventId,
		Outcome: (*string)(p.Outcome), MaxRows: limit + 1,
	}
	var err error
	if params.AfterID, err = idCursor(p.Cursor, cursorDeliveries); err != nil {
		return nil, err
	}
	rows, err := database.New(h.s.pool).WebhookDeliveryList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	var page genapi.WebhookDeliveryPage
	page.Items, page.NextCursor = paginate(rows, limit, cursorDeliveries,
		func(r db.WebhookDeliveryListRow) string { return strconv.FormatInt(r.ID, 10) }, deliveryOut)
	return genapi.ListAdminWebhookDeliveries200JSONResponse{Body: page}, nil
}

// bookingNotifications is the notifications part of the admin booking view.
func bookingNotifications(ctx context.Context, q *db.Queries, bookingID uuid.UUID) ([]genapi.Notification, error) {
	ns, err := q.NotificationListByBooking(ctx, bookingID)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	attempts, err := q.NotificationAttemptListByBooking(ctx, bookingID)
	if err != nil {
		return nil, fmt.Errorf("list notification attempts: %w", err)
	}
	byID := map[uuid.UUID][]genapi.NotificationAttempt{}
	for _, a := range attempts {
		byID[a.NotificationID] = append(byID[a.NotificationID], genapi.NotificationAttempt{
			Channel: genapi.NotificationAttemptChannel(a.Channel), Target: a.Target, EndpointId: a.EndpointID,
			Attempt: a.Attempt, Outcome: genapi.NotificationAttemptOutcome(a.Outcome), StatusCode: a.StatusCode,
			Error: a.Error, At: a.At.UTC(),
		})
	}
	out := make([]genapi.Notification, len(ns))
	for i, n := range ns {
		out[i] = genapi.Notification{
			Id: n.ID, Type: genapi.WebhookEventType(n.Type), Email: n.EmailKind, CreatedAt: n.CreatedAt.UTC(),
			Attempts: byID[n.ID],
		}
		if out[i].Attempts == nil {
			out[i].Attempts = []genapi.NotificationAttempt{}
		}
	}
	return out, nil
}

func eventTypesOut(types []string) []genapi.WebhookEventType {
	out := make([]genapi.WebhookEventType, len(types))
	for i, t := range types {
		out[i] = genapi.WebhookEventType(t)
	}
	return out
}

// previousUntil is when the rotated-out secret stops signing; nil once it
// has (or when there is none).
func previousUntil(e db.WebhookEndpoint) *time.Time {
	if e.PreviousSecretUntil == nil || time.Now().After(*e.PreviousSecretUntil) {
		return nil
	}
	return utc(e.PreviousSecretUntil)
}

func endpointOut(e db.WebhookEndpoint) genapi.WebhookEndpoint {
	return genapi.WebhookEndpoint{
		Id: e.ID, Url: e.Url, EnabledEvents: eventTypesOut(e.EventTypes), CreatedAt: e.CreatedAt.UTC(),
		UpdatedAt: e.UpdatedAt.UTC(), PreviousSecretExpiresAt: previousUntil(e),
	}
}

func endpointWithSecretOut(e db.WebhookEndpoint) genapi.WebhookEndpointWithSecret {
	o := endpointOut(e)
	return genapi.WebhookEndpointWithSecret{
		Id: o.Id, Url: o.Url, EnabledEvents: o.EnabledEvents, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		PreviousSecretExpiresAt: o.PreviousSecretExpiresAt, Secret: e.Secret,
	}
}

func deliveryOut(r db.WebhookDeliveryListRow) genapi.WebhookDelivery {
	return genapi.WebhookDelivery{
		Id: r.ID, EventId: r.NotificationID, EventType: genapi.WebhookEventType(r.Type), BookingId: r.BookingID,
		EndpointId: r.EndpointID, Url: r.Target, Attempt: r.Attempt, Outcome: genapi.WebhookDeliveryOutcome(r.Outcome),
		StatusCode: r.StatusCode, Error: r.Error, DurationMs: r.DurationMs, At: r.At.UTC(),
	}
}
