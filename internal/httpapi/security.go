package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/httprate"

	"github.com/slotpay/slotpay/internal/apperr"
)

// apiCSP suits responses that are data, never pages: nothing may load,
// nothing may frame them.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// docsCSP allows the Swagger UI page exactly what it needs: its scripts and
// styles from /docs/, its two inline scripts by hash (computed from the page
// itself, see inlineScriptHashes), inline styles (the page has a <style>
// block and the UI sets styles as it renders), data: images for its icons,
// and requests to this origin for the spec and "Try it out".
func docsCSP(scriptHashes []string) string {
	return "default-src 'none'; script-src 'self' " + strings.Join(scriptHashes, " ") +
		"; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'" +
		"; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// inlineScriptHashes renders the docs page once and returns the CSP hash of
// each inline script on it, so that the policy follows the page when the
// Swagger UI module changes it.
func inlineScriptHashes(docs http.Handler) ([]string, error) {
	rec := httptest.NewRecorder()
	docs.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs/", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("render /docs/: status %d", rec.Code)
	}
	var hashes []string
	for _, m := range inlineScript.FindAllStringSubmatch(rec.Body.String(), -1) {
		sum := sha256.Sum256([]byte(m[1]))
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	return hashes, nil
}

// withSecurityHeaders sets what every response carries: no MIME sniffing,
// no referrer, no framing, a content policy, and no caching of API data,
// which can hold customers' details.
func withSecurityHeaders(docsPolicy string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.URL.Path == "/docs/" || r.URL.Path == "/docs" {
			h.Set("Content-Security-Policy", docsPolicy)
		} else {
			h.Set("Content-Security-Policy", apiCSP)
		}
		if !strings.HasPrefix(r.URL.Path, "/docs/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// withCrossOriginProtection refuses state-changing requests that a browser
// says come from another site (Sec-Fetch-Site, or an Origin that is not
// this host). Requests without those headers, such as Stripe's webhooks and
// server-to-server calls, are not from a browser and pass; a browser always
// sends them, so a forged cross-site form or fetch cannot ride an admin's
// cookie.
func (s *Server) withCrossOriginProtection(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, apperr.New(apperr.Forbidden, "cross-site requests are refused"))
	}))
	return cop.Handler(next)
}

// RateLimit is how many state-changing requests one client may send per
// window.
type RateLimit struct {
	Requests int
	Window   time.Duration
}

// DefaultRateLimit is generous for a person booking or an operator at work,
// and stops a script from hammering the database or the password hash.
var DefaultRateLimit = RateLimit{Requests: 60, Window: time.Minute}

// limitWrites limits the state-changing requests of each client (by the
// same client address that login throttling uses); reads pass. Counters
// live in this process: this bounds load, while the login throttle, which
// must hold across instances, is in PostgreSQL.
func (s *Server) limitWrites(limit RateLimit, next http.Handler) http.Handler {
	if limit.Requests <= 0 {
		return next
	}
	limited := httprate.LimitBy(limit.Requests, limit.Window,
		func(r *http.Request) (string, error) { return clientFrom(r.Context()).String(), nil },
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, apperr.Wrap(retryAfter(limit.Window), apperr.RateLimited, "too many requests; slow down"))
		}),
	)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
		default:
			limited.ServeHTTP(w, r)
		}
	})
}

// retryAfter is an error that says how long to wait; writeError turns it
// into the Retry-After header.
type retryAfter time.Duration

func (d retryAfter) Error() string             { return "retry after " + time.Duration(d).String() }
func (d retryAfter) RetryAfter() time.Duration { return time.Duration(d) }

type waitError interface {
	error
	RetryAfter() time.Duration
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}
