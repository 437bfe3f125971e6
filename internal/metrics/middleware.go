package metrics

import (
	"context"
	"net/http"
	"time"
)

// How a request's route reaches the duration histogram.
//
// A Go 1.22 ServeMux sets r.Pattern on the request it is given, after
// routing. A middleware outside the mux never sees it: the middlewares in
// between (request id, recovery…) pass the mux a copy made by r.WithContext,
// and slotpay's API routes are matched by a second, generated ServeMux behind
// the outer one's "/v1/" subtree. So the work is split:
//
//   - Middleware, outermost, puts an empty routeHolder in the context, wraps
//     the ResponseWriter to see the status, and observes the duration after
//     the handler returns, labelled with whatever the holder then says;
//   - Route, wrapped around a ServeMux or around a handler registered on one,
//     copies r.Pattern into the holder after the handler returns. Inner
//     wrappers return first, so the innermost, most specific pattern wins
//     ("POST /v1/bookings", not "/v1/").
//
// Labels are route patterns, never raw paths, so the series stay bounded
// whatever paths clients send. A request no mux matched is "unmatched".

type routeHolderKey struct{}

type routeHolder struct{ pattern string }

// UnmatchedRoute labels requests for which no Route wrapper saw a pattern.
const UnmatchedRoute = "unmatched"

// Middleware observes every request's duration by route pattern and status
// code. Put it outermost, and Route around the mux(es) inside.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		holder := &routeHolder{}
		rec := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), routeHolderKey{}, holder))
		next.ServeHTTP(rec, r)
		route := holder.pattern
		if route == "" {
			route = r.Pattern // Middleware itself mounted on a mux
		}
		if route == "" {
			route = UnmatchedRoute
		}
		m.observeRequest(route, rec.code(), time.Since(start))
	})
}

// Route records the ServeMux pattern that served the request for Middleware.
// Wrap a *http.ServeMux with it (the mux sets r.Pattern on the request it
// was handed) or a handler registered on a mux (r.Pattern is already set).
// Without Middleware around it, it does nothing.
func Route(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if h, ok := r.Context().Value(routeHolderKey{}).(*routeHolder); ok && h.pattern == "" {
			h.pattern = r.Pattern
		}
	})
}

// statusWriter remembers the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses working for handlers that type-assert
// http.Flusher; http.ResponseController finds the rest through Unwrap.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// code is the status the client got: a handler that wrote nothing answered
// 200.
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
