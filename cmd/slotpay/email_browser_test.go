package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

// TestBrowserConfirmationEmailShowsTheBookingAndManageLink: the HTML of the
// confirmation e-mail the real binary sent over SMTP, rendered in Chromium
// as a mail client would, names the booking and links to its manage page.
// With SLOTPAY_UPDATE_SCREENSHOTS=1 it is docs/screenshots/email.png.
func TestBrowserConfirmationEmailShowsTheBookingAndManageLink(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	tdb := testkit.NewDatabase(t)
	smtp := testkit.NewSMTPServer(t)
	base, _, _, env := startServe(t, tdb, "SMTP_URL="+smtp.URL)
	r := runBinary(t, envOf(env), "seed-demo")
	require.Equal(t, 0, r.code, r.stderr)

	var studio struct {
		ID string `json:"id"`
	}
	require.NoError(t, tdb.Pool.QueryRow(t.Context(), "SELECT id::text FROM resources WHERE slug = 'studio-a'").Scan(&studio.ID))
	var bk struct {
		ID          string `json:"id"`
		ManageToken string `json:"manage_token"`
	}
	apiPost(t, base+"/v1/bookings", `{"resource_id":"`+studio.ID+`","starts_at":"`+testkit.TomorrowAt(10).Format(time.RFC3339)+
		`","ends_at":"`+testkit.TomorrowAt(12).Format(time.RFC3339)+`","customer":{"email":"ada@example.com","name":"Ada Lovelace"}}`, &bk)
	var co struct {
		SessionID string `json:"checkout_session_id"`
	}
	apiPost(t, base+"/v1/bookings/"+bk.ID+"/checkout", "", &co)
	body := testkit.CheckoutSessionCompleted(co.SessionID, bk.ID, 9000, "eur").JSON(t)
	require.Equal(t, http.StatusOK, deliverStripeEvent(t, base, body))

	var mails []testkit.Mail
	testkit.WaitFor(t, "the confirmation e-mail", func() bool {
		mails = smtp.To("ada@example.com")
		return len(mails) > 0
	})
	parts, err := mails[0].Parts()
	require.NoError(t, err)
	page := filepath.Join(t.TempDir(), "email.html")
	require.NoError(t, os.WriteFile(page, parts["text/html"], 0o600))

	b := newBrowser(t, chromium)
	b.do(chromedp.EmulateViewport(720, 640),
		chromedp.Navigate("file://"+page),
		chromedp.WaitVisible(chromedp.CSS("h1")))
	require.Equal(t, "Your booking is confirmed", b.text("h1"))
	text := b.text("body")
	require.Contains(t, text, "Studio A")
	require.Contains(t, text, "EUR 90.00")
	require.Contains(t, text, "10:00–12:00")
	require.Equal(t, "Cancel or move your booking", b.text("a"))
	link := base + "/booking/manage?booking_id=" + bk.ID + "#token=" + bk.ManageToken
	require.NotEmpty(t, bk.ManageToken)
	require.Contains(t, string(parts["text/html"]), `href="`+link+`"`, "the button is the manage link, with the token of the 201")
	screenshotter(t, b).full("email.png")
}
