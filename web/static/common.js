// What every page shares: calling the API, and showing money, times and
// statuses the same way everywhere.

// ApiError carries the API's error envelope: its message is safe to show.
export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

// api calls slotpay's HTTP API on this origin and returns the decoded JSON
// body (null for an empty one). Any answer other than 2xx becomes an
// ApiError with the envelope's message; a network failure too, with a
// message of our own.
// token, when given, is a booking's manage_token, sent as a bearer token
// (never a cookie: no other site can make the browser send it).
export async function api(method, path, { body, idempotencyKey, token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network_error', 'Could not reach slotpay. Check your connection and try again.', '');
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const e = data && data.error;
    if (e && e.message) throw new ApiError(resp.status, e.code, e.message, e.request_id || '');
    throw new ApiError(resp.status, 'http_' + resp.status, `slotpay answered ${resp.status} ${resp.statusText}`.trim(), '');
  }
  return data;
}

// newIdempotencyKey makes a key for one attempt at a POST: a retry of the
// same attempt reuses it, a new attempt gets a new one.
export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; plain http on another host lacks one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// errorText is what to tell a person about a failure.
export function errorText(err) {
  if (err instanceof ApiError) {
    return err.requestId ? `${err.message} (request ${err.requestId})` : err.message;
  }
  return 'Something went wrong in this page. Reload it and try again.';
}

// formatMoney shows an integer amount of the currency's minor unit.
export function formatMoney(minor, currency) {
  const code = String(currency).toUpperCase();
  let nf;
  try {
    nf = new Intl.NumberFormat(undefined, { style: 'currency', currency: code });
  } catch {
    return `${minor} ${currency} (minor units)`;
  }
  const digits = nf.resolvedOptions().maximumFractionDigits;
  return nf.format(minor / 10 ** digits);
}

function validZone(tz) {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
    return tz;
  } catch {
    return 'UTC';
  }
}

// formatDay is a date as a person reads it, in the time zone tz.
export function formatDay(iso, tz) {
  return new Intl.DateTimeFormat(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', timeZone: validZone(tz),
  }).format(new Date(iso));
}

// formatClock is the time of day of an instant in tz.
export function formatClock(iso, tz) {
  return new Intl.DateTimeFormat(undefined, {
    hour: 'numeric', minute: '2-digit', timeZone: validZone(tz),
  }).format(new Date(iso));
}

// formatRange is "Sat, 28 Nov 2026, 09:00–11:00 (Europe/Berlin)".
export function formatRange(startIso, endIso, tz) {
  return `${formatDay(startIso, tz)}, ${formatClock(startIso, tz)}–${formatClock(endIso, tz)} (${validZone(tz)})`;
}

// formatInstant is a full date and time in tz, for logs and histories.
export function formatInstant(iso, tz) {
  if (!iso) return '—';
  return new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
    timeZone: validZone(tz), timeZoneName: 'short',
  }).format(new Date(iso));
}

// localDate is the calendar date (YYYY-MM-DD) of an instant in tz.
export function localDate(date, tz) {
  const parts = new Intl.DateTimeFormat('en-CA', {
    year: 'numeric', month: '2-digit', day: '2-digit', timeZone: validZone(tz),
  }).formatToParts(date);
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

// addDays adds n days to a YYYY-MM-DD date.
export function addDays(ymd, n) {
  const d = new Date(ymd + 'T00:00:00Z');
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// STATUS_LABELS names each booking status for people.
export const STATUS_LABELS = {
  pending_payment: 'Awaiting payment',
  processing: 'Payment processing',
  confirmed: 'Confirmed',
  needs_review: 'Paid, under review',
  refund_pending: 'Refund requested',
  expired: 'Expired',
  payment_failed: 'Payment failed',
  cancelled: 'Cancelled',
  refunded: 'Refunded',
};

// statusBadge is an element showing a status; its colour is a hint, the
// text says it all.
export function statusBadge(status) {
  const span = el('span', { class: `badge badge-${status}` }, STATUS_LABELS[status] || status);
  return span;
}

// el builds an element: el('a', {href: '/'}, 'text', child…). Text is
// always set as text, never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// say puts a message in a live region; kind is 'info', 'ok' or 'error'.
export function say(region, message, kind = 'info') {
  region.className = `notice notice-${kind}`;
  region.textContent = message;
  region.hidden = !message;
}

// resourcesById fetches the active resources once per page.
let resourcesPromise;
export function resourcesById() {
  if (!resourcesPromise) {
    resourcesPromise = api('GET', '/v1/resources').then((r) => new Map(r.items.map((x) => [x.id, x])));
    resourcesPromise.catch(() => { resourcesPromise = undefined; });
  }
  return resourcesPromise;
}

// The manage_token the 201 of POST /v1/bookings returned is kept for this
// tab only, so the success page can link to the manage page; the
// confirmation e-mail carries the same link.
const MANAGE_TOKEN = 'slotpay.manage_token.';

export function keepManageToken(bookingId, token) {
  if (token) sessionStorage.setItem(MANAGE_TOKEN + bookingId, token);
}

export function keptManageToken(bookingId) {
  return sessionStorage.getItem(MANAGE_TOKEN + bookingId) || '';
}

// manageLink is the manage page of a booking; the token travels in the
// fragment, which the browser never sends to a server.
export function manageLink(bookingId, token) {
  return `/booking/manage?booking_id=${encodeURIComponent(bookingId)}#token=${encodeURIComponent(token)}`;
}
