package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDemoPages: the pages are served beside the API under their own
// policy, and every path the web package does not have still gets the JSON
// 404 envelope.
func TestDemoPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	get := func(t *testing.T, path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(b.url + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}

	for _, path := range []string{"/", "/booking/success?booking_id=x", "/booking/cancel?booking_id=x", "/admin"} {
		t.Run("Page"+strings.ReplaceAll(path, "/", "_"), func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, path)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			csp := resp.Header.Get("Content-Security-Policy")
			require.Contains(t, csp, "default-src 'none'")
			require.Contains(t, csp, "script-src 'self'")
			require.Contains(t, csp, "connect-src 'self'")
			require.Contains(t, csp, "frame-ancestors 'none'")
			require.NotContains(t, csp, "unsafe")
			require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
			require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
			require.Contains(t, body, "<!doctype html>")
		})
	}
	t.Run("Asset", func(t *testing.T) {
		t.Parallel()
		resp, _ := get(t, "/static/app.css")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/css; charset=utf-8", resp.Header.Get("Content-Type"))
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	})
	for _, path := range []string{"/static/missing.js", "/static/", "/booking/", "/booking/other", "/admin/x", "/index.html"} {
		t.Run("NotFound"+strings.ReplaceAll(path, "/", "_"), func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, path)
			require.Equal(t, http.StatusNotFound, resp.StatusCode)
			var envelope struct {
				Error struct{ Code string } `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &envelope), body)
			require.Equal(t, "not_found", envelope.Error.Code)
		})
	}
	t.Run("PagesOnlyAnswerGET", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Post(b.url+"/admin", "text/plain", nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		require.Equal(t, "GET", resp.Header.Get("Allow"))
	})
}
