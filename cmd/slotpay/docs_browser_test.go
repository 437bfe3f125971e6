package main

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/testkit"
)

// TestBrowserSwaggerUITryItOutReachesTheServingOrigin: Swagger UI's "Try it
// out" calls the server the page came from, whatever its host and port, under
// the docs page's Content-Security-Policy. With an absolute `servers` entry
// (http://localhost:8080) it called that instead, which the CSP refused on
// every other origin, 127.0.0.1 included.
func TestBrowserSwaggerUITryItOutReachesTheServingOrigin(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)

	tdb := testkit.NewDatabase(t)
	base, _, _, env := startServe(t, tdb) // http://127.0.0.1:PORT
	r := runBinary(t, envOf(env), "seed-demo")
	require.Equal(t, 0, r.code, r.stderr)

	b := newBrowser(t, chromium)
	const op = "#operations-resources-listResources"
	b.do(chromedp.Navigate(base+"/docs/"),
		chromedp.WaitVisible(chromedp.CSS(op+" .opblock-summary")),
		chromedp.Click(chromedp.CSS(op+" .opblock-summary")),
		chromedp.WaitVisible(chromedp.CSS(op+" .try-out__btn")),
		chromedp.Click(chromedp.CSS(op+" .try-out__btn")),
		chromedp.WaitVisible(chromedp.CSS(op+" .execute")),
		chromedp.Click(chromedp.CSS(op+" .execute")),
		chromedp.WaitVisible(chromedp.CSS(op+" .live-responses-table tbody .response-col_status")))

	require.Equal(t, base+"/v1/resources", b.text(op+" .request-url pre"), "the request goes to the origin serving the page")
	require.Equal(t, "200", b.text(op+" .live-responses-table tbody .response-col_status"))
	require.Contains(t, b.text(op+" .live-responses-table tbody .response-col_description"), "studio-a")
	b.requireCleanConsole()
}
