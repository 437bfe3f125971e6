package testkit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Receiver is a merchant's webhook endpoint as a merchant would write it,
// with the standard library only (net/http, crypto/hmac): it checks
// Slotpay-Signature (HMAC-SHA256 of "t.body" under its secret, any v1,
// constant-time compare, five minutes' tolerance), deduplicates on the event
// id, and can answer 500 to its first requests, as an endpoint that is down.
type Receiver struct {
	URL string

	mu       sync.Mutex
	secret   string
	failFor  int
	requests int
	bad      int
	events   map[string]ReceivedEvent
	attempts map[string]int
}

// ReceivedEvent is one event the receiver accepted.
type ReceivedEvent struct {
	Type string
	Body []byte
}

// NewReceiver starts a receiver on a loopback port that answers 500 to its
// first failFor requests that verify.
func NewReceiver(t testing.TB, failFor int) *Receiver {
	r := &Receiver{failFor: failFor, events: map[string]ReceivedEvent{}, attempts: map[string]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// SetSecret is the secret the endpoint was given (shown once by slotpay).
func (r *Receiver) SetSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if !VerifySlotpaySignature(req.Header.Get("Slotpay-Signature"), body, r.secret, time.Now()) {
		r.bad++
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.attempts[ev.ID]++
	if r.requests <= r.failFor {
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	}
	r.events[ev.ID] = ReceivedEvent{Type: ev.Type, Body: body}
	w.WriteHeader(http.StatusNoContent)
}

// Seen returns the accepted events by id, the requests that verified per
// event id, and the counts of all requests and of those that did not
// verify.
func (r *Receiver) Seen() (events map[string]ReceivedEvent, attempts map[string]int, requests, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	events, attempts = map[string]ReceivedEvent{}, map[string]int{}
	for k, v := range r.events {
		events[k] = v
	}
	for k, v := range r.attempts {
		attempts[k] = v
	}
	return events, attempts, r.requests, r.bad
}

// VerifySlotpaySignature is the merchant's check: some v1 of header equals
// HMAC-SHA256(secret, t + "." + body), and t is within five minutes of now.
func VerifySlotpaySignature(header string, body []byte, secret string, now time.Time) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}
