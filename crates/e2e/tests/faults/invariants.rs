//! The verdict on a run, from facts: the services' databases and the emails the SMTP
//! server received, never what a service says about itself.

use std::collections::{BTreeMap, HashMap};

use sqlx::PgPool;

use crate::load::Accepted;
use crate::platform::Platform;

/// Payment statuses of a charge that took the buyer's money.
const CHARGED: [&str; 3] = ["succeeded", "refunded", "partially_refunded"];
/// Examples listed per violated invariant.
const EXAMPLES: usize = 10;

struct Booking {
    status: String,
    lines: i64,
    payment: Option<String>,
}

/// What the databases and the mailbox hold at one moment.
pub struct Facts {
    /// payment id → (booking id, status).
    payments: BTreeMap<String, (String, String)>,
    bookings: HashMap<String, Booking>,
    /// Charges the provider (the simulated one's ledger) took, per booking.
    provider_charges: HashMap<String, i64>,
    /// Tickets notification issued, per booking.
    tickets: HashMap<String, i64>,
    /// (booking, template) → (deliveries logged, of which sent).
    deliveries: HashMap<(String, String), (i64, i64)>,
    /// Deliveries of any template not sent yet.
    unsent: i64,
    /// Inventory's checked counters, and its ledger of sales.
    sold_counters: i64,
    sold_ledger: i64,
    /// How often the SMTP server received each Message-ID.
    message_ids: HashMap<String, usize>,
}

async fn rows<T>(pool: &PgPool, sql: &str) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(sql).fetch_all(pool).await
}

impl Facts {
    /// Reads them; fails while a database refuses connections (the Postgres fault).
    pub async fn gather(p: &Platform) -> Result<Self, sqlx::Error> {
        let db = |service: &str| &p.dbs[service].pool;
        let payments: Vec<(String, String, String)> =
            rows(db("payment"), "SELECT id::text, booking_id::text, status FROM payments").await?;
        let provider_charges: Vec<(String, i64)> = rows(
            db("payment"),
            "SELECT p.booking_id::text, count(*) FROM simulated_charges c
               JOIN payments p ON p.id::text = c.idempotency_key
              WHERE c.status = 'succeeded' GROUP BY 1",
        )
        .await?;
        let bookings: Vec<(String, String, Option<String>, i64)> = rows(
            db("booking"),
            "SELECT b.id::text, b.status, b.payment_id::text, count(l.id)
               FROM bookings b LEFT JOIN line_items l ON l.booking_id = b.id GROUP BY b.id",
        )
        .await?;
        let tickets: Vec<(String, i64)> =
            rows(db("notification"), "SELECT booking_id::text, count(*) FROM tickets GROUP BY 1").await?;
        let deliveries: Vec<(String, String, i64, i64)> = rows(
            db("notification"),
            "SELECT booking_id::text, template, count(*), count(*) FILTER (WHERE status = 'sent')
               FROM deliveries WHERE booking_id IS NOT NULL GROUP BY 1, 2",
        )
        .await?;
        let (unsent,): (i64,) = sqlx::query_as("SELECT count(*) FROM deliveries WHERE status <> 'sent'")
            .fetch_one(db("notification"))
            .await?;
        let (sold_counters,): (i64,) =
            sqlx::query_as("SELECT coalesce(sum(sold), 0)::bigint FROM categories").fetch_one(db("inventory")).await?;
        let (sold_ledger,): (i64,) =
            sqlx::query_as("SELECT coalesce(sum(quantity), 0)::bigint FROM sales WHERE state = 'sold'")
                .fetch_one(db("inventory"))
                .await?;
        let mut message_ids = HashMap::new();
        for message in p.smtp.messages() {
            *message_ids.entry(ticketing_testkit::smtp::parse(&message).message_id).or_default() += 1;
        }
        Ok(Self {
            payments: payments.into_iter().map(|(id, booking, status)| (id, (booking, status))).collect(),
            bookings: bookings
                .into_iter()
                .map(|(id, status, payment, lines)| (id, Booking { status, lines, payment }))
                .collect(),
            provider_charges: provider_charges.into_iter().collect(),
            tickets: tickets.into_iter().collect(),
            deliveries: deliveries.into_iter().map(|(b, t, n, sent)| ((b, t), (n, sent))).collect(),
            unsent,
            sold_counters,
            sold_ledger,
            message_ids,
        })
    }

    /// Bookings whose payment took the money, per payment's database.
    fn paid(&self) -> impl Iterator<Item = (&String, &String)> {
        self.payments.iter().filter(|(_, (_, status))| CHARGED.contains(&status.as_str())).map(|(id, (b, _))| (id, b))
    }

    fn confirmed(&self) -> impl Iterator<Item = (&String, &Booking)> {
        self.bookings.iter().filter(|(_, b)| b.status == "confirmed")
    }

    /// Those of `bookings` not CONFIRMED with all their tickets issued yet.
    pub fn unconfirmed<'a>(&self, bookings: &'a [String]) -> Vec<&'a String> {
        bookings
            .iter()
            .filter(|id| {
                self.bookings
                    .get(*id)
                    .is_none_or(|b| b.status != "confirmed" || self.tickets.get(*id) != Some(&b.lines))
            })
            .collect()
    }

    /// One line of figures: payments, confirmations, tickets, sales, emails.
    pub fn figures(&self) -> String {
        let confirmed_tickets: i64 = self.confirmed().map(|(_, b)| b.lines).sum();
        format!(
            "payments charged {}, bookings confirmed {} ({} tickets, {} issued), sold {} (ledger {}), emails {} ({} received twice)",
            self.paid().count(),
            self.confirmed().count(),
            confirmed_tickets,
            self.tickets.values().sum::<i64>(),
            self.sold_counters,
            self.sold_ledger,
            self.message_ids.values().sum::<usize>(),
            self.message_ids.values().filter(|n| **n > 1).count(),
        )
    }

    /// Every broken promise, one line per invariant with examples; empty when all hold.
    /// `in_flight_resends`: emails that may be received twice (never more) with the same
    /// Message-ID, those a killed notification was sending: SMTP has no idempotency, so a
    /// send whose acceptance the dead process never recorded goes again (docs/faults.md).
    pub fn violations(&self, accepted: &[Accepted], in_flight_resends: usize) -> Vec<String> {
        let mut found = Vec::new();
        let mut check = |what: &str, examples: Vec<String>| {
            if !examples.is_empty() {
                let shown = examples.iter().take(EXAMPLES).cloned().collect::<Vec<_>>().join("; ");
                found.push(format!("{what}: {} (e.g. {shown})", examples.len()));
            }
        };

        check(
            "payments the gateway answered `succeeded` that payment's database does not show charged",
            accepted
                .iter()
                .filter(|a| !self.payments.get(&a.payment).is_some_and(|(_, s)| CHARGED.contains(&s.as_str())))
                .map(|a| format!("payment {} of booking {}: {:?}", a.payment, a.booking, self.payments.get(&a.payment)))
                .collect(),
        );
        check(
            "charges left pending or unknown",
            self.payments
                .iter()
                .filter(|(_, (_, s))| s == "pending" || s == "unknown")
                .map(|(id, (b, s))| format!("payment {id} of booking {b}: {s}"))
                .collect(),
        );
        check(
            "paid bookings not CONFIRMED",
            self.paid()
                .filter(|(_, b)| self.bookings.get(*b).is_none_or(|b| b.status != "confirmed"))
                .map(|(id, b)| {
                    let status = self.bookings.get(b).map_or("missing", |b| b.status.as_str());
                    format!("booking {b} {status} (payment {id})")
                })
                .collect(),
        );
        check(
            "CONFIRMED bookings without a charged payment",
            self.confirmed()
                .filter(|(_, b)| !b.payment.as_ref().is_some_and(|p| self.paid().any(|(id, _)| id == p)))
                .map(|(id, b)| format!("booking {id} (payment {:?})", b.payment))
                .collect(),
        );
        check(
            "CONFIRMED bookings whose tickets were not all issued",
            self.confirmed()
                .filter(|(id, b)| self.tickets.get(*id).copied().unwrap_or(0) != b.lines)
                .map(|(id, b)| format!("booking {id}: {} tickets, {:?} issued", b.lines, self.tickets.get(id)))
                .collect(),
        );
        let mut charges: BTreeMap<&String, usize> = BTreeMap::new();
        for (_, booking) in self.paid() {
            *charges.entry(booking).or_default() += 1;
        }
        check(
            "bookings charged twice",
            charges
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(b, n)| format!("booking {b}: {n} payments"))
                .chain(
                    self.provider_charges
                        .iter()
                        .filter(|(_, n)| **n > 1)
                        .map(|(b, n)| format!("booking {b}: {n} charges at the provider")),
                )
                .collect(),
        );
        let confirmed_tickets: i64 = self.confirmed().map(|(_, b)| b.lines).sum();
        check(
            "sold differs from the tickets of CONFIRMED bookings",
            [("inventory's counters", self.sold_counters), ("inventory's ledger", self.sold_ledger)]
                .iter()
                .filter(|(_, sold)| *sold != confirmed_tickets)
                .map(|(what, sold)| format!("{what} say {sold} sold, bookings {confirmed_tickets}"))
                .collect(),
        );
        check(
            "CONFIRMED bookings without exactly one sent tickets email",
            self.confirmed()
                .filter_map(|(id, _)| {
                    let logged = self.deliveries.get(&(id.clone(), "booking_confirmed".into())).copied();
                    (logged != Some((1, 1))).then(|| format!("booking {id}: (logged, sent) {logged:?}"))
                })
                .collect(),
        );
        check(
            "emails not sent yet (any template)",
            if self.unsent > 0 { vec![format!("{} deliveries", self.unsent)] } else { vec![] },
        );
        let resent: Vec<String> =
            self.message_ids.iter().filter(|(_, n)| **n > 1).map(|(id, n)| format!("{id} x{n}")).collect();
        let tolerated = resent.len() <= in_flight_resends && self.message_ids.values().all(|n| *n <= 2);
        check("emails sent twice (the same Message-ID received again)", if tolerated { vec![] } else { resent });
        found
    }
}
