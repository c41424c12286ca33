//! A model-based hunt for seat and ticket defects at the seams between the services (issue 12).
//!
//! Random sequences of purchases (seats or general admission, paid with `tok_visa`, whose
//! refunds succeed, or `tok_refund_fail`, whose refunds fail), cancellations, resales of the
//! freed seats, check-ins and waits for the saga to settle, some of them racing each other,
//! all through the gateway. A model says what every booking, ticket and seat should be. After
//! every step, as soon as its calls return, I1, I2 and I7 must hold and every cancelled
//! booking's tickets must be revoked; after the saga settles, the platform must also agree
//! with the model exactly.
//!
//! What "admits" means for I7: a ticket admits to its seat from its issue until it is
//! revoked, whether the gate would let it in now (issued) or already did (scanned): either
//! way someone holding it may take the seat. VerifyTicket admits only a ticket whose
//! `revoked_at` is NULL, so those are the admitting ones. At every moment a seat has at most
//! one admitting ticket, a seat on sale (available or held) has none, and a GA category has
//! no more admitting tickets than units sold.
//!
//! Each sequence gets a fresh event and prints its seed; `SEAMS_SEED=<seed>` runs that
//! sequence alone (the actions follow from the seed, though a race may end differently), and
//! `SEAMS_SEQUENCES=<n>` runs more sequences than the default.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use rand::{Rng as _, SeedableRng as _};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::identity::v1::Role;
use ticketing_proto::inventory::v1 as inventory;
use ticketing_proto::inventory::v1::SeatState;
use ticketing_testkit::eventually_every;
use uuid::Uuid;

use crate::harness::{Event, Options, Platform, Sale, User};
use crate::http::Http;

/// Each event's seated category (one row) and GA capacity: small, so resales are frequent.
const SEATS: u32 = 5;
const GA: u32 = 4;
const BUYERS: usize = 3;
/// About a minute on two shared cores.
const SEQUENCES: usize = 4;
const STEPS: usize = 15;
/// How long a fact may take to come true on a busy machine.
const PATIENCE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const TICKET_SCANNED: &str = "https://ticketing.dev/problems/ticket-scanned";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_never_let_a_seat_admit_twice() {
    // Every caller is 127.0.0.1: the limiter would only slow the sequences down.
    let p = Platform::start(Options { gateway: |g| g.rate_limits.enabled = false, ..Options::default() }).await;
    for seed in seeds() {
        eprintln!("seams: a sequence with SEAMS_SEED={seed}");
        if let Err(panic) = AssertUnwindSafe(Run::sequence(&p, seed)).catch_unwind().await {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or_default();
            panic!("the sequence of SEAMS_SEED={seed} failed: {message}");
        }
    }
}

/// `SEAMS_SEED` alone, or `SEAMS_SEQUENCES` (default [`SEQUENCES`]) fresh seeds.
fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SEAMS_SEED") {
        return vec![seed.parse().expect("SEAMS_SEED is an unsigned 64-bit number")];
    }
    let sequences = std::env::var("SEAMS_SEQUENCES").map_or(SEQUENCES, |n| n.parse().expect("SEAMS_SEQUENCES"));
    (0..sequences).map(|_| rand::random()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    Refundable,
    RefundFails,
}

impl Card {
    fn token(self) -> &'static str {
        match self {
            Self::Refundable => "tok_visa",
            Self::RefundFails => "tok_refund_fail",
        }
    }
}

/// A seat, as the model knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seat {
    Free,
    /// By this booking (an index into [`Model::bookings`]).
    Sold(usize),
    /// Its booking was cancelled: on sale again once the saga gets there.
    Freeing,
}

#[derive(Debug)]
struct Ticket {
    id: String,
    code: String,
    scanned: bool,
}

#[derive(Debug)]
struct Booking {
    id: String,
    buyer: usize,
    card: Card,
    seats: Vec<usize>,
    ga: u32,
    /// Line items: one ticket each.
    lines: usize,
    cancelled: bool,
    /// Empty until listed: notification issues them after the confirmation.
    tickets: Vec<Ticket>,
}

impl Booking {
    /// Its status once the saga has settled: a cancellation is refunded unless the card refuses.
    fn settled_status(&self) -> &'static str {
        match (self.cancelled, self.card) {
            (false, _) => "confirmed",
            (true, Card::Refundable) => "refunded",
            (true, Card::RefundFails) => "refund_pending",
        }
    }

    fn scanned(&self) -> bool {
        self.tickets.iter().any(|t| t.scanned)
    }
}

#[derive(Debug)]
struct Model {
    /// By index into the event's seats.
    seats: Vec<Seat>,
    ga_sold: u32,
    ga_freeing: u32,
    bookings: Vec<Booking>,
}

impl Model {
    fn seats_in(&self, state: Seat) -> Vec<usize> {
        (0..self.seats.len()).filter(|&i| self.seats[i] == state).collect()
    }

    /// GA units certainly on sale now.
    fn ga_free(&self) -> u32 {
        GA - self.ga_sold - self.ga_freeing
    }

    /// Confirmed bookings; only those with no ticket scanned when `unscanned`.
    fn confirmed(&self, unscanned: bool) -> Vec<usize> {
        let live = |b: &Booking| !(b.cancelled || (unscanned && b.scanned()));
        (0..self.bookings.len()).filter(|&b| live(&self.bookings[b])).collect()
    }

    fn sold(&mut self, booking: Booking) {
        for &seat in &booking.seats {
            self.seats[seat] = Seat::Sold(self.bookings.len());
        }
        self.ga_sold += booking.ga;
        self.bookings.push(booking);
    }

    fn cancel(&mut self, b: usize) {
        let booking = &mut self.bookings[b];
        booking.cancelled = true;
        for &seat in &booking.seats {
            self.seats[seat] = Seat::Freeing;
        }
        self.ga_sold -= booking.ga;
        self.ga_freeing += booking.ga;
    }

    fn settled(&mut self) {
        for seat in &mut self.seats {
            if *seat == Seat::Freeing {
                *seat = Seat::Free;
            }
        }
        self.ga_freeing = 0;
    }
}

/// What inventory answers for the event: counts per category, state per seat.
struct Stock {
    categories: HashMap<String, inventory::CategoryAvailability>,
    seats: HashMap<Uuid, SeatState>,
}

/// One sequence: an event, its organizer, buyers, and the model.
struct Run<'p> {
    p: &'p Platform,
    http: Http,
    redis: redis::aio::MultiplexedConnection,
    rng: StdRng,
    step: usize,
    event: Event,
    event_id: Uuid,
    organizer: User,
    buyers: Vec<User>,
    model: Model,
}

impl<'p> Run<'p> {
    async fn sequence(p: &'p Platform, seed: u64) {
        let mut run = Self::new(p, seed).await;
        while run.step < STEPS {
            run.step += 1;
            run.act().await;
        }
        run.settle().await;
    }

    async fn new(p: &'p Platform, seed: u64) -> Self {
        let organizer = p.user(Role::Organizer).await;
        let mut buyers = Vec::new();
        for _ in 0..BUYERS {
            buyers.push(p.user(Role::User).await);
        }
        let event = p.event_with(&organizer, GA, SEATS, 5_000, Sale { limit: 10, ..Sale::default() }).await;
        let redis = redis::Client::open(p.redis["inventory"].config.url.as_str())
            .expect("inventory's Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("inventory's Redis");
        let run = Self {
            http: Http::new(p),
            p,
            redis,
            rng: StdRng::seed_from_u64(seed),
            step: 0,
            event_id: uuid(&event.id),
            model: Model {
                seats: vec![Seat::Free; event.seats.len()],
                ga_sold: 0,
                ga_freeing: 0,
                bookings: Vec::new(),
            },
            event,
            organizer,
            buyers,
        };
        run.wait_for_the_gate().await;
        run
    }

    fn note(&self, what: &str) {
        eprintln!("seams step {}: {what}", self.step);
    }

    /// One random action whose preconditions hold.
    async fn act(&mut self) {
        loop {
            let acted = match self.rng.random_range(0..12) {
                0..=2 => self.buy().await,
                3..=4 => self.cancel().await,
                5..=6 => self.check_in_some_ticket().await,
                7 => self.cancel_racing_check_in().await,
                8 => self.cancel_racing_resale().await,
                9..=10 => self.resell().await,
                _ => self.settle().await,
            };
            if acted {
                return;
            }
        }
    }

    /// A buyer buys one or two free seats, or one or two GA tickets.
    async fn buy(&mut self) -> bool {
        let free = self.model.seats_in(Seat::Free);
        let ga_free = self.model.ga_free();
        let seated = match (free.is_empty(), ga_free == 0) {
            (true, true) => return false,
            (false, false) => self.rng.random_bool(0.5),
            (no_seats, _) => !no_seats,
        };
        let buyer = self.rng.random_range(0..BUYERS);
        let (seats, ga): (Vec<usize>, u32) = if seated {
            let n = self.rng.random_range(1..=free.len().min(2));
            (free.choose_multiple(&mut self.rng, n).copied().collect(), 0)
        } else {
            (Vec::new(), self.rng.random_range(1..=ga_free.min(2)))
        };
        self.note(&if seated {
            format!("buyer {buyer} buys seats {seats:?}")
        } else {
            format!("buyer {buyer} buys {ga} GA")
        });
        let body = if seated { self.seats_body(&seats) } else { json!({"category_id": self.event.ga, "quantity": ga}) };
        let (status, hold) = self.hold(buyer, body).await;
        assert_eq!(status, StatusCode::CREATED, "a hold of what the model has on sale: {hold}");
        self.purchase(buyer, &hold, seats, ga).await;
        self.check("after a purchase").await;
        true
    }

    /// A buyer cancels a confirmed booking: refused once a ticket of it was scanned.
    async fn cancel(&mut self) -> bool {
        let Some(&b) = self.model.confirmed(false).choose(&mut self.rng) else { return false };
        self.note(&format!("cancel booking {}", self.model.bookings[b].id));
        let answer = self.cancel_call(b).await;
        self.cancelled(b, answer);
        self.check("right after a cancellation").await;
        self.after_cancel(b).await;
        true
    }

    /// The organizer scans a random ticket of a random booking, admitting or not.
    async fn check_in_some_ticket(&mut self) -> bool {
        if self.model.bookings.is_empty() {
            return false;
        }
        let b = self.rng.random_range(0..self.model.bookings.len());
        self.load_tickets(b).await;
        let tickets = self.model.bookings[b].tickets.len();
        if tickets == 0 {
            return false;
        }
        let t = self.rng.random_range(0..tickets);
        let code = self.model.bookings[b].tickets[t].code.clone();
        self.note(&format!(
            "check in ticket {} of booking {}",
            self.model.bookings[b].tickets[t].id, self.model.bookings[b].id
        ));
        let answer = self.check_in(&code).await;
        self.scanned(b, t, &answer);
        self.check("after a check-in").await;
        true
    }

    /// A cancellation races a check-in of one of the booking's tickets: exactly one wins.
    async fn cancel_racing_check_in(&mut self) -> bool {
        let Some(&b) = self.model.confirmed(true).choose(&mut self.rng) else { return false };
        self.load_tickets(b).await;
        let t = self.rng.random_range(0..self.model.bookings[b].tickets.len());
        let code = self.model.bookings[b].tickets[t].code.clone();
        self.note(&format!("cancel booking {} racing a check-in of its ticket {t}", self.model.bookings[b].id));
        // The scan starts up to 50 ms later, so that either may come first.
        let lag = Duration::from_millis(self.rng.random_range(0..50));
        let scan = async {
            tokio::time::sleep(lag).await;
            self.check_in(&code).await
        };
        let (cancel, scan) = tokio::join!(self.cancel_call(b), scan);
        let admitted = scan["admit"] == true;
        assert_ne!(
            cancel.0 == StatusCode::OK,
            admitted,
            "I7: of a cancellation and a check-in racing, exactly one wins: the cancellation answered {} {}, the gate {scan}",
            cancel.0,
            cancel.1
        );
        // The model follows the winner.
        if admitted {
            self.scanned(b, t, &scan);
            self.cancelled(b, cancel);
        } else {
            self.cancelled(b, cancel);
            self.scanned(b, t, &scan);
        }
        self.check("right after a cancellation raced a check-in").await;
        self.after_cancel(b).await;
        true
    }

    /// Another buyer tries to take a booking's seats while it is being cancelled, and gets
    /// them once they are back on sale.
    async fn cancel_racing_resale(&mut self) -> bool {
        let seated: Vec<usize> =
            self.model.confirmed(true).into_iter().filter(|&b| !self.model.bookings[b].seats.is_empty()).collect();
        let Some(&b) = seated.choose(&mut self.rng) else { return false };
        let buyers = [(self.model.bookings[b].buyer + self.rng.random_range(1..BUYERS)) % BUYERS];
        let seats = self.model.bookings[b].seats.clone();
        self.note(&format!("cancel booking {} racing buyer {} for its seats", self.model.bookings[b].id, buyers[0]));
        let (cancel, (winner, hold)) = tokio::join!(self.cancel_call(b), self.claim(&buyers, &seats));
        self.cancelled(b, cancel);
        self.check("right after a cancellation raced a resale").await;
        self.after_cancel(b).await;
        self.purchase(winner, &hold, seats, 0).await;
        self.check("after the resale").await;
        true
    }

    /// One buyer, or two racing, take seats a cancellation freed (or free seats, when none
    /// was freed); exactly one gets them.
    async fn resell(&mut self) -> bool {
        let freeing = self.model.seats_in(Seat::Freeing);
        let pool = if freeing.is_empty() { self.model.seats_in(Seat::Free) } else { freeing };
        if pool.is_empty() {
            return false;
        }
        let n = self.rng.random_range(1..=pool.len().min(2));
        let seats: Vec<usize> = pool.choose_multiple(&mut self.rng, n).copied().collect();
        let first = self.rng.random_range(0..BUYERS);
        let mut buyers = vec![first];
        if self.rng.random_bool(0.5) {
            buyers.push((first + self.rng.random_range(1..BUYERS)) % BUYERS);
        }
        self.note(&format!("buyers {buyers:?} race for seats {seats:?}"));
        let (winner, hold) = self.claim(&buyers, &seats).await;
        self.check("right after the seats were held").await;
        self.purchase(winner, &hold, seats, 0).await;
        self.check("after a resale").await;
        true
    }

    /// Waits until the platform agrees with the model (every booking's settled status, its
    /// tickets, the stock and the ledger); the freed seats are then on sale.
    async fn settle(&mut self) -> bool {
        self.note("let the saga settle");
        for b in 0..self.model.bookings.len() {
            self.load_tickets(b).await;
        }
        eventually_every("the saga to settle where the model is", PATIENCE, POLL * 4, || async {
            let differences = self.differences().await;
            if differences.is_empty() { Ok(()) } else { Err(format!("\n{}", differences.join("\n"))) }
        })
        .await;
        self.model.settled();
        self.check("after settling").await;
        true
    }

    fn seats_body(&self, seats: &[usize]) -> Value {
        json!({"seat_ids": seats.iter().map(|&s| &self.event.seats[s]).collect::<Vec<_>>()})
    }

    async fn hold(&self, buyer: usize, body: Value) -> (StatusCode, Value) {
        let path = format!("/v1/events/{}/holds", self.event.id);
        let key = format!("hold-{}", ticketing_testkit::unique());
        let token = Some(self.buyers[buyer].token.as_str());
        let (status, _, hold) = self.http.call(Method::POST, &path, token, Some(body), Some(&key)).await;
        (status, hold)
    }

    /// Each of `buyers` holds `seats` until one of them has them (after a cancellation they
    /// come back on sale asynchronously); returns the winner and its hold.
    async fn claim(&self, buyers: &[usize], seats: &[usize]) -> (usize, Value) {
        let body = self.seats_body(seats);
        let taken = AtomicBool::new(false);
        let what = format!("seats {seats:?} to come back on sale");
        let attempts = buyers.iter().map(|&buyer| {
            let (body, taken, what) = (body.clone(), &taken, &what);
            eventually_every(what, PATIENCE, POLL, move || {
                let body = body.clone();
                async move {
                    let (status, hold) = self.hold(buyer, body).await;
                    if status == StatusCode::CREATED {
                        taken.store(true, Ordering::SeqCst);
                        return Ok(Some((buyer, hold)));
                    }
                    // A taken seat is a conflict of its own type, never a rate limit (I8).
                    assert_eq!(
                        (status, &hold["type"]),
                        (StatusCode::CONFLICT, &serde_json::json!("https://ticketing.dev/problems/seat-taken")),
                        "a hold of seats {seats:?}: {hold}"
                    );
                    if taken.load(Ordering::SeqCst) { Ok(None) } else { Err(hold) }
                }
            })
        });
        let winners: Vec<(usize, Value)> = futures::future::join_all(attempts).await.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "I2: seats {seats:?} held by exactly one of buyers {buyers:?}: {winners:?}");
        winners.into_iter().next().unwrap()
    }

    /// Books and pays `hold` with a random card, waits for the confirmation, and records it.
    async fn purchase(&mut self, buyer: usize, hold: &Value, seats: Vec<usize>, ga: u32) {
        let card = if self.rng.random_bool(0.5) { Card::Refundable } else { Card::RefundFails };
        let token = self.buyers[buyer].token.clone();
        let body = json!({"hold_id": hold["id"]});
        let (status, _, booking) = self.http.call(Method::POST, "/v1/bookings", Some(&token), Some(body), None).await;
        assert_eq!(status, StatusCode::CREATED, "a booking of hold {hold}: {booking}");
        let id = text(&booking, "id");
        let lines = booking["line_items"].as_array().map_or(0, Vec::len);
        assert_eq!(lines, seats.len() + ga as usize, "one line item per ticket: {booking}");
        let pay = json!({"card_token": card.token()});
        let path = format!("/v1/bookings/{id}/payment");
        let paid = self.http.ok(Method::POST, &path, Some(&token), Some(pay), Some(&id)).await;
        assert_eq!(paid["status"], "succeeded", "{} is charged: {paid}", card.token());
        self.http.wait_for(&format!("/v1/bookings/{id}"), &token, |b| b["status"] == "confirmed").await;
        self.note(&format!("booking {id}: buyer {buyer}, seats {seats:?}, {ga} GA, {}", card.token()));
        self.model.sold(Booking { id, buyer, card, seats, ga, lines, cancelled: false, tickets: Vec::new() });
    }

    async fn cancel_call(&self, b: usize) -> (StatusCode, Value) {
        let booking = &self.model.bookings[b];
        let path = format!("/v1/bookings/{}/cancel", booking.id);
        let token = Some(self.buyers[booking.buyer].token.as_str());
        let (status, _, answer) =
            self.http.call(Method::POST, &path, token, Some(json!({"reason": "seams"})), None).await;
        (status, answer)
    }

    /// Checks a cancellation's answer against the model, and applies it.
    fn cancelled(&mut self, b: usize, (status, answer): (StatusCode, Value)) {
        let booking = &self.model.bookings[b];
        if booking.scanned() {
            assert_eq!(
                (status, answer["type"].as_str()),
                (StatusCode::CONFLICT, Some(TICKET_SCANNED)),
                "I7: booking {} has a ticket used at the gate, so it cannot be cancelled: {answer}",
                booking.id
            );
            self.note("refused: a ticket was scanned");
        } else {
            assert_eq!(
                (status, answer["status"].as_str()),
                (StatusCode::OK, Some("refund_pending")),
                "a cancellation of confirmed booking {}: {answer}",
                booking.id
            );
            self.note("cancelled");
            self.model.cancel(b);
        }
    }

    /// Once a cancellation has returned, no ticket of its booking admits, at the gate either;
    /// a refused one changed nothing.
    async fn after_cancel(&mut self, b: usize) {
        let booking = &self.model.bookings[b];
        let token = self.buyers[booking.buyer].token.clone();
        if !booking.cancelled {
            let now =
                self.http.ok(Method::GET, &format!("/v1/bookings/{}", booking.id), Some(&token), None, None).await;
            assert_eq!(now["status"], "confirmed", "a refused cancellation changed the booking: {now}");
            return;
        }
        let path = format!("/v1/bookings/{}/tickets", booking.id);
        let listed = self.http.ok(Method::GET, &path, Some(&token), None, None).await;
        let listed = listed.as_array().cloned().unwrap_or_default();
        for ticket in &listed {
            assert_eq!(
                ticket["status"], "revoked",
                "I7: a ticket of cancelled booking {} admits: {ticket}",
                booking.id
            );
            let answer = self.check_in(&text(ticket, "code")).await;
            assert_eq!(
                (answer["admit"].as_bool(), answer["result"].as_str()),
                (Some(false), Some("revoked")),
                "I7: the gate on a ticket of cancelled booking {}: {answer}",
                booking.id
            );
        }
        let booking = &mut self.model.bookings[b];
        if booking.tickets.is_empty() {
            booking.tickets =
                listed.iter().map(|t| Ticket { id: text(t, "id"), code: text(t, "code"), scanned: false }).collect();
        }
    }

    /// Lists a booking's tickets into the model once, waiting for all of a confirmed one's.
    async fn load_tickets(&mut self, b: usize) {
        let booking = &self.model.bookings[b];
        if !booking.tickets.is_empty() || booking.cancelled {
            return;
        }
        let (path, lines) = (format!("/v1/bookings/{}/tickets", booking.id), booking.lines);
        let token = &self.buyers[booking.buyer].token;
        let listed = self.http.wait_for(&path, token, |t| t.as_array().is_some_and(|t| t.len() == lines)).await;
        let tickets: Vec<Ticket> = listed
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                assert_eq!(t["status"], "issued", "a ticket of confirmed booking {} never scanned: {t}", booking.id);
                Ticket { id: text(t, "id"), code: text(t, "code"), scanned: false }
            })
            .collect();
        self.model.bookings[b].tickets = tickets;
    }

    async fn gate(&self, code: &str) -> (StatusCode, Value) {
        let body = json!({"code": code, "event_id": self.event.id, "gate_id": "seams"});
        let token = Some(self.organizer.token.as_str());
        let (status, _, answer) = self.http.call(Method::POST, "/v1/checkin", token, Some(body), None).await;
        (status, answer)
    }

    async fn check_in(&self, code: &str) -> Value {
        let (status, answer) = self.gate(code).await;
        assert_eq!(status, StatusCode::OK, "a check-in: {answer}");
        answer
    }

    /// Notification learns who organizes the event from catalog's events; until then its gate
    /// turns the organizer away.
    async fn wait_for_the_gate(&self) {
        let what = "notification to learn who organizes the event";
        eventually_every(what, PATIENCE, POLL, || async {
            let (status, answer) = self.gate("not-a-ticket").await;
            if status == StatusCode::FORBIDDEN {
                return None;
            }
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            Some(())
        })
        .await;
    }

    /// Checks the gate's answer on ticket `t` of booking `b` against the model, and applies it.
    fn scanned(&mut self, b: usize, t: usize, answer: &Value) {
        let booking = &mut self.model.bookings[b];
        let ticket = &mut booking.tickets[t];
        let expected = match (booking.cancelled, ticket.scanned) {
            (true, _) => "revoked",
            (false, true) => "already_scanned",
            (false, false) => "valid",
        };
        assert_eq!(
            (answer["admit"].as_bool(), answer["result"].as_str()),
            (Some(expected == "valid"), Some(expected)),
            "the gate on ticket {} of booking {}: {answer}",
            ticket.id,
            booking.id
        );
        ticket.scanned |= expected == "valid";
    }

    fn seat_name(&self, seat: Uuid) -> String {
        match self.event.seats.iter().position(|s| uuid(s) == seat) {
            Some(i) => format!("seat {i} ({seat})"),
            None => format!("unknown seat {seat}"),
        }
    }

    async fn stock(&self) -> Stock {
        let ask = inventory::AvailabilityRequest {
            event_id: self.event.id.clone(),
            include_seats: true,
            category_ids: Vec::new(),
        };
        let answer = self.p.inventory.clone().availability(ask).await;
        let answer =
            answer.unwrap_or_else(|s| panic!("I1: inventory cannot count the event's stock: {s:?}")).into_inner();
        Stock {
            categories: answer.categories.into_iter().map(|c| (c.category_id.clone(), c)).collect(),
            seats: answer.seats.iter().map(|s| (uuid(&s.seat_id), s.state())).collect(),
        }
    }

    /// How many live sales of inventory's ledger hold each seat, from the sales' own lines
    /// (`sold_seats` cannot show a seat twice: it is its primary key).
    async fn ledger_seats(&self) -> HashMap<Uuid, i64> {
        let sql = "SELECT seat::uuid, count(*) FROM sales, jsonb_array_elements(lines) AS line,
                          jsonb_array_elements_text(line -> 'seat_ids') AS seat
                    WHERE event_id = $1 AND state = 'sold' GROUP BY seat";
        let rows: Vec<(Uuid, i64)> =
            sqlx::query_as(sql).bind(self.event_id).fetch_all(&self.p.dbs["inventory"].pool).await.expect(sql);
        rows.into_iter().collect()
    }

    /// The GA units inventory's ledger has sold (its checked counter).
    async fn ledger_ga_sold(&self) -> i32 {
        let sql = "SELECT sold FROM categories WHERE event_id = $1 AND category_id = $2";
        let pool = &self.p.dbs["inventory"].pool;
        sqlx::query_scalar(sql).bind(self.event_id).bind(uuid(&self.event.ga)).fetch_one(pool).await.expect(sql)
    }

    /// Each live hold's seats. Holds live in inventory's Redis as hashes
    /// `<prefix>{evt:<event>}:hold:<hold>` with a `status` and a comma-separated `seats`; they
    /// are read in one MULTI, so at one moment.
    async fn held_seats(&self) -> Vec<(String, Vec<Uuid>)> {
        let pattern =
            format!("{}{{evt:{}}}:hold:*", self.p.redis["inventory"].config.key_prefix, self.event_id.simple());
        let mut conn = self.redis.clone();
        let (mut keys, mut cursor) = (Vec::<String>::new(), 0_u64);
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
            let (next, batch): (u64, Vec<String>) = scan.query_async(&mut conn).await.expect("SCAN");
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        if keys.is_empty() {
            return Vec::new();
        }
        let mut read = redis::pipe();
        read.atomic();
        for key in &keys {
            read.hget(key, &["status", "seats"]);
        }
        let holds: Vec<(Option<String>, Option<String>)> = read.query_async(&mut conn).await.expect("the holds");
        keys.into_iter()
            .zip(holds)
            .filter(|(_, (status, _))| matches!(status.as_deref(), Some("active" | "confirming")))
            .map(|(key, (_, seats))| {
                let seats = seats.unwrap_or_default();
                (key, seats.split(',').filter(|s| !s.is_empty()).map(uuid).collect())
            })
            .collect()
    }

    /// Notification's admitting tickets of the event (see the module's doc):
    /// (ticket, booking, category, seat).
    async fn admitting_tickets(&self) -> Vec<(Uuid, Uuid, Uuid, Option<Uuid>)> {
        let sql = "SELECT ticket_id, booking_id, category_id, seat_id FROM tickets
                    WHERE event_id = $1 AND revoked_at IS NULL";
        sqlx::query_as(sql).bind(self.event_id).fetch_all(&self.p.dbs["notification"].pool).await.expect(sql)
    }

    /// I1, I2 and I7 now, waiting for nothing. Inventory is read before notification: a seat
    /// goes back on sale only after its tickets are revoked, and nobody buys while this runs,
    /// so a seat seen on sale has no admitting ticket by the time the tickets are read.
    async fn check(&self, when: &str) {
        let stock = self.stock().await;
        assert_eq!(stock.categories.len(), 2, "I1 {when}: the event's categories: {:?}", stock.categories);
        for (category, c) in &stock.categories {
            let capacity = if *category == self.event.ga { GA } else { SEATS };
            assert!(
                c.capacity == capacity && c.available + c.held + c.sold == capacity,
                "I1 {when}: category {category} of capacity {capacity} counts {c:?}"
            );
        }

        if let Some((seat, sales)) = self.ledger_seats().await.into_iter().find(|(_, sales)| *sales > 1) {
            panic!("I2 {when}: {} is sold by {sales} live sales", self.seat_name(seat));
        }
        let mut holders: HashMap<Uuid, &str> = HashMap::new();
        let holds = self.held_seats().await;
        for (hold, seats) in &holds {
            for seat in seats {
                if let Some(other) = holders.insert(*seat, hold.as_str()) {
                    panic!("I2 {when}: {} is in two live holds, {other} and {hold}", self.seat_name(*seat));
                }
                let state = stock.seats.get(seat).copied();
                assert_eq!(state, Some(SeatState::Held), "I2 {when}: {} is in live hold {hold}", self.seat_name(*seat));
            }
        }
        let held = stock.seats.values().filter(|s| **s == SeatState::Held).count();
        assert_eq!(held, holders.len(), "I2 {when}: {held} seats are held, but live holds cover {holders:?}");

        let admitting = self.admitting_tickets().await;
        let mut admitted: HashMap<Uuid, Uuid> = HashMap::new();
        for &(ticket, booking, _, seat) in &admitting {
            let Some(seat) = seat else { continue };
            if let Some(other) = admitted.insert(seat, ticket) {
                panic!(
                    "I7 {when}: two tickets admit to {}: {other} and {ticket} (booking {booking})",
                    self.seat_name(seat)
                );
            }
            let state = stock.seats.get(&seat).copied();
            assert_eq!(
                state,
                Some(SeatState::Sold),
                "I7 {when}: {} is on sale while ticket {ticket} of booking {booking} admits to it",
                self.seat_name(seat)
            );
        }
        let ga = uuid(&self.event.ga);
        let ga_admitting = admitting.iter().filter(|t| t.2 == ga).count();
        let ga_sold = stock.categories[&self.event.ga].sold as usize;
        assert!(ga_admitting <= ga_sold, "I7 {when}: {ga_admitting} GA tickets admit, {ga_sold} GA units are sold");

        let cancelled: HashSet<Uuid> =
            self.model.bookings.iter().filter(|b| b.cancelled).map(|b| uuid(&b.id)).collect();
        if let Some((ticket, booking, _, _)) = admitting.iter().find(|t| cancelled.contains(&t.1)) {
            panic!("I7 {when}: ticket {ticket} of cancelled booking {booking} still admits");
        }
    }

    /// Where the platform is not (yet) where the model says it settles.
    async fn differences(&self) -> Vec<String> {
        let mut found = Vec::new();
        for booking in &self.model.bookings {
            let token = Some(self.buyers[booking.buyer].token.as_str());
            let path = format!("/v1/bookings/{}", booking.id);
            let now = self.http.ok(Method::GET, &path, token, None, None).await;
            if now["status"] != booking.settled_status() {
                found.push(format!("booking {} is {}, not {}", booking.id, now["status"], booking.settled_status()));
            }
            let listed = self.http.ok(Method::GET, &format!("{path}/tickets"), token, None, None).await;
            let listed: BTreeMap<String, String> =
                listed.as_array().into_iter().flatten().map(|t| (text(t, "id"), text(t, "status"))).collect();
            let expected: BTreeMap<String, String> = if booking.cancelled {
                listed.keys().map(|id| (id.clone(), "revoked".to_owned())).collect()
            } else {
                let status = |t: &Ticket| if t.scanned { "scanned" } else { "issued" };
                booking.tickets.iter().map(|t| (t.id.clone(), status(t).to_owned())).collect()
            };
            if listed != expected {
                found.push(format!("booking {}'s tickets are {listed:?}, not {expected:?}", booking.id));
            }
        }

        let stock = self.stock().await;
        let sold: Vec<usize> =
            (0..self.model.seats.len()).filter(|&s| matches!(self.model.seats[s], Seat::Sold(_))).collect();
        let seated = (&self.event.seated, SEATS, sold.len() as u32);
        for (category, capacity, n) in [seated, (&self.event.ga, GA, self.model.ga_sold)] {
            let c = &stock.categories[category];
            if (c.available, c.held, c.sold) != (capacity - n, 0, n) {
                found.push(format!("category {category} counts {c:?}, not {n} sold of {capacity}"));
            }
        }
        for (i, seat) in self.event.seats.iter().enumerate() {
            let expected = if sold.contains(&i) { SeatState::Sold } else { SeatState::Available };
            let state = stock.seats.get(&uuid(seat)).copied();
            if state != Some(expected) {
                found.push(format!("seat {i} is {state:?}, not {expected:?}"));
            }
        }
        let ledger: HashSet<Uuid> = self.ledger_seats().await.into_keys().collect();
        let model: HashSet<Uuid> = sold.iter().map(|&s| uuid(&self.event.seats[s])).collect();
        if ledger != model {
            found.push(format!("the ledger sold seats {ledger:?}, not {model:?}"));
        }
        let ga_sold = self.ledger_ga_sold().await;
        if ga_sold != self.model.ga_sold as i32 {
            found.push(format!("the ledger sold {ga_sold} GA units, not {}", self.model.ga_sold));
        }
        found
    }
}

fn uuid(text: &str) -> Uuid {
    text.parse().unwrap_or_else(|_| panic!("not a UUID: {text}"))
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_else(|| panic!("no {field} in {value}")).to_owned()
}
