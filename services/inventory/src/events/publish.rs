//! The events inventory publishes on `inventory.events`, built from holds, each in its
//! envelope keyed by the hold.

use ticketing_platform::events::{envelope, envelope_with_id};
use ticketing_proto::events::v1 as ev;
use ticketing_proto::events::v1::Envelope;

use crate::domain::{Hold, HoldId, HoldLine};

/// Namespace of the deterministic ids of spooled announcements.
const SPOOL_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c0c_7d0e_52b4_4f0c_9d7e_1c1d_5e6a_a001);

/// Hold lines as events carry them.
pub fn event_lines(lines: &[HoldLine]) -> Vec<ev::InventoryHoldLine> {
    lines
        .iter()
        .map(|l| ev::InventoryHoldLine {
            category_id: l.category_id.to_string(),
            quantity: l.quantity,
            seat_ids: l.seat_ids.iter().map(uuid::Uuid::to_string).collect(),
        })
        .collect()
}

/// `hold` was sold to `booking` under fencing token `token`.
pub fn confirmed(id: HoldId, hold: &Hold, token: u64, booking: &str) -> Envelope {
    let event = ev::HoldConfirmed {
        hold_id: id.to_string(),
        event_id: id.event.to_string(),
        user_id: hold.user.to_string(),
        lines: event_lines(&hold.lines),
        fencing_token: token,
        booking_id: booking.to_owned(),
    };
    envelope(id.to_string(), &event)
}

/// The tickets of `sale`, sold to `booking`, are back in stock.
pub fn restocked(id: HoldId, sale: &Hold, booking: &str) -> Envelope {
    let event = ev::HoldRestocked {
        hold_id: id.to_string(),
        event_id: id.event.to_string(),
        user_id: sale.user.to_string(),
        lines: event_lines(&sale.lines),
        booking_id: booking.to_owned(),
    };
    envelope(id.to_string(), &event)
}

/// The spooled end of a hold (`entry` is `<outcome>:<hold>`): released by `released_by`, or
/// expired. Its id is derived from what happened, so two replicas draining at once publish
/// it once.
pub fn ended(entry: &str, id: HoldId, hold: &Hold, released_by: Option<String>) -> Envelope {
    let event_id = uuid::Uuid::new_v5(&SPOOL_NAMESPACE, format!("{entry}:{}", id.event).as_bytes());
    let aggregate = id.to_string();
    let lines = event_lines(&hold.lines);
    match released_by {
        Some(by) => {
            let message = ev::HoldReleased {
                hold_id: id.to_string(),
                event_id: id.event.to_string(),
                user_id: hold.user.to_string(),
                lines,
                fencing_token: hold.fencing_token,
                released_by: by,
            };
            envelope_with_id(event_id, aggregate, &message)
        }
        None => {
            let message = ev::HoldExpired {
                hold_id: id.to_string(),
                event_id: id.event.to_string(),
                user_id: hold.user.to_string(),
                lines,
                fencing_token: hold.fencing_token,
                expired_at: hold.ended_at.map(prost_types::Timestamp::from),
            };
            envelope_with_id(event_id, aggregate, &message)
        }
    }
}
