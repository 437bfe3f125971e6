// The back office. It shows what the admin API answers and offers the
// actions the signed-in role may take; the API checks every permission
// itself, so hiding a button is convenience, never protection.
import {
  api, errorText, newIdempotencyKey, formatMoney, formatRange, formatInstant, addDays,
  resourcesById, statusBadge, el, say, STATUS_LABELS,
} from './common.js';

const $ = (id) => document.getElementById(id);
const ROLE_RANK = { readonly: 1, ops: 2, admin: 3 };
const PAGE_SIZE = 25;
const REFUNDABLE = new Set(['confirmed', 'needs_review']);

let me = null; // the signed-in operator, from GET /v1/admin/me
let resources = new Map();

// pagedList shows one page of an admin list at a time in #PREFIX-table,
// keeping the cursors of the pages seen so far so that "Previous" works.
function pagedList(prefix, path, render) {
  const p = { query: {}, cursors: [null], next: null };
  p.load = async () => {
    const box = $(`${prefix}-table`);
    box.setAttribute('aria-busy', 'true');
    try {
      const q = new URLSearchParams({ ...p.query, limit: String(PAGE_SIZE) });
      const cursor = p.cursors[p.cursors.length - 1];
      if (cursor) q.set('cursor', cursor);
      const page = await api('GET', `${path}?${q}`);
      box.replaceChildren(render(page.items));
      p.next = page.next_cursor;
      $(`${prefix}-next`).disabled = !p.next;
      $(`${prefix}-prev`).disabled = p.cursors.length <= 1;
    } catch (err) {
      failed(err);
    } finally {
      box.removeAttribute('aria-busy');
    }
  };
  p.filter = (query) => {
    p.query = query;
    p.cursors = [null];
    p.load();
  };
  $(`${prefix}-next`).addEventListener('click', () => {
    if (p.next) { p.cursors.push(p.next); p.load(); }
  });
  $(`${prefix}-prev`).addEventListener('click', () => {
    if (p.cursors.length > 1) { p.cursors.pop(); p.load(); }
  });
  return p;
}

const bookings = pagedList('bookings', '/v1/admin/bookings', (items) => table('Bookings, newest first',
  ['When', 'Resource', 'Customer', 'Total', 'Status', 'Booked'],
  items.map((b) => [
    bookingLink(b.id, formatRange(b.starts_at, b.ends_at, zoneOf(b.resource_id))),
    resourceName(b.resource_id),
    el('span', {}, b.customer.name, el('br'), el('span', { class: 'hint' }, b.customer.email)),
    formatMoney(b.amount_total, b.currency),
    el('span', {}, statusBadge(b.status), b.disputed ? el('span', { class: 'badge badge-disputed' }, 'Disputed') : null),
    formatInstant(b.created_at, zoneOf(b.resource_id)),
  ])));

const events = pagedList('events', '/v1/admin/payment-events',
  (items) => eventsTable('Payment events, newest first', items, true));

const deliveries = pagedList('deliveries', '/v1/admin/webhook-deliveries', (items) => table('Delivery attempts, newest first',
  ['At', 'Event', 'Booking', 'Endpoint', 'Attempt', 'Outcome', 'Answer'],
  items.map((d) => [
    formatInstant(d.at, 'UTC'),
    [el('code', {}, d.event_type), el('br'), el('span', { class: 'hint' }, d.event_id)],
    bookingLink(d.booking_id),
    el('code', {}, d.url),
    String(d.attempt),
    outcomeBadge(d.outcome),
    answerOf(d),
  ])));

function can(role) {
  return me && ROLE_RANK[me.role] >= ROLE_RANK[role];
}

function zoneOf(resourceId) {
  const r = resources.get(resourceId);
  return r ? r.timezone : 'UTC';
}

function resourceName(resourceId) {
  const r = resources.get(resourceId);
  return r ? r.name : resourceId;
}

// failed shows an API failure; a lapsed session sends the operator back to
// the sign-in form.
function failed(err) {
  if (err.status === 401 && me) {
    me = null;
    showLogin('Your session has ended. Sign in again.');
    return;
  }
  say($('page-status'), errorText(err), 'error');
}

function showView(name) {
  for (const v of ['login', 'bookings', 'booking', 'events', 'webhooks']) $(`${v}-view`).hidden = v !== name;
  for (const [link, view] of [['nav-bookings', 'bookings'], ['nav-events', 'events'], ['nav-webhooks', 'webhooks']]) {
    if (view === name || (name === 'booking' && view === 'bookings')) $(link).setAttribute('aria-current', 'page');
    else $(link).removeAttribute('aria-current');
  }
}

function focusHeading(id) {
  const h = $(id);
  h.tabIndex = -1;
  h.focus();
}

function showLogin(message) {
  $('who').hidden = true;
  $('nav').hidden = true;
  showView('login');
  say($('page-status'), message || '', 'info');
  $('login-email').focus();
}

async function signedIn() {
  $('who-text').textContent = `${me.email} (${me.role})`;
  $('who').hidden = false;
  $('nav').hidden = false;
  say($('page-status'), '');
  resources = await resourcesById().catch(() => new Map());
  const select = $('f-resource');
  select.replaceChildren(el('option', { value: '' }, 'Any'));
  for (const r of resources.values()) select.append(el('option', { value: r.id }, r.name));
  route();
}

function route() {
  if (!me) return;
  const h = decodeURIComponent(location.hash.slice(1));
  if (h.startsWith('booking/')) showBooking(h.slice('booking/'.length));
  else if (h === 'events') showEvents();
  else if (h === 'webhooks') showWebhooks();
  else showBookings();
}

// table renders rows as a table whose cells carry their column's name, so
// that on a narrow screen each row reads as a card.
function table(caption, columns, rows) {
  if (rows.length === 0) return el('p', { class: 'empty' }, `${caption}: none.`);
  return el('table', {},
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, c)))),
    el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c, i) => el('td', { 'data-label': columns[i] }, el('div', {}, c)))))),
  );
}

function bookingLink(id, text) {
  return el('a', { href: `#booking/${encodeURIComponent(id)}` }, text || id);
}

// --- Bookings -------------------------------------------------------------

function showBookings() {
  showView('bookings');
  bookings.load();
}

function bookingFilters(event) {
  event.preventDefault();
  const q = {};
  if ($('f-status').value) q.status = $('f-status').value;
  if ($('f-resource').value) q.resource_id = $('f-resource').value;
  if ($('f-from').value) q.from = `${$('f-from').value}T00:00:00Z`;
  if ($('f-to').value) q.to = `${addDays($('f-to').value, 1)}T00:00:00Z`;
  bookings.filter(q);
}

// --- One booking ----------------------------------------------------------

async function showBooking(id) {
  showView('booking');
  const box = $('booking-detail');
  box.replaceChildren(el('p', {}, 'Loading…'));
  $('booking-title').textContent = 'Booking';
  let d;
  try {
    d = await api('GET', `/v1/admin/bookings/${encodeURIComponent(id)}`);
  } catch (err) {
    box.replaceChildren();
    failed(err);
    return;
  }
  renderBooking(d);
  focusHeading('booking-title');
}

function renderBooking(d) {
  const b = d.booking;
  const tz = zoneOf(b.resource_id);
  $('booking-title').textContent = `Booking of ${b.customer.name}`;
  const facts = [
    ['Status', el('span', {}, statusBadge(b.status), b.disputed ? el('span', { class: 'badge badge-disputed' }, 'Disputed') : null)],
    ['Resource', resourceName(b.resource_id)],
    ['When', formatRange(b.starts_at, b.ends_at, tz)],
    ['Total', formatMoney(b.amount_total, b.currency)],
    ['Customer', `${b.customer.name} <${b.customer.email}>`],
    ['Hold expires', formatInstant(b.hold_expires_at, tz)],
    ['Checkout session', b.checkout_session_id ? el('code', {}, b.checkout_session_id) : '—'],
    ['Payment intent', b.payment_intent_id ? el('code', {}, b.payment_intent_id) : '—'],
    ['Refund requested', b.refund_requested_at ? formatInstant(b.refund_requested_at, tz) : '—'],
    ['Customer cancel', b.cancelled_after_payment
      ? `after payment, refund ${formatMoney(b.refund_amount || 0, b.currency)} under the policy` : '—'],
    ['Created', formatInstant(b.created_at, tz)],
    ['Updated', formatInstant(b.updated_at, tz)],
    ['Booking id', el('code', {}, b.id)],
  ];
  const box = $('booking-detail');
  box.replaceChildren(
    el('dl', { class: 'details', id: 'booking-facts' }, facts.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    actions(b),
    el('h2', {}, 'Status history'),
    el('div', { class: 'table-wrap', id: 'status-history' }, table('Status changes, oldest first',
      ['At', 'From', 'To', 'Cause', 'Stripe event'],
      d.status_history.map((c) => [
        formatInstant(c.at, tz),
        c.from_status ? statusBadge(c.from_status) : '—',
        statusBadge(c.to_status),
        c.operator_id ? [c.cause, ' by operator ', el('code', {}, c.operator_id)]
          : c.from_slot && c.to_slot ? [c.cause, `: ${formatRange(c.from_slot.starts_at, c.from_slot.ends_at, tz)} → ${formatRange(c.to_slot.starts_at, c.to_slot.ends_at, tz)}`]
            : c.cause,
        c.stripe_event_id ? el('code', {}, c.stripe_event_id) : '—',
      ]))),
    el('h2', {}, 'Payment events'),
    el('div', { class: 'table-wrap', id: 'booking-events' }, eventsTable('Stripe events for this booking, oldest first', d.payment_events, false)),
    el('h2', {}, 'Notifications'),
    el('div', { class: 'table-wrap', id: 'booking-notifications' }, table('What the customer and the merchant were told, oldest first',
      ['Created', 'Event', 'Customer e-mail', 'Deliveries'],
      (d.notifications || []).map((n) => [
        formatInstant(n.created_at, tz),
        [el('code', {}, n.type), el('br'), el('span', { class: 'hint' }, n.id)],
        n.email || '—',
        n.attempts.length === 0 ? 'queued' : el('ul', { class: 'plain' }, n.attempts.map((a) => el('li', {},
          `${a.channel} #${a.attempt} `, outcomeBadge(a.outcome), ' ', el('span', { class: 'hint' }, a.target),
          a.status_code || a.error ? [' — ', answerOf(a)] : null))),
      ]))),
  );
}

function outcomeBadge(outcome) {
  const kind = { delivered: 'applied', logged: 'ignored', failed: 'review' }[outcome] || outcome;
  return el('span', { class: `badge outcome-${kind}` }, outcome);
}

function answerOf(a) {
  return a.status_code ? `HTTP ${a.status_code}` : (a.error || '—');
}

// --- Webhooks -------------------------------------------------------------

async function showWebhooks() {
  showView('webhooks');
  deliveries.load();
  const box = $('endpoints-table');
  if (!can('admin')) {
    box.replaceChildren(el('p', { class: 'empty' }, 'Listing endpoints needs the role admin.'));
    return;
  }
  try {
    const list = await api('GET', '/v1/admin/webhook-endpoints');
    box.replaceChildren(table('Endpoints, oldest first', ['URL', 'Events', 'Created', 'Old secret signs until'],
      list.items.map((e) => [
        el('code', {}, e.url),
        e.enabled_events.join(', '),
        formatInstant(e.created_at, 'UTC'),
        e.previous_secret_expires_at ? formatInstant(e.previous_secret_expires_at, 'UTC') : '—',
      ])));
  } catch (err) {
    failed(err);
  }
}

// actions offers what the role may do with this booking now.
function actions(b) {
  const box = el('div', { class: 'actions', id: 'booking-actions' });
  const status = el('p', { role: 'status', 'aria-live': 'polite', class: 'notice', id: 'action-status', hidden: true });
  if (REFUNDABLE.has(b.status) && !b.refund_requested_at) {
    if (can('ops')) {
      box.append(confirmButton(b.id, `Refund ${formatMoney(b.amount_total, b.currency)} in full`, 'danger',
        `Refund ${formatMoney(b.amount_total, b.currency)} to ${b.customer.email}? Stripe returns the money; the booking becomes refunded when Stripe confirms.`,
        'Yes, refund', status, async () => {
          await api('POST', `/v1/admin/bookings/${encodeURIComponent(b.id)}/refund`, { idempotencyKey: newIdempotencyKey() });
          return 'Stripe accepted the refund. The booking turns refunded when Stripe\'s charge.refunded event arrives.';
        }));
    } else {
      box.append(el('p', { class: 'hint' }, 'Refunds need the ops role.'));
    }
  }
  if (b.status === 'pending_payment' && can('ops')) {
    box.append(confirmButton(b.id, 'Release the hold', 'secondary',
      'Release this hold? Its Checkout Session is expired at Stripe first.', 'Yes, release', status, async () => {
        await api('POST', `/v1/admin/bookings/${encodeURIComponent(b.id)}/cancel`, { idempotencyKey: newIdempotencyKey() });
        return 'The hold was released.';
      }));
  }
  box.append(status);
  return box;
}

// confirmButton asks once more before an action that moves money or
// releases a slot, then runs it and reloads the booking.
function confirmButton(bookingId, label, kind, question, yes, status, run) {
  const wrap = el('div', { class: 'confirm' });
  const start = el('button', { type: 'button', class: kind }, label);
  const ask = el('div', { class: 'confirm-ask', hidden: true, role: 'group', 'aria-label': label },
    el('p', {}, question));
  const go = el('button', { type: 'button', class: kind }, yes);
  const keep = el('button', { type: 'button' }, 'Cancel');
  ask.append(go, ' ', keep);
  start.addEventListener('click', () => { start.hidden = true; ask.hidden = false; go.focus(); });
  keep.addEventListener('click', () => { ask.hidden = true; start.hidden = false; start.focus(); });
  go.addEventListener('click', async () => {
    go.disabled = true;
    keep.disabled = true;
    try {
      const message = await run();
      ask.hidden = true;
      // Show the booking as it is now; the message goes to the status line
      // of whichever rendering is on screen.
      const d = await api('GET', `/v1/admin/bookings/${encodeURIComponent(bookingId)}`).catch(() => null);
      if (d) renderBooking(d);
      say($('action-status'), message, 'ok');
    } catch (err) {
      go.disabled = false;
      keep.disabled = false;
      if (err.status === 401) failed(err);
      else say(status, errorText(err), 'error');
    }
  });
  wrap.append(start, ask);
  return wrap;
}

// --- The ledger -----------------------------------------------------------

function eventsTable(caption, events, withBooking) {
  const columns = ['Received', 'Type', 'Outcome', 'Source', ...(withBooking ? ['Booking'] : []), 'Detail', 'Stripe event'];
  return table(caption, columns, events.map((e) => [
    formatInstant(e.received_at, 'UTC'),
    el('code', {}, e.type),
    el('span', { class: `badge outcome-${e.outcome}` }, e.outcome),
    e.source,
    ...(withBooking ? [e.booking_id ? bookingLink(e.booking_id) : '—'] : []),
    e.detail || '—',
    el('code', {}, e.stripe_event_id),
  ]));
}

function showEvents() {
  showView('events');
  events.load();
}

function eventFilters(event) {
  event.preventDefault();
  const q = {};
  for (const [input, key] of [['e-type', 'type'], ['e-outcome', 'outcome'], ['e-booking', 'booking_id']]) {
    const v = $(input).value.trim();
    if (v) q[key] = v;
  }
  events.filter(q);
}

// --- Signing in and out ---------------------------------------------------

async function login(event) {
  event.preventDefault();
  const email = $('login-email');
  const password = $('login-password');
  say($('login-error'), '');
  if (!email.value.trim() || !password.value) {
    say($('login-error'), 'Enter your e-mail and password.', 'error');
    (email.value.trim() ? password : email).focus();
    return;
  }
  $('login-submit').disabled = true;
  try {
    const session = await api('POST', '/v1/admin/session', { body: { email: email.value.trim(), password: password.value } });
    me = session.user;
    password.value = '';
    await signedIn();
  } catch (err) {
    say($('login-error'), errorText(err), 'error');
    password.focus();
  } finally {
    $('login-submit').disabled = false;
  }
}

async function logout() {
  try {
    await api('DELETE', '/v1/admin/session');
  } catch (err) {
    say($('page-status'), errorText(err), 'error');
    return;
  }
  me = null;
  history.replaceState(null, '', '/admin');
  showLogin('Signed out.');
}

async function start() {
  for (const s of Object.keys(STATUS_LABELS)) $('f-status').append(el('option', { value: s }, STATUS_LABELS[s]));
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('booking-filters').addEventListener('submit', bookingFilters);
  $('booking-filters').addEventListener('reset', () => setTimeout(() => $('booking-filters').requestSubmit()));
  $('event-filters').addEventListener('submit', eventFilters);
  $('event-filters').addEventListener('reset', () => setTimeout(() => $('event-filters').requestSubmit()));
  window.addEventListener('hashchange', route);
  try {
    me = await api('GET', '/v1/admin/me');
  } catch (err) {
    if (err.status === 401) showLogin();
    else say($('page-status'), errorText(err), 'error');
    return;
  }
  await signedIn();
}

start();
