//! The saga's consumers: payment outcomes, ended holds and catalog changes move
//! bookings along, and booking's own refund requests return seats to stock once
//! committed. Each event is applied once (the platform consumer dedupes on its id, in the
//! handler's transaction); every step also tolerates replays and any order, because it
//! looks at the booking's state before changing it. When an event is late, the
//! [`reconciler`](crate::workers::reconciler) takes the same steps.

use chrono::DateTime;
use sqlx::PgConnection;
use ticketing_platform::events::{PayloadError, payload};
use ticketing_platform::kafka::consumer::{HandleError, Handler, required_id};
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;
use ticketing_proto::topics;

use crate::domain::BookingError;
use crate::service::Bookings;

/// Consumer group of the saga.
pub const GROUP: &str = "booking.saga";

/// Base names of the topics the saga reads.
pub const TOPICS: [&str; 4] = [topics::PAYMENT, topics::INVENTORY, topics::CATALOG, topics::BOOKING];

/// The handler.
pub struct Saga {
    bookings: Bookings,
}

impl Saga {
    /// A saga driving `bookings`.
    pub fn new(bookings: Bookings) -> Self {
        Self { bookings }
    }
}

fn decoded<M: prost::Message + prost::Name + Default>(event: &Envelope) -> Result<M, HandleError> {
    payload(event).map_err(|e: PayloadError| HandleError::Permanent(e.into()))
}

fn is<M: prost::Name>(event: &Envelope) -> bool {
    event.r#type == M::full_name()
}

impl Handler for Saga {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandleError> {
        let b = &self.bookings;
        let applied = if is::<ev::PaymentSucceeded>(event) {
            let paid: ev::PaymentSucceeded = decoded(event)?;
            b.payment_succeeded(
                tx,
                required_id("booking_id", &paid.booking_id)?,
                required_id("payment_id", &paid.payment_id)?,
                event.occurred_at.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)),
            )
            .await
        } else if is::<ev::PaymentFailed>(event) {
            let failed: ev::PaymentFailed = decoded(event)?;
            let detail = format!("payment failed: {}", failed.failure_code);
            b.payment_failed(tx, required_id("booking_id", &failed.booking_id)?, &detail).await
        } else if is::<ev::RefundSucceeded>(event) {
            b.refund_succeeded(tx, &decoded(event)?).await
        } else if is::<ev::BookingRefundRequested>(event) {
            b.restock_requested(tx, &decoded(event)?).await
        } else if is::<ev::HoldExpired>(event) {
            b.hold_ended(tx, &decoded::<ev::HoldExpired>(event)?.hold_id, true).await
        } else if is::<ev::HoldReleased>(event) {
            b.hold_ended(tx, &decoded::<ev::HoldReleased>(event)?.hold_id, false).await
        } else if is::<ev::EventPublished>(event) {
            let published: ev::EventPublished = decoded(event)?;
            b.event_published(
                tx,
                required_id("event_id", &published.event_id)?,
                required_id("organizer_id", &published.organizer_id)?,
            )
            .await
        } else if is::<ev::EventCancelled>(event) {
            let cancelled: ev::EventCancelled = decoded(event)?;
            b.event_cancelled(
                tx,
                required_id("event_id", &cancelled.event_id)?,
                required_id("organizer_id", &cancelled.organizer_id)?,
            )
            .await
        } else {
            // Other events on these topics do not concern bookings.
            Ok(())
        };
        match applied {
            Ok(()) => Ok(()),
            // Payment only knows bookings booking announced: a missing one is not coming.
            Err(BookingError::NotFound) => {
                Err(HandleError::Permanent(anyhow::anyhow!("event {} names an unknown booking", event.id)))
            }
            Err(BookingError::Invalid(v)) => {
                Err(HandleError::Permanent(anyhow::anyhow!("{}", ticketing_platform::status::describe(&v))))
            }
            Err(e) => Err(HandleError::Retryable(e.into())),
        }
    }
}
