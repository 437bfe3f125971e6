// The page Stripe Checkout returns to. Arriving here proves nothing: the
// booking is confirmed only when Stripe's signed webhook has landed, so the
// page shows what the API says and asks again until the status is final.
import {
  api, errorText, formatMoney, formatRange, keptManageToken, manageLink, resourcesById, statusBadge,
} from './common.js';

const $ = (id) => document.getElementById(id);
const FAST_POLL_MS = 2000;
const SLOW_POLL_MS = 30000;
const FAST_FOR_MS = 10 * 60 * 1000; // then a payment is settling slowly

// Statuses that can still change on their own, by Stripe's events.
const WAITING = new Set(['pending_payment', 'processing']);

const MESSAGES = {
  pending_payment: ['Payment being confirmed', 'We are waiting for Stripe to confirm your payment. This usually takes a few seconds; this page updates by itself.'],
  processing: ['Payment processing', 'Your payment method takes a while to settle. Your slot stays held; this page updates when Stripe tells us the outcome.'],
  confirmed: ['Booking confirmed', 'Your payment arrived and your slot is yours. See you then!'],
  needs_review: ['Payment received, under review', 'We received a payment that differs from what we expected. Our team will check it and contact you.'],
  refund_pending: ['Refund on its way', 'Your payment arrived after the slot was given to someone else, so we have asked Stripe to refund it in full.'],
  refunded: ['Refunded', 'This booking was refunded in full.'],
  expired: ['Hold expired', 'The slot was released because no payment arrived in time. You have not been charged.'],
  payment_failed: ['Payment failed', 'Your payment did not go through, and the slot was released. You have not been charged.'],
  cancelled: ['Booking cancelled', 'The hold was released. You have not been charged.'],
};

const id = new URLSearchParams(location.search).get('booking_id');
const started = Date.now();
let shown = '';

function show(title, detail, status) {
  $('state').dataset.status = status || '';
  $('state-title').textContent = title;
  $('state-detail').textContent = detail;
}

async function render(b) {
  const resources = await resourcesById().catch(() => new Map());
  const r = resources.get(b.resource_id);
  const tz = r ? r.timezone : 'UTC';
  $('status').replaceChildren(statusBadge(b.status));
  $('where').textContent = r ? r.name : b.resource_id;
  $('when').textContent = formatRange(b.starts_at, b.ends_at, tz);
  $('total').textContent = formatMoney(b.amount_total, b.currency);
  $('booking-id').textContent = b.id;
  $('details').hidden = false;
  const token = keptManageToken(b.id);
  if (token && b.status === 'confirmed') {
    $('manage-link').href = manageLink(b.id, token);
    $('manage').hidden = false;
  }
  if (b.status !== shown) {
    shown = b.status;
    const [title, detail] = MESSAGES[b.status] || [b.status, ''];
    show(title, detail, b.status);
  }
}

async function poll() {
  let waiting = true;
  try {
    const b = await api('GET', `/v1/bookings/${encodeURIComponent(id)}`);
    await render(b);
    waiting = WAITING.has(b.status);
  } catch (err) {
    if (err.status === 400 || err.status === 404) {
      show('Booking not found', errorText(err), 'error');
      waiting = false;
    } else {
      // Keep the last known status on screen and try again.
      $('state-detail').textContent = `Could not check just now: ${errorText(err)} Trying again…`;
    }
  }
  $('poll-note').hidden = !waiting;
  if (waiting) setTimeout(poll, Date.now() - started < FAST_FOR_MS ? FAST_POLL_MS : SLOW_POLL_MS);
}

if (!id) {
  show('No booking given', 'This page needs a booking_id in its address, as Stripe Checkout sends it.', 'error');
} else {
  poll();
}
