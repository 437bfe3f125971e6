package main

import (
	"net"
	"net/url"
)

// publicURLMismatch says why PUBLIC_BASE_URL cannot reach a server that
// listens on addr, when it names this machine at another port: the usual
// slip when LISTEN_ADDR moves and PUBLIC_BASE_URL keeps its default, after
// which Stripe's return pages and `dev pay` knock on the old port. A public
// URL naming another host (a proxy, a tunnel) is not second-guessed.
func publicURLMismatch(public *url.URL, addr string) (string, bool) {
	host := public.Hostname()
	if host != "localhost" && !net.ParseIP(host).IsLoopback() {
		return "", false
	}
	port := public.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[public.Scheme]
	}
	_, listenPort, err := net.SplitHostPort(addr)
	if err != nil || listenPort == port {
		return "", false
	}
	return "PUBLIC_BASE_URL " + public.String() + " names port " + port + " of this machine, but slotpay listens on " +
		addr + ": set PUBLIC_BASE_URL to the address clients use (e.g. http://127.0.0.1:" + listenPort + ")", true
}
