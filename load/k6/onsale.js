// On-sale spike: buyers pile in the moment a sale opens, each holding one ticket, booking
// it and paying for it, all through the gateway's public API.
//
// Run it (k6 from https://k6.io; the platform from scripts/run-local.sh, demo data seeded):
//
//   k6 run load/k6/onsale.js
//   BASE_URL=http://127.0.0.1:8080 PEAK_RATE=300 BUYERS=300 k6 run load/k6/onsale.js
//
// Environment (all optional):
//   BASE_URL            the gateway (default http://127.0.0.1:8080)
//   ORGANIZER_EMAIL     an organizer who creates the sale's event in setup
//   ORGANIZER_PASSWORD  (default: the demo organizer1@demo.ticketing.local / Organizer-Demo-2026!)
//   BUYERS              buyers registered (or signed in, when they exist) in setup (default 200)
//   BUYER_PASSWORD      their password (default Buyer-Onsale-2026!)
//   PEAK_RATE           purchases started per second at the spike's peak (default 200)
//   CARD_TOKEN          simulated provider's card (default tok_visa)
//
// setup() creates an on-sale general-admission event with room for every purchase and the
// largest per-user limit, so the run measures the purchase path, not sold-out answers.
// The gateway's rate limits apply per IP and per user: for a spike from one machine start
// the platform with them off (TICKETING_GATEWAY__RATE_LIMITS__ENABLED=false
// scripts/run-local.sh) or raised (…__IP__PER_SECOND, …__USER__BURST, …), or expect 429s.
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const ORGANIZER_EMAIL = __ENV.ORGANIZER_EMAIL || 'organizer1@demo.ticketing.local';
const ORGANIZER_PASSWORD = __ENV.ORGANIZER_PASSWORD || 'Organizer-Demo-2026!';
const BUYERS = parseInt(__ENV.BUYERS || '200', 10);
const BUYER_PASSWORD = __ENV.BUYER_PASSWORD || 'Buyer-Onsale-2026!';
const PEAK_RATE = parseInt(__ENV.PEAK_RATE || '200', 10);
const CARD_TOKEN = __ENV.CARD_TOKEN || 'tok_visa';
const PER_USER_LIMIT = 100;

const holdLatency = new Trend('hold_latency', true);
const bookingLatency = new Trend('booking_latency', true);
const paymentLatency = new Trend('payment_latency', true);
const purchases = new Counter('purchases');
const soldOutOrLimited = new Counter('sold_out_or_limited');

export const options = {
  setupTimeout: '5m',
  scenarios: {
    onsale_spike: {
      executor: 'ramping-arrival-rate',
      startRate: 5,
      timeUnit: '1s',
      preAllocatedVUs: 200,
      maxVUs: 2000,
      stages: [
        { target: 5, duration: '10s' }, // before the sale: a trickle
        { target: PEAK_RATE, duration: '5s' }, // the sale opens
        { target: PEAK_RATE, duration: '40s' }, // the rush
        { target: 10, duration: '20s' }, // it ebbs
      ],
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'http_req_duration{step:hold}': ['p(99)<500'],
    'http_req_duration{step:booking}': ['p(99)<1000'],
    'http_req_duration{step:payment}': ['p(99)<2000'],
    checks: ['rate>0.99'],
  },
};

const JSON_HEADERS = { 'Content-Type': 'application/json' };

// Answers that are part of the scenario, not failures: 409 (sold out, or the per-user
// limit) on a hold, 503 from payment before it has heard of a new booking (retried), and
// 409 from registering a buyer who exists from an earlier run.
const EXPECTED = {
  hold: http.expectedStatuses({ min: 200, max: 299 }, 409),
  payment: http.expectedStatuses({ min: 200, max: 299 }, 503),
  register: http.expectedStatuses({ min: 200, max: 299 }, 409),
};

function post(path, body, token, step, extraHeaders) {
  const headers = Object.assign({}, JSON_HEADERS, extraHeaders || {});
  if (token) headers.Authorization = `Bearer ${token}`;
  const params = { headers, tags: { step } };
  if (EXPECTED[step]) params.responseCallback = EXPECTED[step];
  return http.post(`${BASE_URL}${path}`, JSON.stringify(body), params);
}

function login(email, password) {
  const res = post('/v1/auth/login', { email, password }, null, 'login');
  return res.status === 200 ? res.json('access_token') : null;
}

function mustOk(res, what, status) {
  if (res.status !== status) fail(`${what}: HTTP ${res.status} ${res.body}`);
  return res.json();
}

export function setup() {
  const organizer = login(ORGANIZER_EMAIL, ORGANIZER_PASSWORD);
  if (!organizer) fail(`organizer ${ORGANIZER_EMAIL} cannot sign in (run scripts/run-local.sh for the demo data)`);

  const now = Date.now();
  const iso = (ms) => new Date(ms).toISOString();
  const capacity = BUYERS * PER_USER_LIMIT;
  const venue = mustOk(
    post('/v1/venues', {
      name: `k6 Arena ${now}`, address: '1 Spike Street', city: 'Berlin', country_code: 'DE', time_zone: 'Europe/Berlin',
    }, organizer, 'setup'),
    'create venue', 201);
  const event = mustOk(
    post('/v1/events', {
      venue_id: venue.id,
      name: `k6 on-sale spike ${iso(now)}`,
      description: 'Made by load/k6/onsale.js.',
      starts_at: iso(now + 30 * 86400e3),
      ends_at: iso(now + 30 * 86400e3 + 3 * 3600e3),
      sale_starts_at: iso(now - 60e3),
      sale_ends_at: iso(now + 29 * 86400e3),
      per_user_limit: PER_USER_LIMIT,
    }, organizer, 'setup'),
    'create event', 201);
  const category = mustOk(
    post(`/v1/events/${event.id}/categories`, {
      name: 'Standing', price: { currency: 'EUR', minor_units: 4900 }, capacity,
    }, organizer, 'setup'),
    'create category', 201);
  mustOk(post(`/v1/events/${event.id}/publish`, {}, organizer, 'setup'), 'publish', 200);

  // Register (or, on a second run, sign in) the buyers, a batch of requests at a time.
  const buyers = [];
  for (let start = 0; start < BUYERS; start += 20) {
    const batch = [];
    for (let n = start; n < Math.min(start + 20, BUYERS); n++) {
      const email = `k6-buyer${String(n).padStart(4, '0')}@loadtest.ticketing.local`;
      batch.push({ email, request: ['POST', `${BASE_URL}/v1/auth/register`, JSON.stringify({
        email, password: BUYER_PASSWORD, display_name: `k6 buyer ${n}`,
      }), { headers: JSON_HEADERS, tags: { step: 'setup' }, responseCallback: EXPECTED.register }] });
    }
    http.batch(batch.map((b) => b.request));
    const logins = http.batch(batch.map((b) => ['POST', `${BASE_URL}/v1/auth/login`,
      JSON.stringify({ email: b.email, password: BUYER_PASSWORD }), { headers: JSON_HEADERS, tags: { step: 'setup' } }]));
    logins.forEach((res, i) => {
      if (res.status !== 200) fail(`login ${batch[i].email}: HTTP ${res.status} ${res.body}`);
      buyers.push(res.json('access_token'));
    });
  }

  // The catalog's scheduler starts the sale within a second or so; wait until a hold works.
  for (let attempt = 0; attempt < 60; attempt++) {
    const res = post(`/v1/events/${event.id}/holds`, { category_id: category.id, quantity: 1 }, buyers[0], 'setup');
    if (res.status === 201) {
      http.del(`${BASE_URL}/v1/holds/${res.json('id')}`, null,
        { headers: { Authorization: `Bearer ${buyers[0]}` }, tags: { step: 'setup' } });
      return { eventId: event.id, categoryId: category.id, buyers };
    }
    sleep(1);
  }
  fail(`event ${event.id} never went on sale`);
}

function key() {
  return `${exec.scenario.iterationInTest}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

export default function (data) {
  const token = data.buyers[exec.scenario.iterationInTest % data.buyers.length];

  const hold = post(`/v1/events/${data.eventId}/holds`, { category_id: data.categoryId, quantity: 1 }, token, 'hold',
    { 'Idempotency-Key': key() });
  holdLatency.add(hold.timings.duration);
  if (hold.status === 409) {
    soldOutOrLimited.add(1);
    return;
  }
  if (!check(hold, { 'hold 201': (r) => r.status === 201 })) return;

  const booking = post('/v1/bookings', { hold_id: hold.json('id') }, token, 'booking', { 'Idempotency-Key': key() });
  bookingLatency.add(booking.timings.duration);
  if (!check(booking, { 'booking 201': (r) => r.status === 201 })) return;

  // Payment learns of a booking through Kafka: a 503 with Retry-After right after booking is
  // expected; retry it a few times, as a client would.
  let payment;
  for (let attempt = 0; attempt < 10; attempt++) {
    payment = post(`/v1/bookings/${booking.json('id')}/payment`, { card_token: CARD_TOKEN }, token, 'payment',
      { 'Idempotency-Key': `pay-${booking.json('id')}` });
    if (payment.status !== 503) break;
    sleep(Math.min(parseFloat(payment.headers['Retry-After'] || '1'), 2));
  }
  paymentLatency.add(payment.timings.duration);
  if (check(payment, { 'payment accepted': (r) => r.status === 200 || r.status === 201 })) purchases.add(1);
}
