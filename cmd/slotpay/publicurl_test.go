package main

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPublicURLMismatch_WarnsWhenLISTEN_ADDRMovedWithoutPUBLIC_BASE_URL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		public, addr string
		warn         bool
	}{
		{"http://localhost:8080", "127.0.0.1:9090", true},
		{"http://127.0.0.1:8080", ":9090", true},
		{"http://localhost", "127.0.0.1:8080", true},
		{"http://localhost:8080", ":8080", false},
		{"http://127.0.0.1:9090", "127.0.0.1:9090", false},
		{"https://bookings.example.com", "127.0.0.1:9090", false}, // behind a proxy
	} {
		u, err := url.Parse(c.public)
		require.NoError(t, err)
		msg, warn := publicURLMismatch(u, c.addr)
		require.Equal(t, c.warn, warn, "%s with %s: %s", c.public, c.addr, msg)
		if warn {
			require.Contains(t, msg, "PUBLIC_BASE_URL")
		}
	}
}
