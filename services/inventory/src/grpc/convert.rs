//! Proto ↔ domain conversions and the one mapping from [`InventoryError`] to `Status`.

use std::time::SystemTime;

use ticketing_platform::status::FieldViolation;
use ticketing_proto::inventory::v1 as pb;
use tonic::Status;

use crate::adapters::stock::SeatState;
use crate::domain::{Hold, HoldId, HoldStatus, InventoryError, Selection};

impl From<InventoryError> for Status {
    fn from(e: InventoryError) -> Self {
        let message = e.to_string();
        match e {
            InventoryError::Invalid(violations) => ticketing_platform::status::invalid_argument(&message, &violations),
            InventoryError::EventNotFound | InventoryError::HoldNotFound => Status::not_found(message),
            InventoryError::NotOnSale
            | InventoryError::LimitExceeded { .. }
            | InventoryError::Expired
            | InventoryError::Ended(_) => Status::failed_precondition(message),
            InventoryError::SoldOut { .. } | InventoryError::SeatTaken(_) | InventoryError::NoAdjacentSeats(_) => {
                Status::resource_exhausted(message)
            }
            InventoryError::IdempotencyMismatch => Status::already_exists(message),
            InventoryError::StaleToken | InventoryError::LedgerConflict(_) => Status::aborted(message),
            InventoryError::Forbidden => Status::permission_denied(message),
            InventoryError::Unavailable(source) => {
                tracing::error!(error = format!("{source:#}"), "inventory dependency failed");
                Status::unavailable(message)
            }
        }
    }
}

fn invalid(field: &str, description: &str) -> Status {
    ticketing_platform::status::invalid_argument("invalid request", &[FieldViolation::new(field, description)])
}

/// Parses a UUID field.
pub fn uuid(field: &str, value: &str) -> Result<uuid::Uuid, Status> {
    value.parse().map_err(|_| invalid(field, "must be a UUID"))
}

/// Parses a hold id field.
pub fn hold_id(value: &str) -> Result<HoldId, Status> {
    value.parse().map_err(|e: String| invalid("hold_id", &e))
}

/// The domain selection of a Hold request.
pub fn selection(selection: Option<pb::hold_request::Selection>) -> Result<Selection, Status> {
    use pb::hold_request::Selection as S;
    match selection {
        Some(S::GeneralAdmission(ga)) => Ok(Selection::GeneralAdmission {
            category: uuid("general_admission.category_id", &ga.category_id)?,
            quantity: ga.quantity,
        }),
        Some(S::Seats(seats)) => Ok(Selection::Seats(
            seats
                .seat_ids
                .iter()
                .enumerate()
                .map(|(i, s)| uuid(&format!("seats.seat_ids[{i}]"), s))
                .collect::<Result<_, _>>()?,
        )),
        Some(S::BestAvailable(best)) => Ok(Selection::BestAvailable {
            category: uuid("best_available.category_id", &best.category_id)?,
            quantity: best.quantity,
            require_adjacent: best.require_adjacent,
        }),
        None => Err(invalid("selection", "one of general_admission, seats or best_available is required")),
    }
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

fn status(status: HoldStatus) -> pb::HoldStatus {
    match status {
        HoldStatus::Active | HoldStatus::Confirming => pb::HoldStatus::Active,
        HoldStatus::Confirmed => pb::HoldStatus::Confirmed,
        HoldStatus::Released => pb::HoldStatus::Released,
        HoldStatus::Expired => pb::HoldStatus::Expired,
        HoldStatus::Restocked => pb::HoldStatus::Restocked,
    }
}

impl From<Hold> for pb::HoldDetails {
    fn from(hold: Hold) -> Self {
        Self {
            hold_id: hold.id.to_string(),
            event_id: hold.id.event.to_string(),
            user_id: hold.user.to_string(),
            status: status(hold.status).into(),
            expires_at: Some(timestamp(hold.expires_at)),
            fencing_token: hold.fencing_token,
            lines: hold
                .lines
                .into_iter()
                .map(|l| pb::HoldLine {
                    category_id: l.category_id.to_string(),
                    quantity: l.quantity,
                    seat_ids: l.seat_ids.iter().map(uuid::Uuid::to_string).collect(),
                })
                .collect(),
            created_at: Some(timestamp(hold.created_at)),
            ended_at: hold.ended_at.map(timestamp),
            booking_id: hold.booking_id.unwrap_or_default(),
        }
    }
}

/// The proto seat state.
pub fn seat_state(state: SeatState) -> pb::SeatState {
    match state {
        SeatState::Available => pb::SeatState::Available,
        SeatState::Held => pb::SeatState::Held,
        SeatState::Sold => pb::SeatState::Sold,
    }
}
