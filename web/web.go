// Package web is slotpay's demo front end: a booking page, the pages Stripe
// Checkout returns to, and a back office. Plain HTML, CSS and JavaScript
// embedded in the binary; the pages use only the HTTP API, as any other
// client would, so nothing privileged lives here: every permission is the
// API's to enforce.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"slices"
)

//go:embed pages/*.html static/*
var files embed.FS

// pageCSP lets a page load its own scripts and styles and call this
// origin's API, and nothing else: no inline script or style, no framing.
// Navigating to Stripe Checkout is a top-level navigation, which no CSP
// directive governs.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// pages maps each page's route pattern to its file.
var pages = map[string]string{
	"/{$}":             "pages/index.html",
	"/booking/success": "pages/success.html",
	"/booking/cancel":  "pages/cancel.html",
	"/booking/manage":  "pages/manage.html",
	"/admin":           "pages/admin.html",
}

// Paths are the ServeMux patterns (without a method) that Handler serves:
// the pages, /admin/ (a redirect to /admin) and every static asset by its
// exact path, so that the server's own answer for unknown paths stays in
// charge of everything else.
func Paths() []string {
	paths := []string{"/admin/{$}"}
	for p := range pages {
		paths = append(paths, p)
	}
	assets, err := fs.Glob(files, "static/*")
	if err != nil {
		panic(err) // the pattern is constant
	}
	for _, a := range assets {
		paths = append(paths, "/"+a)
	}
	slices.Sort(paths)
	return paths
}

// Handler serves the pages and their assets at Paths (GET and HEAD).
func Handler() http.Handler {
	mux := http.NewServeMux()
	for pattern, file := range pages {
		mux.HandleFunc("GET "+pattern, servePage(file))
	}
	mux.HandleFunc("GET /admin/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin", http.StatusMovedPermanently)
	})
	assets := http.FileServerFS(files)
	mux.HandleFunc("GET /static/{file}", func(w http.ResponseWriter, r *http.Request) {
		// Only files, never a directory listing.
		if _, err := fs.Stat(files, "static/"+r.PathValue("file")); err != nil {
			http.NotFound(w, r)
			return
		}
		assets.ServeHTTP(w, r)
	})
	return mux
}

func servePage(file string) http.HandlerFunc {
	body, err := files.ReadFile(file)
	if err != nil {
		panic(err) // embedded at build time: a missing page is a build mistake
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", pageCSP)
		_, _ = w.Write(body)
	}
}
