package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/web"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestPagesAreServedUnderTheirPolicy(t *testing.T) {
	t.Parallel()
	h := web.Handler()
	for _, path := range []string{"/", "/booking/success?booking_id=x", "/booking/cancel?booking_id=x", "/admin"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			rec := get(t, h, path)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
			csp := rec.Header().Get("Content-Security-Policy")
			require.Contains(t, csp, "script-src 'self';")
			require.Contains(t, csp, "style-src 'self';")
			require.NotContains(t, csp, "unsafe")
			require.Contains(t, rec.Body.String(), `<html lang="en">`)
		})
	}
}

// The policy allows no inline script, style or event handler, so a page
// that had one would break in the browser: catch it here first.
func TestPagesHaveNothingInline(t *testing.T) {
	t.Parallel()
	h := web.Handler()
	inline := []*regexp.Regexp{
		regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`<script(?:\s+type="module")?>`),
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(src|href)="(https?:)?//`), // nothing from another origin
	}
	for _, path := range []string{"/", "/booking/success", "/booking/cancel", "/admin"} {
		body := get(t, h, path).Body.String()
		for _, re := range inline {
			require.NotRegexp(t, re, body, path)
		}
		// Every asset a page names is served.
		for _, m := range regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(body, -1) {
			require.Equal(t, http.StatusOK, get(t, h, m[1]).Code, "%s names %s", path, m[1])
		}
	}
}

// The scripts put text from the API (names, e-mails, messages) on the page
// as text only, never as HTML.
func TestScriptsNeverParseHTML(t *testing.T) {
	t.Parallel()
	h := web.Handler()
	for _, p := range web.Paths() {
		if !strings.HasSuffix(p, ".js") {
			continue
		}
		rec := get(t, h, p)
		require.Equal(t, http.StatusOK, rec.Code, p)
		require.Equal(t, "text/javascript; charset=utf-8", rec.Header().Get("Content-Type"), p)
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			require.NotContains(t, rec.Body.String(), sink, p)
		}
	}
}

func TestPathsAreExactlyWhatIsServed(t *testing.T) {
	t.Parallel()
	h := web.Handler()
	paths := web.Paths()
	require.Contains(t, paths, "/{$}")
	require.Contains(t, paths, "/admin")
	require.Contains(t, paths, "/static/app.css")
	for _, p := range paths {
		path := strings.TrimSuffix(p, "{$}")
		rec := get(t, h, path)
		if path == "/admin/" {
			require.Equal(t, http.StatusMovedPermanently, rec.Code)
			require.Equal(t, "/admin", rec.Header().Get("Location"))
			continue
		}
		require.Equal(t, http.StatusOK, rec.Code, path)
	}

	rec := get(t, h, "/static/")
	require.Equal(t, http.StatusNotFound, rec.Code, "no directory listing")
	rec = get(t, h, "/static/missing.js")
	require.Equal(t, http.StatusNotFound, rec.Code)
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	require.NotContains(t, string(body), "app.css")
}
