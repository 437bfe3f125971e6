// The booking page: resource → day → slot (and length) → who, then hold
// the slot (POST /v1/bookings), open a Checkout Session for it and go to
// Stripe. The server computes the price; the page only previews it.
import {
  api, ApiError, newIdempotencyKey, errorText, formatMoney, formatDay, formatClock, formatRange,
  localDate, addDays, el, say,
  keepManageToken,
} from './common.js';

const $ = (id) => document.getElementById(id);
const LAST_BOOKING = 'slotpay.lastBooking';
// How many days ahead the page looks for the first day with a free slot.
const SEARCH_DAYS = 14;

const state = {
  resources: [],
  resource: null,
  day: '',
  slots: [], // the day's free slots, in order
  start: -1, // index into slots of the chosen start
  length: 0, // number of slots
  held: null, // {booking, selection}: a hold whose checkout has not started yet
  loadSeq: 0, // discards availability answers that arrive out of order
};

function resourceLabel(r) {
  return `${r.name} — ${formatMoney(r.unit_amount, r.currency)} per ${r.slot_minutes} min`;
}

function showRecent() {
  const id = sessionStorage.getItem(LAST_BOOKING);
  if (!id) return;
  $('recent-id').textContent = id;
  $('recent-link').href = `/booking/success?booking_id=${encodeURIComponent(id)}`;
  $('recent').hidden = false;
}

async function init() {
  showRecent();
  $('resource').addEventListener('change', () => selectResource($('resource').value));
  $('date').addEventListener('change', () => {
    if ($('date').value) loadDay($('date').value, { search: false });
  });
  $('length').addEventListener('change', () => {
    state.length = Number($('length').value);
    renderSummary();
  });
  $('booking-form').addEventListener('submit', submit);
  window.addEventListener('pageshow', (e) => {
    // Back from Stripe: the page comes from the back/forward cache as it was.
    if (e.persisted) setBusy(false);
  });

  try {
    const list = await api('GET', '/v1/resources');
    state.resources = list.items;
  } catch (err) {
    say($('page-status'), errorText(err), 'error');
    return;
  }
  const select = $('resource');
  select.replaceChildren();
  if (state.resources.length === 0) {
    select.append(el('option', { value: '' }, 'No resource can be booked right now'));
    return;
  }
  for (const r of state.resources) select.append(el('option', { value: r.id }, resourceLabel(r)));
  select.disabled = false;
  const wanted = new URLSearchParams(location.search).get('resource');
  const pick = state.resources.find((r) => r.id === wanted || r.slug === wanted) || state.resources[0];
  select.value = pick.id;
  selectResource(pick.id);
}

function selectResource(id) {
  const r = state.resources.find((x) => x.id === id);
  if (!r) return;
  state.resource = r;
  const slots = r.min_slots === r.max_slots
    ? `${r.min_slots} slot${r.min_slots === 1 ? '' : 's'}`
    : `${r.min_slots} to ${r.max_slots} slots`;
  $('resource-info').textContent =
    `${r.description ? r.description + ' ' : ''}Open ${r.open_time}–${r.close_time}, ${slots} of ${r.slot_minutes} minutes; times in ${r.timezone}.`;
  $('date-zone').textContent = `(${r.timezone})`;
  const today = localDate(new Date(), r.timezone);
  $('date').min = today;
  $('date').max = addDays(today, r.horizon_days - 1);
  loadDay(today, { search: true });
}

// runLength is how many consecutive free slots begin at slots[i].
function runLength(i) {
  let n = 1;
  while (i + n < state.slots.length &&
         Date.parse(state.slots[i + n].starts_at) === Date.parse(state.slots[i + n - 1].ends_at)) n++;
  return n;
}

// loadDay shows the free slots of day; with search, it moves on to the
// next day that has one (within the resource's horizon).
async function loadDay(day, { search }) {
  const r = state.resource;
  const seq = ++state.loadSeq;
  state.slots = [];
  state.start = -1;
  renderSlots();
  $('slots-status').textContent = 'Loading free times…';
  let tries = search ? SEARCH_DAYS : 1;
  for (;;) {
    let avail;
    try {
      avail = await api('GET', `/v1/resources/${encodeURIComponent(r.id)}/availability?date=${day}`);
    } catch (err) {
      if (seq !== state.loadSeq) return;
      $('slots-status').textContent = errorText(err);
      return;
    }
    if (seq !== state.loadSeq) return; // a newer choice took over
    state.day = day;
    $('date').value = day;
    state.slots = avail.slots;
    const bookable = state.slots.some((_, i) => runLength(i) >= r.min_slots);
    tries--;
    if (bookable || tries === 0 || day >= $('date').max) break;
    day = addDays(day, 1);
  }
  renderSlots();
}

function renderSlots() {
  const r = state.resource;
  const box = $('slots');
  box.replaceChildren();
  $('length-area').hidden = true;
  renderSummary();
  if (!r || !state.day) return;
  const starts = state.slots.map((_, i) => i).filter((i) => runLength(i) >= r.min_slots);
  if (starts.length === 0) {
    $('slots-status').textContent = `No free time on ${formatDay(state.day + 'T12:00:00Z', 'UTC')}. Pick another day.`;
    return;
  }
  $('slots-status').textContent =
    `${starts.length} free start time${starts.length === 1 ? '' : 's'} on ${formatDay(state.day + 'T12:00:00Z', 'UTC')} (${r.timezone}).`;
  for (const i of starts) {
    const s = state.slots[i];
    const input = el('input', {
      type: 'radio', name: 'start', value: String(i), id: `slot-${i}`,
      'data-starts-at': s.starts_at,
    });
    input.addEventListener('change', () => chooseStart(i));
    box.append(el('label', { class: 'slot', for: `slot-${i}` }, input,
      el('span', {}, formatClock(s.starts_at, r.timezone))));
  }
}

function chooseStart(i) {
  const r = state.resource;
  state.start = i;
  const most = Math.min(r.max_slots, runLength(i));
  const select = $('length');
  select.replaceChildren();
  for (let n = r.min_slots; n <= most; n++) {
    const end = state.slots[i + n - 1].ends_at;
    select.append(el('option', { value: String(n) },
      `${n * r.slot_minutes} min, until ${formatClock(end, r.timezone)} — ${formatMoney(n * r.unit_amount, r.currency)}`));
  }
  state.length = r.min_slots;
  select.value = String(state.length);
  $('length-area').hidden = most === r.min_slots;
  renderSummary();
}

function selection() {
  if (!state.resource || state.start < 0) return null;
  return {
    resource: state.resource,
    starts_at: state.slots[state.start].starts_at,
    ends_at: state.slots[state.start + state.length - 1].ends_at,
    slots: state.length,
  };
}

function renderSummary() {
  const s = selection();
  const box = $('summary');
  box.replaceChildren();
  if (!s) return;
  box.append(
    el('h2', {}, 'Your booking'),
    el('p', {}, el('strong', {}, s.resource.name), ', ', formatRange(s.starts_at, s.ends_at, s.resource.timezone)),
    el('p', {}, 'Total ', el('strong', { id: 'summary-total' }, formatMoney(s.slots * s.resource.unit_amount, s.resource.currency)),
      el('span', { class: 'hint' }, ' (computed again by the server)')),
  );
}

function setBusy(busy, label) {
  const b = $('submit');
  b.disabled = busy;
  b.setAttribute('aria-busy', busy ? 'true' : 'false');
  b.textContent = busy ? label : 'Hold slot and pay';
}

function showFormError(message, field) {
  say($('form-error'), message, 'error');
  for (const input of document.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

function sameSelection(a, b) {
  return a.resource.id === b.resource.id && a.starts_at === b.starts_at && a.ends_at === b.ends_at;
}

async function submit(event) {
  event.preventDefault();
  say($('form-error'), '');
  const s = selection();
  if (!s) {
    const first = document.querySelector('#slots input');
    return showFormError('Pick a start time.', first || $('date'));
  }
  const name = $('name');
  const email = $('email');
  if (!name.value.trim()) return showFormError('Enter your name.', name);
  if (!email.value.trim() || !email.checkValidity()) return showFormError('Enter a valid e-mail address.', email);
  showFormError('');

  // A hold made by an earlier attempt whose checkout failed is reused for
  // the same slot, and released when another slot is chosen.
  if (state.held && !sameSelection(state.held.selection, s)) {
    const old = state.held.booking.id;
    state.held = null;
    api('POST', `/v1/bookings/${encodeURIComponent(old)}/cancel`, { idempotencyKey: newIdempotencyKey() }).catch(() => {});
  }

  let booking = state.held && state.held.booking;
  if (!booking) {
    setBusy(true, 'Holding your slot…');
    try {
      booking = await api('POST', '/v1/bookings', {
        idempotencyKey: newIdempotencyKey(),
        body: {
          resource_id: s.resource.id,
          starts_at: s.starts_at,
          ends_at: s.ends_at,
          customer: { name: name.value.trim(), email: email.value.trim() },
        },
      });
    } catch (err) {
      setBusy(false);
      showFormError(errorText(err));
      if (err instanceof ApiError && err.code === 'slot_unavailable') loadDay(state.day, { search: false });
      return;
    }
    state.held = { booking, selection: s };
    sessionStorage.setItem(LAST_BOOKING, booking.id);
    keepManageToken(booking.id, booking.manage_token);
  }

  setBusy(true, 'Starting checkout…');
  let checkout;
  try {
    checkout = await api('POST', `/v1/bookings/${encodeURIComponent(booking.id)}/checkout`, {
      idempotencyKey: newIdempotencyKey(),
    });
  } catch (err) {
    setBusy(false);
    showFormError(`Your slot is held (booking ${booking.id}), but checkout could not start: ${errorText(err)} Try again.`);
    return;
  }
  showHeld(booking, checkout);
  // The redirect is the customer's way to pay; the booking is confirmed
  // only by Stripe's webhook, whatever happens in this browser.
  window.location.assign(checkout.checkout_url);
}

function showHeld(booking, checkout) {
  const statusURL = `/booking/success?booking_id=${encodeURIComponent(booking.id)}`;
  $('held-id').textContent = booking.id;
  $('checkout-link').href = checkout.checkout_url;
  $('status-link').href = statusURL;
  $('devpay-cmd').textContent = `bin/slotpay dev pay ${booking.id}`;
  $('held').hidden = false;
  $('held').focus();
  say($('page-status'), `Slot held until ${formatClock(checkout.expires_at, state.resource.timezone)}. Opening Stripe Checkout…`, 'ok');
}

init();
