// The manage page (SPEC §3.1), opened from the confirmation e-mail's link
// /booking/manage?booking_id=…#token=…: shows the booking and what a cancel
// would refund, and offers cancel and reschedule. The manage_token comes in
// the fragment, which no server ever sees; it is kept for this tab and
// taken out of the address bar, then sent as a bearer token.
import {
  api, errorText, formatMoney, formatRange, formatClock, formatInstant, el, say, statusBadge,
  resourcesById, localDate, newIdempotencyKey, keepManageToken, keptManageToken,
} from './common.js';

const $ = (id) => document.getElementById(id);
const id = new URLSearchParams(location.search).get('booking_id') || '';

function tokenFromLink() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get('token') || '';
  if (token) {
    keepManageToken(id, token);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return token || keptManageToken(id);
}

const token = tokenFromLink();
let booking;
let resource;

function policyText(p) {
  const parts = [`full refund up to ${p.full_refund_hours_before} h before the start`];
  if (p.partial_refund_percent > 0) {
    parts.push(`${p.partial_refund_percent} % up to ${p.partial_refund_hours_before} h before`);
  }
  parts.push('nothing after that');
  return parts.join(', ');
}

function render(b) {
  booking = b;
  const tz = resource ? resource.timezone : 'UTC';
  $('status').replaceChildren(statusBadge(b.status));
  $('status').dataset.status = b.status;
  $('where').textContent = resource ? resource.name : b.resource_id;
  $('when').textContent = formatRange(b.starts_at, b.ends_at, tz);
  $('customer').textContent = b.customer ? `${b.customer.name} <${b.customer.email}>` : '—';
  $('total').textContent = formatMoney(b.amount_total, b.currency);
  $('policy').textContent = b.cancellation_policy ? policyText(b.cancellation_policy) : '—';
  $('booking-id').textContent = b.id;
  const refunded = b.refund_amount !== undefined && b.refund_amount !== null;
  $('refund-label').hidden = $('refund').hidden = !refunded;
  if (refunded) $('refund').textContent = formatMoney(b.refund_amount, b.currency);
  $('details').hidden = false;

  const confirmed = b.status === 'confirmed';
  $('cancel-panel').hidden = !confirmed;
  $('refund-now').textContent = formatMoney(b.cancel_refund_amount || 0, b.currency);
  const movable = confirmed && b.reschedule_until && new Date(b.reschedule_until) > new Date();
  $('resched-panel').hidden = !movable;
  if (movable) {
    $('resched-until').textContent = `You can move it until ${formatInstant(b.reschedule_until, tz)}, to a time of the same length and price.`;
    if (!$('resched-date').value) {
      $('resched-date').value = localDate(new Date(b.starts_at), tz);
      loadSlots();
    }
  }
}

async function load() {
  const [b, resources] = await Promise.all([
    api('GET', `/v1/bookings/${encodeURIComponent(id)}`, { token }),
    resourcesById().catch(() => new Map()),
  ]);
  resource = resources.get(b.resource_id);
  render(b);
}

// loadSlots lists the starts of the chosen day from which a run of free
// slots as long as the booking begins.
async function loadSlots() {
  const day = $('resched-date').value;
  const list = $('resched-slots');
  list.replaceChildren();
  if (!day || !booking) return;
  $('resched-status').textContent = 'Looking for free times…';
  let avail;
  try {
    avail = await api('GET', `/v1/resources/${encodeURIComponent(booking.resource_id)}/availability?date=${day}`);
  } catch (err) {
    $('resched-status').textContent = errorText(err);
    return;
  }
  const length = new Date(booking.ends_at) - new Date(booking.starts_at);
  const step = resource ? resource.slot_minutes * 60000 : 0;
  const free = new Set(avail.slots.map((s) => new Date(s.starts_at).getTime()));
  const starts = avail.slots
    .map((s) => new Date(s.starts_at).getTime())
    .filter((t) => t !== new Date(booking.starts_at).getTime())
    .filter((t) => {
      for (let at = t; at < t + length; at += step || length) if (!free.has(at)) return false;
      return true;
    });
  $('resched-status').textContent = starts.length ? '' : 'No free time of this length on that day.';
  for (const t of starts) {
    const from = new Date(t).toISOString();
    const to = new Date(t + length).toISOString();
    list.append(el('button', {
      type: 'button', 'data-start': from,
      onclick: () => reschedule(from, to),
    }, formatClock(from, avail.timezone)));
  }
}

async function reschedule(startsAt, endsAt) {
  say($('notice'), 'Moving your booking…');
  try {
    await api('POST', `/v1/bookings/${encodeURIComponent(id)}/reschedule`, {
      token, idempotencyKey: newIdempotencyKey(), body: { starts_at: startsAt, ends_at: endsAt },
    });
  } catch (err) {
    say($('notice'), errorText(err), 'error');
    loadSlots();
    return;
  }
  await load();
  say($('notice'), 'Moved. Your booking is confirmed for the new time.', 'ok');
  loadSlots();
}

async function cancel() {
  $('cancel').disabled = true;
  say($('notice'), 'Cancelling…');
  try {
    await api('POST', `/v1/bookings/${encodeURIComponent(id)}/cancel`, { token, idempotencyKey: newIdempotencyKey() });
  } catch (err) {
    $('cancel').disabled = false;
    say($('notice'), errorText(err), 'error');
    return;
  }
  await load();
  const refund = booking.refund_amount || 0;
  say($('notice'), refund > 0
    ? `Cancelled. A refund of ${formatMoney(refund, booking.currency)} is on its way to your payment method.`
    : 'Cancelled. Under the cancellation policy nothing is refunded now.', 'ok');
}

$('cancel').addEventListener('click', cancel);
$('resched-date').addEventListener('change', loadSlots);

if (!id || !token) {
  say($('notice'), 'This page needs the manage link from your confirmation e-mail.', 'error');
} else {
  load().catch((err) => say($('notice'), errorText(err), 'error'));
}
