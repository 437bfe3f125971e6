package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	genapi "github.com/slotpay/slotpay/gen/api"
	"github.com/slotpay/slotpay/internal/admin"
	"github.com/slotpay/slotpay/internal/audit"
	"github.com/slotpay/slotpay/internal/notify"
)

// webhookEndpoint is the endpoint factory: one on b's database, as the
// command line would register it.
func (b *testBundle) webhookEndpoint(t *testing.T) uuid.UUID {
	t.Helper()
	e, err := notify.CreateEndpoint(t.Context(), b.db.Pool, audit.CommandLine, "https://merchant.example/hooks", []string{notify.TypeConfirmed})
	require.NoError(t, err)
	return e.ID
}

// TestWebhookEndpoints_SecretShownOnceAndEveryChangeAudited: the signing
// secret is in the 201 (and a rotation's 200) only, never in the list; a
// rotation keeps the old secret signing for a day; create, rotate and delete
// each leave one audit row.
func TestWebhookEndpoints_SecretShownOnceAndEveryChangeAudited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	operator, as := b.operator(t, admin.RoleAdmin)

	resp, body := b.do(t, "POST", "/v1/admin/webhook-endpoints",
		`{"url":"https://merchant.example/hooks","enabled_events":["booking.confirmed","booking.refunded"]}`, as)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	created := decodeBytes[genapi.WebhookEndpointWithSecret](t, body)
	require.Regexp(t, `^whsec_[0-9a-f]{64}$`, created.Secret)
	require.Nil(t, created.PreviousSecretExpiresAt)
	b.requireAuditedOnce(t, string(audit.EndpointCreate), created.Id, operator, resp)

	resp, body = b.do(t, "GET", "/v1/admin/webhook-endpoints", "", as)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NotContains(t, string(body), created.Secret, "the list never shows a secret")
	list := decodeBytes[genapi.WebhookEndpointList](t, body)
	require.Len(t, list.Items, 1)

	resp, body = b.do(t, "POST", "/v1/admin/webhook-endpoints/"+created.Id.String()+"/rotate-secret", "", as)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	rotated := decodeBytes[genapi.WebhookEndpointWithSecret](t, body)
	require.NotEqual(t, created.Secret, rotated.Secret)
	require.NotNil(t, rotated.PreviousSecretExpiresAt, "the old secret still signs for a while")
	b.requireAuditedOnce(t, string(audit.EndpointRotate), created.Id, operator, resp)

	resp, body = b.do(t, "DELETE", "/v1/admin/webhook-endpoints/"+created.Id.String(), "", as)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	b.requireAuditedOnce(t, string(audit.EndpointDelete), created.Id, operator, resp)
	resp, body = b.do(t, "DELETE", "/v1/admin/webhook-endpoints/"+created.Id.String(), "", as)
	requireError(t, http.StatusNotFound, "not_found", resp.StatusCode, body)
}

// TestWebhookEndpoints_RefuseURLsThatAreNotHTTPSOrLocal: plain http only to
// this machine; no credentials in the URL; only known event types.
func TestWebhookEndpoints_RefuseURLsThatAreNotHTTPSOrLocal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, as := b.operator(t, admin.RoleAdmin)
	for name, body := range map[string]string{
		"PlainHTTP":        `{"url":"http://merchant.example/hooks","enabled_events":["booking.confirmed"]}`,
		"Credentials":      `{"url":"https://user:pw@merchant.example/hooks","enabled_events":["booking.confirmed"]}`,
		"OtherScheme":      `{"url":"ftp://merchant.example/hooks","enabled_events":["booking.confirmed"]}`,
		"NoEvents":         `{"url":"https://merchant.example/hooks","enabled_events":[]}`,
		"UnknownEvent":     `{"url":"https://merchant.example/hooks","enabled_events":["booking.created"]}`,
		"RelativeURL":      `{"url":"/hooks","enabled_events":["booking.confirmed"]}`,
		"FragmentInTheURL": `{"url":"https://merchant.example/hooks#x","enabled_events":["booking.confirmed"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp, out := b.do(t, "POST", "/v1/admin/webhook-endpoints", body, as)
			requireError(t, http.StatusBadRequest, "invalid_request", resp.StatusCode, out)
		})
	}
	resp, out := b.do(t, "POST", "/v1/admin/webhook-endpoints", `{"url":"http://127.0.0.1:9/hooks","enabled_events":["booking.confirmed"]}`, as)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "plain http to this machine is for development: %s", out)
}
