package metrics

import (
	"context"
	"net/http"
)

// How a request's route reaches the duration histogram.
//
// A Go 1.22 ServeMux sets r.Pattern on the request it is given, after
// routing. A middleware outside the mux never sees it: the middlewares in
// between (request id, recovery…) pass the mux a copy made by r.WithContext,
// and slotpay's API routes are matched by a second, generated ServeMux behind
// the outer one's "/v1/" subtree. So the work is split:
//
//   - TrackRoute, called by the HTTP layer's one response observer,
//     outermost, puts an empty routeHolder in the context; the observer
//     passes whatever the holder says after the handler returns to
//     ObserveRequest, with the status it saw;
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

// TrackRoute returns r with a place for Route to record the pattern that
// serves it, and a function that returns that pattern (UnmatchedRoute if no
// Route wrapper saw one) once the handler has returned. The one response
// observer of the HTTP layer (internal/httpapi) calls it outermost and
// passes the result to ObserveRequest.
func TrackRoute(r *http.Request) (*http.Request, func() string) {
	holder := &routeHolder{}
	r = r.WithContext(context.WithValue(r.Context(), routeHolderKey{}, holder))
	return r, func() string {
		if holder.pattern == "" {
			return UnmatchedRoute
		}
		return holder.pattern
	}
}

// Route records the ServeMux pattern that served the request for TrackRoute.
// Wrap a *http.ServeMux with it (the mux sets r.Pattern on the request it
// was handed) or a handler registered on a mux (r.Pattern is already set).
// Without TrackRoute before it, it does nothing.
func Route(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if h, ok := r.Context().Value(routeHolderKey{}).(*routeHolder); ok && h.pattern == "" {
			h.pattern = r.Pattern
		}
	})
}
