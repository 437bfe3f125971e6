package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for name, c := range map[string]struct {
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		"SocketWithoutProxies":         {"203.0.113.5:4000", []string{"198.51.100.1"}, nil, "203.0.113.5"},
		"UntrustedPeerHeaderIgnored":   {"203.0.113.5:4000", []string{"198.51.100.1"}, proxies, "203.0.113.5"},
		"TrustedPeerRightMostClient":   {"10.0.0.2:4000", []string{"1.1.1.1, 198.51.100.1"}, proxies, "198.51.100.1"},
		"SkipsEveryTrustedHop":         {"10.0.0.2:4000", []string{"1.1.1.1, 198.51.100.1, 10.9.9.9"}, proxies, "198.51.100.1"},
		"SeveralHeaderLines":           {"10.0.0.2:4000", []string{"1.1.1.1", "198.51.100.1"}, proxies, "198.51.100.1"},
		"GarbageStopsAtTheLastTrusted": {"10.0.0.2:4000", []string{"198.51.100.1, bogus"}, proxies, "10.0.0.2"},
		"OnlyProxies":                  {"10.0.0.2:4000", []string{"10.0.0.3"}, proxies, "10.0.0.3"},
		"NoHeaderFromTrustedPeer":      {"10.0.0.2:4000", nil, proxies, "10.0.0.2"},
		"MappedIPv4":                   {"[::ffff:203.0.113.5]:4000", nil, nil, "203.0.113.5"},
		"IPv6":                         {"[2001:db8::1]:4000", nil, nil, "2001:db8::1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			require.Equal(t, c.want, clientIP(r, c.trusted).String())
		})
	}
}

func TestClientBucketGroupsAnIPv6Slash64(t *testing.T) {
	t.Parallel()
	require.Equal(t, clientBucket(netip.MustParseAddr("2001:db8:1:2::1")), clientBucket(netip.MustParseAddr("2001:db8:1:2:ffff::9")))
	require.NotEqual(t, clientBucket(netip.MustParseAddr("2001:db8:1:2::1")), clientBucket(netip.MustParseAddr("2001:db8:1:3::1")))
	require.Equal(t, "192.0.2.7", clientBucket(netip.MustParseAddr("192.0.2.7")).String())
}

func TestForwardedForWithoutTrustedProxiesWarnsOnce(t *testing.T) {
	t.Parallel()
	serve := func(trusted []netip.Prefix, xff string) string {
		var logs strings.Builder
		s := &Server{logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		h := s.withClientIP(trusted, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		for range 3 {
			r := httptest.NewRequest("GET", "/", nil)
			if xff != "" {
				r.Header.Set("X-Forwarded-For", xff)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
		return logs.String()
	}
	logs := serve(nil, "198.51.100.1")
	require.Equal(t, 1, strings.Count(logs, "TRUSTED_PROXIES is empty"), logs)
	require.Contains(t, logs, `"level":"WARN"`)
	require.Empty(t, serve(nil, ""), "no header, nothing to say")
	require.Empty(t, serve([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, "198.51.100.1"), "a proxy is configured")
}
