// The page Stripe Checkout sends a customer to who turns back: release the
// slot through the API. The API expires the Checkout Session at Stripe
// first, so a payment already under way is never lost; if it went through
// meanwhile, the answer is 409 and the page says what happened instead.
import { api, errorText, newIdempotencyKey } from './common.js';

const $ = (id) => document.getElementById(id);
const id = new URLSearchParams(location.search).get('booking_id');

function show(title, detail, status) {
  $('state').dataset.status = status || '';
  $('state-title').textContent = title;
  $('state-detail').textContent = detail;
}

function statusLink(text) {
  const a = document.createElement('a');
  a.href = `/booking/success?booking_id=${encodeURIComponent(id)}`;
  a.textContent = text;
  return a;
}

const ALREADY = {
  cancelled: 'This booking was already cancelled; its slot is free. You have not been charged.',
  expired: 'This hold had already expired; its slot is free. You have not been charged.',
  payment_failed: 'The payment failed and the slot was released. You have not been charged.',
};

async function release() {
  try {
    await api('POST', `/v1/bookings/${encodeURIComponent(id)}/cancel`, { idempotencyKey: newIdempotencyKey() });
    show('Slot released', 'You left Stripe Checkout without paying, so we released your slot. You have not been charged.', 'cancelled');
    return;
  } catch (err) {
    if (err.status !== 409) {
      show('Could not release the slot', `${errorText(err)} The hold lapses by itself if no payment arrives.`, 'error');
      return;
    }
  }
  // 409 invalid_state: the booking is past holding; say where it stands.
  let b;
  try {
    b = await api('GET', `/v1/bookings/${encodeURIComponent(id)}`);
  } catch (err) {
    show('Could not release the slot', errorText(err), 'error');
    return;
  }
  if (ALREADY[b.status]) {
    show('Nothing to release', ALREADY[b.status], b.status);
    return;
  }
  show('Your payment went through', 'Stripe received your payment before the slot could be released, so the booking stands.', b.status);
  $('state-detail').append(' ', statusLink('See your booking.'));
}

if (!id) {
  show('No booking given', 'This page needs a booking_id in its address, as Stripe Checkout sends it.', 'error');
} else {
  release();
}
