// The customer flow against a running slotpay: find a resource, pick
// tomorrow's first free slot, hold it (and retry the hold, as a client after
// a timeout would), start checkout, then wait for Stripe's webhook to confirm
// the booking. Run it with `npm run flow -- BASE_URL [RESOURCE_SLUG]` and pay
// the printed booking with `bin/slotpay dev pay` (or on Stripe's page).
import {
  createSlotpayClient,
  idempotencyKey,
  isConflict,
  SlotpayError,
  type Booking,
  type ConflictCode,
} from "./slotpay.js";

const [baseUrl = "http://localhost:8080", slug = "studio-a"] = process.argv.slice(2);
const client = createSlotpayClient(baseUrl);

function fail(message: string): never {
  throw new Error(message);
}

const resources = await client.GET("/v1/resources");
if (resources.error) throw new SlotpayError(resources.response.status, resources.error);
const resource = resources.data.items.find((r) => r.slug === slug) ?? fail(`no resource ${slug}`);

const day = new Date(Date.now() + 24 * 60 * 60 * 1000).toISOString().slice(0, 10);
const availability = await client.GET("/v1/resources/{id}/availability", {
  params: { path: { id: resource.id }, query: { date: day } },
});
if (availability.error) throw new SlotpayError(availability.response.status, availability.error);
const slot = availability.data.slots[0] ?? fail(`${slug} has no free slot on ${day}`);

const key = idempotencyKey();
const hold = {
  resource_id: resource.id,
  starts_at: slot.starts_at,
  ends_at: slot.ends_at,
  customer: { email: "ada@example.com", name: "Ada Lovelace" },
};
const held = await client.POST("/v1/bookings", { params: { header: { "Idempotency-Key": key } }, body: hold });
if (held.error) throw new SlotpayError(held.response.status, held.error);
const booking: Booking = held.data;
console.log(`held ${booking.id}: ${booking.amount_total} ${booking.currency}, hold until ${booking.hold_expires_at}`);

// The same key again is the same answer, replayed: no second booking.
const retried = await client.POST("/v1/bookings", { params: { header: { "Idempotency-Key": key } }, body: hold });
if (retried.error) throw new SlotpayError(retried.response.status, retried.error);
if (retried.data.id !== booking.id || retried.response.headers.get("Idempotent-Replayed") !== "true") {
  fail("the retried hold was not the replay of the first");
}

// Another key for the same slot is another customer: the database refuses
// the overlap, and the 409's code is typed as one of the three a 409 carries.
const taken = await client.POST("/v1/bookings", {
  params: { header: { "Idempotency-Key": idempotencyKey() } },
  body: hold,
});
if (!taken.error || !isConflict(taken.response.status, taken.error)) fail("the taken slot was not refused with a 409");
const conflict: ConflictCode = taken.error.error.code;
if (conflict !== "slot_unavailable") fail(`expected slot_unavailable, got ${conflict}`);
console.log(`the same slot again: 409 ${conflict}, request ${taken.error.error.request_id}`);

const checkout = await client.POST("/v1/bookings/{id}/checkout", {
  params: { path: { id: booking.id }, header: { "Idempotency-Key": idempotencyKey() } },
});
if (checkout.error) throw new SlotpayError(checkout.response.status, checkout.error);
console.log(`checkout ${checkout.data.checkout_session_id}: send the customer to ${checkout.data.checkout_url}`);
// A line a script can wait for before paying.
console.log(`BOOKING=${booking.id}`);

// Coming back from Stripe proves nothing: only the webhook confirms. Poll.
const deadline = Date.now() + 120_000;
for (;;) {
  const got = await client.GET("/v1/bookings/{id}", { params: { path: { id: booking.id } } });
  if (got.error) throw new SlotpayError(got.response.status, got.error);
  const sessionId: string | null = got.data.checkout_session_id;
  if (got.data.status === "confirmed") {
    console.log(`confirmed ${booking.id} (session ${sessionId ?? "none"})`);
    break;
  }
  if (got.data.status !== "pending_payment" && got.data.status !== "processing") {
    fail(`booking ended ${got.data.status}`);
  }
  if (Date.now() > deadline) fail(`booking still ${got.data.status} after two minutes`);
  await new Promise((resolve) => setTimeout(resolve, 500));
}
