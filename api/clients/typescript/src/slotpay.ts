// A slotpay client for integrators: openapi-fetch over the types that
// openapi-typescript generates from api/openapi.yaml (src/schema.d.ts, by
// `npm run generate`). Every request and answer is typed by the contract:
// a 409's `code` is one of the three a 409 can carry, a nullable field is
// `T | null`, and a field the contract does not name does not compile.
import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type Booking = components["schemas"]["Booking"];
export type Resource = components["schemas"]["Resource"];
export type Slot = components["schemas"]["Slot"];
export type ErrorEnvelope = components["schemas"]["ErrorEnvelope"];
export type ConflictError = components["schemas"]["ConflictError"];
export type ConflictCode = ConflictError["error"]["code"];

// openapi-fetch types `error` as any error body of the operation; the
// status tells which one it is (each status has its own schema).
export function isConflict(status: number, body: ErrorEnvelope | ConflictError | object): body is ConflictError {
  return status === 409;
}

export type SlotpayClient = ReturnType<typeof createSlotpayClient>;

// The contract's server is relative (`/`): the caller says where slotpay is.
export function createSlotpayClient(baseUrl: string) {
  return createClient<paths>({ baseUrl });
}

// SlotpayError carries the envelope of an answer that was not a success,
// and its request id, which slotpay's logs know it by.
export class SlotpayError extends Error {
  constructor(
    readonly status: number,
    readonly envelope: ErrorEnvelope,
  ) {
    super(`${status} ${envelope.error.code}: ${envelope.error.message} (${envelope.error.request_id})`);
    this.name = "SlotpayError";
  }
}

// An Idempotency-Key per attempt at one intent: retrying with the same key
// after a timeout can never hold a second slot.
export function idempotencyKey(): string {
  return crypto.randomUUID();
}
