package testkit

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Delivery is one round of webhook deliveries, made the way Stripe makes
// them: at least once (an event stays queued until an endpoint answers 2xx,
// and now and then is sent again after that), in any order, several at a
// time, each signed when it is sent.
type Delivery struct {
	// URL is the webhook endpoint; Secret its signing secret.
	URL, Secret string
	// Rand chooses the order, the events of this round and the duplicates;
	// seeded by the test, so a round is reproducible as far as the
	// scheduler allows.
	Rand *rand.Rand
	// Max is how many queued events this round sends (0: all of them);
	// a round after an outage sends everything at once.
	Max int
	// Concurrency is how many requests are in flight at once (default 4).
	Concurrency int
	// Duplicate is the chance that an event is sent twice in the round,
	// and that one answered 2xx stays queued to be sent again later.
	Duplicate float64
	// Client sends the requests (default a client with a 30 s timeout).
	Client *http.Client
}

// DeliveryReport is what a round did.
type DeliveryReport struct {
	// Sent counts requests; Acknowledged lists the ids of events answered
	// 2xx (an id may appear twice); Failed counts requests answered
	// otherwise or not at all (those events stay queued).
	Sent         int
	Acknowledged []string
	Failed       int
	Duplicates   int
	// Order is the event types in the order the round started them.
	Order []string
}

// QueuedEvents is how many emitted events await a 2xx.
func (f *StripeFake) QueuedEvents() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.outbox)
}

// DeliverEvents runs one round of deliveries of the queued events.
func (f *StripeFake) DeliverEvents(ctx context.Context, d Delivery) DeliveryReport {
	if d.Concurrency <= 0 {
		d.Concurrency = 4
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 30 * time.Second}
	}
	f.mu.Lock()
	queued := append([]*outboxEvent(nil), f.outbox...)
	d.Rand.Shuffle(len(queued), func(i, j int) { queued[i], queued[j] = queued[j], queued[i] })
	if d.Max > 0 && d.Max < len(queued) {
		queued = queued[:d.Max]
	}
	var sends []*outboxEvent
	var rep DeliveryReport
	keepAfterAck := map[*outboxEvent]bool{}
	for _, e := range queued {
		sends = append(sends, e)
		if d.Rand.Float64() < d.Duplicate {
			sends = append(sends, e)
			rep.Duplicates++
		}
		if d.Rand.Float64() < d.Duplicate {
			keepAfterAck[e] = true
		}
	}
	// Duplicates go anywhere in the round, not next to their original.
	d.Rand.Shuffle(len(sends), func(i, j int) { sends[i], sends[j] = sends[j], sends[i] })
	for _, e := range sends {
		f.sentAll[e.id]++
		rep.Order = append(rep.Order, e.typ)
	}
	f.mu.Unlock()

	var (
		mu    sync.Mutex
		acked = map[*outboxEvent]bool{}
		wg    sync.WaitGroup
		slots = make(chan struct{}, d.Concurrency)
	)
	for _, e := range sends {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			ok := postEvent(ctx, d, e.raw)
			mu.Lock()
			defer mu.Unlock()
			rep.Sent++
			if ok {
				acked[e] = true
				rep.Acknowledged = append(rep.Acknowledged, e.id)
			} else {
				rep.Failed++
			}
		}()
	}
	wg.Wait()

	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.outbox[:0]
	for _, e := range f.outbox {
		if !acked[e] || keepAfterAck[e] {
			kept = append(kept, e)
		}
	}
	f.outbox = kept
	return rep
}

func postEvent(ctx context.Context, d Delivery, raw []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(raw))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	req.Header.Set("Stripe-Signature", SignatureHeader(raw, d.Secret, time.Now()))
	resp, err := d.Client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// DeliveryAttempts is how many times the event was sent to a webhook.
func (f *StripeFake) DeliveryAttempts(eventID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sentAll[eventID]
}
