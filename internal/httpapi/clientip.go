package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// clientIP is who sent the request, as far as the server can know: the
// socket's peer, unless that peer is a configured proxy. Then the
// right-most X-Forwarded-For address that is not a trusted proxy is the
// client; everything left of it could be written by the client itself.
// Without TRUSTED_PROXIES no header is believed.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	peer = peer.Unmap().WithZone("")
	if !isTrusted(peer, trusted) {
		return peer
	}
	hops := forwardedFor(r.Header.Values("X-Forwarded-For"))
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(hops[i])
		if err != nil {
			// A garbled hop: the last address a trusted proxy vouched
			// for is as far as the chain can be believed.
			return client
		}
		client = hop.Unmap().WithZone("")
		if !isTrusted(client, trusted) {
			return client
		}
	}
	return client
}

func forwardedFor(values []string) []string {
	var hops []string
	for _, v := range values {
		for hop := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// clientBucket is the unit that rate limits and login throttling count: an
// IPv4 address, or the /64 of an IPv6 address, since one IPv6 client
// usually holds a whole /64.
func clientBucket(addr netip.Addr) netip.Addr {
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

// withClientIP works out the client's bucket once per request. Requests
// that carry X-Forwarded-For while no proxy is trusted are most likely
// behind a proxy that TRUSTED_PROXIES does not name, which makes every
// customer one client: that is said once in the log (SPEC §3.2).
func (s *Server) withClientIP(trusted []netip.Prefix, next http.Handler) http.Handler {
	var warn sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(trusted) == 0 && r.Header.Get("X-Forwarded-For") != "" {
			warn.Do(func() {
				s.logger.LogAttrs(r.Context(), slog.LevelWarn,
					"requests carry X-Forwarded-For but TRUSTED_PROXIES is empty: every client behind that proxy "+
						"counts as one address for rate limits, hold caps and sign-in throttling; set TRUSTED_PROXIES to the proxy's address",
					slog.String("request_id", requestID(r.Context())), slog.String("peer", r.RemoteAddr))
			})
		}
		ctx := context.WithValue(r.Context(), clientIPKey, clientBucket(clientIP(r, trusted)))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func clientFrom(ctx context.Context) netip.Addr {
	addr, ok := ctx.Value(clientIPKey).(netip.Addr)
	if !ok {
		return netip.IPv4Unspecified()
	}
	return addr
}
