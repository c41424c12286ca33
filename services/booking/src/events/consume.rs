//! The saga's consumers: payment outcomes, ended holds and catalog changes move
//! bookings along, and booking's own refund requests return seats to stock once
//! committed. Each event is applied once (the platform consumer dedupes on its id, in the
//! handler's transaction); every step also tolerates replays and any order, because it
//! looks at the booking's state before changing it. When an event is late, the
//! [`reconciler`](crate::workers::reconciler) takes the same steps.

use sqlx::PgConnection;
use ticketing_platform::events::dispatch;
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

/// The events the saga acts on.
enum Incoming {
    PaymentSucceeded(ev::PaymentSucceeded),
    PaymentFailed(ev::PaymentFailed),
    RefundSucceeded(ev::RefundSucceeded),
    BookingRefundRequested(ev::BookingRefundRequested),
    HoldExpired(ev::HoldExpired),
    HoldReleased(ev::HoldReleased),
    EventPublished(ev::EventPublished),
    EventCancelled(ev::EventCancelled),
}

impl Handler for Saga {
    async fn handle(&self, tx: &mut PgConnection, event: &Envelope) -> Result<(), HandleError> {
        let incoming = dispatch(event)
            .on(Incoming::PaymentSucceeded)
            .on(Incoming::PaymentFailed)
            .on(Incoming::RefundSucceeded)
            .on(Incoming::BookingRefundRequested)
            .on(Incoming::HoldExpired)
            .on(Incoming::HoldReleased)
            .on(Incoming::EventPublished)
            .on(Incoming::EventCancelled)
            .decoded()?;
        // Other events on these topics do not concern bookings.
        let Some(incoming) = incoming else { return Ok(()) };
        let b = &self.bookings;
        let applied = match incoming {
            Incoming::PaymentSucceeded(paid) => {
                b.payment_succeeded(
                    tx,
                    required_id("booking_id", &paid.booking_id)?,
                    required_id("payment_id", &paid.payment_id)?,
                    event.occurred_at.as_ref().and_then(ticketing_kernel::time::from_proto),
                )
                .await
            }
            Incoming::PaymentFailed(failed) => {
                let detail = format!("payment failed: {}", failed.failure_code);
                b.payment_failed(tx, required_id("booking_id", &failed.booking_id)?, &detail).await
            }
            Incoming::RefundSucceeded(refunded) => b.refund_succeeded(tx, &refunded).await,
            Incoming::BookingRefundRequested(requested) => b.restock_requested(tx, &requested).await,
            Incoming::HoldExpired(expired) => b.hold_ended(tx, &expired.hold_id, true).await,
            Incoming::HoldReleased(released) => b.hold_ended(tx, &released.hold_id, false).await,
            Incoming::EventPublished(published) => {
                b.event_published(
                    tx,
                    required_id("event_id", &published.event_id)?,
                    required_id("organizer_id", &published.organizer_id)?,
                )
                .await
            }
            Incoming::EventCancelled(cancelled) => {
                b.event_cancelled(
                    tx,
                    required_id("event_id", &cancelled.event_id)?,
                    required_id("organizer_id", &cancelled.organizer_id)?,
                )
                .await
            }
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
