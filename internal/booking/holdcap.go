package booking

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/apperr"
)

// HoldCaps bound what one anonymous client can take (SPEC §3.2): at most
// PerClient open unpaid holds per client address and PerEmail per customer
// e-mail, whatever its case. Zero leaves that count unbounded (the command
// line and tests that need many holds); the HTTP layer always sets both.
type HoldCaps struct {
	PerClient int
	PerEmail  int
}

// HoldCapped is the cause of a rate_limited hold refusal: how long until
// enough of the client's or the e-mail's holds lapse.
type HoldCapped struct{ Wait time.Duration }

func (c *HoldCapped) Error() string { return fmt.Sprintf("hold cap reached for %s", c.Wait) }

// RetryAfter is how long the client should wait.
func (c *HoldCapped) RetryAfter() time.Duration { return c.Wait }

// admitHold refuses a hold beyond the caps. It runs first in the hold's
// transaction and takes a lock per client and per e-mail (in that order,
// always before the resource's), held until commit: concurrent holds of one
// client or one e-mail, on any resource and any instance, are counted one
// after the other, so they cannot together exceed a cap.
func admitHold(ctx context.Context, q *db.Queries, req Request, email string) error {
	caps, key := req.Caps, strings.ToLower(email)
	var client *netip.Addr
	if req.Client.IsValid() {
		client = &req.Client
	}
	if caps.PerClient > 0 && client != nil {
		if err := q.AdvisoryLockXact(ctx, "slotpay-holds-client:"+client.String()); err != nil {
			return fmt.Errorf("lock holds of client: %w", err)
		}
	}
	if caps.PerEmail > 0 {
		if err := q.AdvisoryLockXact(ctx, "slotpay-holds-email:"+key); err != nil {
			return fmt.Errorf("lock holds of e-mail: %w", err)
		}
	}
	seconds, err := q.HoldCapWait(ctx, db.HoldCapWaitParams{
		ClientCap: int32(caps.PerClient), ClientAddr: client,
		EmailCap: int32(caps.PerEmail), Email: key,
	})
	if err != nil {
		return fmt.Errorf("count open holds: %w", err)
	}
	if seconds > 0 {
		return apperr.Wrap(&HoldCapped{Wait: time.Duration(seconds) * time.Second}, apperr.RateLimited,
			"too many unpaid holds for this client or e-mail; pay or cancel one, or wait until one lapses")
	}
	return nil
}

// recordClient notes which client the new hold came from, for the caps.
func recordClient(ctx context.Context, q *db.Queries, id uuid.UUID, client netip.Addr) error {
	if !client.IsValid() {
		return nil
	}
	if err := q.BookingSetClientAddr(ctx, db.BookingSetClientAddrParams{ID: id, ClientAddr: &client}); err != nil {
		return fmt.Errorf("record client of booking %s: %w", id, err)
	}
	return nil
}
