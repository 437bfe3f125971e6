package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

// updateScreenshots regenerates docs/screenshots/ when set to 1; other runs
// leave the committed pictures alone.
const updateScreenshots = "SLOTPAY_UPDATE_SCREENSHOTS"

// browserTimeout bounds the whole browser test: generous for a loaded CI
// machine, but a hang still fails instead of eating the go test timeout.
const browserTimeout = 4 * time.Minute

// The desktop viewport of the browser test, in CSS pixels.
const desktopWidth, desktopHeight = 1280, 900

// TestBrowserBookPayAndReview drives the demo pages in a real Chromium, as a
// customer and an operator would: book a slot, be sent to Stripe Checkout,
// pay (with `slotpay dev pay`, which delivers the signed webhook Stripe
// would send), watch the success page turn confirmed, then find the booking
// with its status history and ledger in the back office.
func TestBrowserBookPayAndReview(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)

	tdb := testkit.NewDatabase(t)
	base, env := serveInProcess(t, tdb)
	envMap := func(extra ...string) map[string]string { return envOf(env, extra...) }
	const studioA = "0193a5e0-7b1a-7c3e-9f00-00000000a001" // seed-demo's studio-a
	r := runCommand(t, envMap(), "seed-demo")
	require.Equal(t, 0, r.code, r.stderr)

	b := newBrowser(t, chromium)
	shots := screenshotter(t, b)

	// The customer: Studio A (UTC, 60-minute slots at 45.00 eur), tomorrow
	// 10:00, two slots.
	b.fillBooking(base, testkit.TomorrowAt(10), "2")
	require.Equal(t, "€90.00", b.text("#summary-total"))
	require.Contains(t, b.text("#summary"), "Studio A")
	shots.full("book.png")

	// Holding the slot sends the browser to the checkout_url the API
	// returned. Stripe's page cannot load here, so the test answers that
	// navigation itself and looks at where the browser went.
	checkoutURL := b.interceptNavigation("https://checkout.stripe.com/*", func() {
		b.do(chromedp.Click(chromedp.CSS("#submit")))
	})
	var bookingID string
	require.NoError(t, tdb.Pool.QueryRow(t.Context(),
		"SELECT id::text FROM bookings WHERE status = 'pending_payment' AND checkout_session_id IS NOT NULL").Scan(&bookingID))
	var checkout struct {
		CheckoutURL string `json:"checkout_url"`
	}
	apiPost(t, base+"/v1/bookings/"+bookingID+"/checkout", "", &checkout) // the open session again
	require.Equal(t, checkout.CheckoutURL, checkoutURL, "the page goes to the checkout_url the API returned")
	require.Equal(t, checkout.CheckoutURL, b.location())

	// Back on slotpay before Stripe's webhook: the redirect proves nothing.
	b.do(chromedp.Navigate(base + "/booking/success?booking_id=" + bookingID + "&session_id=cs_test_x"))
	b.do(chromedp.WaitVisible(chromedp.CSS(`#state[data-status=pending_payment]`)))
	require.Equal(t, "Payment being confirmed", b.text("#state-title"))

	r = runCommand(t, envMap(), "dev", "pay", bookingID)
	require.Equal(t, 0, r.code, r.stderr)

	// The page asks again by itself and turns confirmed.
	b.do(chromedp.WaitVisible(chromedp.CSS(`#state[data-status=confirmed]`)))
	require.Equal(t, "Booking confirmed", b.text("#state-title"))
	require.Contains(t, b.text("#details"), "€90.00")
	require.Contains(t, b.text("#details"), "10:00")
	require.Contains(t, b.text("#details"), "12:00")
	shots.phone("success-phone.png")

	// A customer who turns back on Stripe's page lands on the cancel page,
	// which releases the hold; coming back again finds nothing to release.
	var other struct {
		ID string `json:"id"`
	}
	apiPost(t, base+"/v1/bookings", fmt.Sprintf(`{"resource_id":%q,"starts_at":%q,"ends_at":%q,"customer":{"email":"grace@example.com","name":"Grace Hopper"}}`,
		studioA, testkit.TomorrowAt(15).Format(time.RFC3339), testkit.TomorrowAt(16).Format(time.RFC3339)), &other)
	apiPost(t, base+"/v1/bookings/"+other.ID+"/checkout", "", &checkout)
	b.do(chromedp.Navigate(base+"/booking/cancel?booking_id="+other.ID),
		chromedp.WaitVisible(chromedp.CSS(`#state[data-status=cancelled]`)))
	require.Equal(t, "Slot released", b.text("#state-title"))
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND status = 'cancelled'", other.ID))
	b.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#state[data-status=cancelled]`)))
	require.Equal(t, "Nothing to release", b.text("#state-title"))

	// The operator.
	const email, password = "ops-lead@example.com", "Browser test 42 password"
	r = runCommand(t, envMap(passwordEnv+"="+password), "admin", "create-user", "--email", email, "--role", "admin")
	require.Equal(t, 0, r.code, r.stderr)
	b.do(chromedp.Navigate(base+"/admin"),
		chromedp.WaitVisible(chromedp.CSS("#login-email")),
		chromedp.SendKeys(chromedp.CSS("#login-email"), email),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")))
	row := fmt.Sprintf(`#bookings-table a[href="#booking/%s"]`, bookingID)
	b.do(chromedp.WaitVisible(chromedp.CSS(row)))
	require.Contains(t, b.text("#who-text"), email)
	require.Contains(t, b.text("#bookings-table"), "Ada Lovelace")
	shots.full("admin-bookings.png")

	b.do(chromedp.Click(chromedp.CSS(row)),
		chromedp.WaitVisible(chromedp.CSS("#status-history table")))
	facts := b.text("#booking-facts")
	require.Contains(t, facts, "Confirmed")
	require.Contains(t, facts, "ada@example.com")
	history := b.text("#status-history")
	require.Contains(t, history, "Awaiting payment")
	require.Contains(t, history, "Confirmed")
	require.Contains(t, history, "checkout.session.completed")
	require.Contains(t, b.text("#booking-events"), "checkout.session.completed")
	require.Contains(t, b.text("#booking-events"), "applied")
	require.Contains(t, b.text("#booking-actions"), "Refund €90.00 in full", "an admin may refund")
	require.Contains(t, b.text("#booking-notifications"), "What the customer and the merchant were told")
	shots.full("admin-booking.png")

	// Refunding asks once more, then Stripe accepts; the booking turns
	// refunded only when Stripe's charge.refunded event arrives.
	b.do(chromedp.Click(chromedp.CSS("#booking-actions button.danger")),
		chromedp.WaitVisible(chromedp.CSS("#booking-actions .confirm-ask button.danger")),
		chromedp.Click(chromedp.CSS("#booking-actions .confirm-ask button.danger")),
		chromedp.WaitVisible(chromedp.CSS("#action-status.notice-ok")))
	require.Contains(t, b.text("#action-status"), "Stripe accepted the refund")
	require.Contains(t, b.text("#booking-facts"), "Confirmed")
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_requested_at IS NOT NULL", bookingID))

	b.do(chromedp.Click(chromedp.CSS("#nav-events")),
		chromedp.WaitVisible(chromedp.CSS("#events-table table")))
	require.Contains(t, b.text("#events-table"), "checkout.session.completed")

	// The webhooks tab: no endpoint registered, so nothing was delivered.
	b.do(chromedp.Click(chromedp.CSS("#nav-webhooks")),
		chromedp.WaitVisible(chromedp.CSS("#deliveries-table p.empty")),
		chromedp.WaitVisible(chromedp.CSS("#endpoints-table p.empty")))
	require.Contains(t, b.text("#endpoints-table"), "none")

	b.do(chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login-email")))
	b.requireCleanConsole()
}

// fillBooking fills the booking page for studio-a from start, length slots
// long, as Ada Lovelace: everything up to the submit button.
func (b *browser) fillBooking(base string, start time.Time, length string) {
	b.t.Helper()
	slot := fmt.Sprintf(`#slots input[data-starts-at=%q]`, start.UTC().Format(time.RFC3339))
	b.do(chromedp.Navigate(base+"/?resource=studio-a"),
		chromedp.WaitVisible(chromedp.CSS("#slots input")))
	b.setValue("#date", start.UTC().Format(time.DateOnly))
	b.do(chromedp.WaitVisible(chromedp.CSS(slot)),
		chromedp.Click(chromedp.CSS(slot)),
		chromedp.WaitVisible(chromedp.CSS("#length")))
	b.setValue("#length", length)
	b.do(chromedp.SendKeys(chromedp.CSS("#name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.com"))
}

// TestBrowserManageRescheduleAndCancel: pay, the confirmation e-mail
// arrives over SMTP (a real server) with the manage link — the same link the
// success page offers with the 201's manage_token — and the customer follows
// it from the mailbox: there they see what a cancel would refund, move the
// booking to another free time (an e-mail says so), then cancel it and are
// refunded under studio-a's policy (in full, more than 24 h ahead; the
// cancellation e-mail says how much).
func TestBrowserManageRescheduleAndCancel(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)

	tdb := testkit.NewDatabase(t)
	smtp := testkit.NewSMTPServer(t)
	base, env := serveInProcess(t, tdb, "SMTP_URL="+smtp.URL)
	r := runCommand(t, envOf(env), "seed-demo")
	require.Equal(t, 0, r.code, r.stderr)
	b := newBrowser(t, chromium)
	shots := screenshotter(t, b)

	day := func(days, hour int) time.Time {
		d := time.Now().UTC().AddDate(0, 0, days)
		return time.Date(d.Year(), d.Month(), d.Day(), hour, 0, 0, 0, time.UTC)
	}
	b.fillBooking(base, day(3, 10), "1")
	b.interceptNavigation("https://checkout.stripe.com/*", func() {
		b.do(chromedp.Click(chromedp.CSS("#submit")))
	})
	var bookingID string
	require.NoError(t, tdb.Pool.QueryRow(t.Context(),
		"SELECT id::text FROM bookings WHERE status = 'pending_payment' AND checkout_session_id IS NOT NULL").Scan(&bookingID))
	r = runCommand(t, envOf(env), "dev", "pay", bookingID)
	require.Equal(t, 0, r.code, r.stderr)

	b.do(chromedp.Navigate(base+"/booking/success?booking_id="+bookingID+"&session_id=cs_test_x"),
		chromedp.WaitVisible(chromedp.CSS(`#state[data-status=confirmed]`)),
		chromedp.WaitVisible(chromedp.CSS("#manage-link")))
	successLink := b.href("#manage-link")

	// The confirmation e-mail arrives over SMTP; its manage link is the
	// success page's (the same token, derived again), and the customer
	// follows it from the mailbox, in a fresh tab with nothing kept.
	mails := waitForMail(t, smtp, "ada@example.com", 1)
	require.Contains(t, mails[0].Header.Get("Subject"), "Booking confirmed")
	link := manageLinkOf(t, mails[0])
	require.Equal(t, successLink, link)
	_, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { sessionStorage.clear(); return true })()`))
	require.NoError(t, err)
	b.do(chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-status=confirmed]`)))
	require.NotContains(t, b.location(), "token=", "the token leaves the address bar once kept")
	require.Equal(t, "€45.00", b.text("#refund-now"))
	require.Contains(t, b.text("#customer"), "ada@example.com")
	require.Contains(t, b.text("#policy"), "full refund up to 24 h before the start")

	// Move it to the next day at 14:00.
	target := day(4, 14)
	choice := fmt.Sprintf(`#resched-slots button[data-start=%q]`, target.Format("2006-01-02T15:04:05.000Z"))
	b.setValue("#resched-date", target.Format(time.DateOnly))
	b.do(chromedp.WaitVisible(chromedp.CSS(choice)))
	shots.full("manage.png")
	b.do(chromedp.Click(chromedp.CSS(choice)),
		chromedp.WaitVisible(chromedp.CSS("#notice.notice-ok")))
	require.Contains(t, b.text("#when"), "2:00 PM") // en-US, as the browser runs
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND status = 'confirmed' AND starts_at = $2", bookingID, target))
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM booking_status_changes WHERE booking_id = $1 AND cause = 'rescheduled'", bookingID))
	moved := waitForMail(t, smtp, "ada@example.com", 2)[1]
	require.Contains(t, moved.Header.Get("Subject"), "Booking moved")

	// Cancel it: refunded in full under the policy.
	b.do(chromedp.Click(chromedp.CSS("#cancel")),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-status=cancelled]`)),
		chromedp.WaitVisible(chromedp.CSS("#refund")))
	require.Equal(t, "€45.00", b.text("#refund"))
	require.Contains(t, b.text("#notice"), "A refund of €45.00")
	require.Equal(t, 1, tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_amount = 4500 AND cancelled_after_payment", bookingID))
	testkit.WaitFor(t, "the refund requested at Stripe", func() bool {
		return tdb.Count(t, "SELECT count(*) FROM bookings WHERE id = $1 AND refund_requested_at IS NOT NULL", bookingID) == 1
	})
	cancelled := waitForMail(t, smtp, "ada@example.com", 3)[2]
	require.Contains(t, cancelled.Header.Get("Subject"), "Booking cancelled")
	cancelText, err := cancelled.Parts()
	require.NoError(t, err)
	require.Contains(t, string(cancelText["text/plain"]), "EUR 45.00 is refunded")
	b.requireCleanConsole()
}

// waitForMail waits until rcpt has n e-mails and returns them in order.
func waitForMail(t *testing.T, smtp *testkit.SMTPServer, rcpt string, n int) []testkit.Mail {
	t.Helper()
	var mails []testkit.Mail
	testkit.WaitFor(t, fmt.Sprintf("%d e-mails to %s", n, rcpt), func() bool {
		mails = smtp.To(rcpt)
		return len(mails) >= n
	})
	return mails
}

// manageLinkOf is the manage link of an e-mail's plain-text part.
func manageLinkOf(t *testing.T, m testkit.Mail) string {
	t.Helper()
	parts, err := m.Parts()
	require.NoError(t, err)
	for field := range strings.FieldsSeq(string(parts["text/plain"])) {
		if strings.Contains(field, "/booking/manage?") {
			return field
		}
	}
	t.Fatalf("no manage link in the e-mail:\n%s", parts["text/plain"])
	return ""
}

// findChromium returns Debian's Chromium, or skips the test outside CI when
// there is none. In CI a missing browser is a failure: .ci/run installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found; CI must install it (see .ci/run)")
	}
	t.Skip("chromium not found: install it (`make chromium`, or apt-get install chromium) to run the browser test")
	return ""
}

type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func newBrowser(t *testing.T, execPath string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(desktopWidth, desktopHeight),
	)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	require.NoError(t, chromedp.Do(ctx), "start chromium")

	b := &browser{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\nconsole:\n%s", err, b.consoleText())
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return s
}

// href is a link's target as the browser resolves it (absolute).
func (b *browser) href(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf("document.querySelector(%q).href", sel)))
	require.NoError(b.t, err, sel)
	return s
}

func (b *browser) location() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(b.t, err)
	return s
}

// setValue sets a field as a person choosing from a picker would, change
// event included.
func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('change', {bubbles: true})); return e.value })()`, sel, value)
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	require.NoError(b.t, err)
	require.Equal(b.t, value, got, sel)
}

// interceptNavigation pauses the first request to a URL matching pattern
// that act causes, answers it with a stand-in page, and returns its URL.
func (b *browser) interceptNavigation(pattern string, act func()) string {
	b.t.Helper()
	paused := chromedp.Events(b.ctx, fetch.RequestPaused)
	_, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: pattern}},
	})
	require.NoError(b.t, err)
	act()
	var url string
	for ev, err := range paused {
		require.NoError(b.t, err, "waiting for the navigation to %s\nconsole:\n%s", pattern, b.consoleText())
		url = ev.Request.URL
		_, err = chromedp.Call(b.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
			RequestID:       ev.RequestID,
			ResponseCode:    200,
			ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html"}},
			Body:            []byte("<!doctype html><title>Stripe Checkout (stand-in)</title><h1>Stripe Checkout</h1>"),
		})
		require.NoError(b.t, err)
		break
	}
	_, err = chromedp.Call(b.ctx, fetch.Disable, cdp.Empty{})
	require.NoError(b.t, err)
	// The stand-in page is the document now.
	b.do(chromedp.WaitVisible(chromedp.CSS("h1")))
	return url
}

func (b *browser) consoleText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	for _, m := range b.console {
		fmt.Fprintf(&sb, "  %s %s:%d %s\n", m.Type, m.URL, m.Line+1, m.Text)
	}
	return sb.String()
}

// requireCleanConsole fails on any uncaught exception and on anything the
// Content-Security-Policy refused: the pages must work under their policy.
// Failed requests (a 401 before signing in) are expected and pass.
func (b *browser) requireCleanConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			b.t.Errorf("browser console: %s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text)
		}
	}
}

type shots struct {
	b   *browser
	dir string // empty: screenshots are not being updated
}

// screenshotter saves screenshots to docs/screenshots/ when
// SLOTPAY_UPDATE_SCREENSHOTS=1, and does nothing otherwise.
func screenshotter(t *testing.T, b *browser) shots {
	if os.Getenv(updateScreenshots) != "1" {
		return shots{b: b}
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return shots{b: b, dir: dir}
}

func (s shots) full(name string) {
	if s.dir == "" {
		return
	}
	png, err := chromedp.Run(s.b.ctx, chromedp.FullScreenshot(100))
	require.NoError(s.b.t, err)
	require.NoError(s.b.t, os.WriteFile(filepath.Join(s.dir, name), png, 0o644))
}

// phone saves the page as a phone shows it (390×844 CSS pixels at 2×),
// then returns to the desktop viewport.
func (s shots) phone(name string) {
	if s.dir == "" {
		return
	}
	s.b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	s.full(name)
	s.b.do(chromedp.EmulateViewport(desktopWidth, desktopHeight))
}

func apiPost(t *testing.T, url, body string, out any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}
