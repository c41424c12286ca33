//! Proto ↔ domain conversions and the one mapping from [`InventoryError`] to `Status`.

use ticketing_kernel::time::to_proto;
use ticketing_platform::status::FieldViolation;
use ticketing_proto::inventory::v1 as pb;
use tonic::Status;

use crate::adapters::stock::SeatState;
use crate::domain::{Hold, HoldId, HoldStatus, InventoryError, Selection};

impl From<InventoryError> for Status {
    fn from(e: InventoryError) -> Self {
        let message = e.to_string();
        // Refusals name their reason (the gateway answers each with a 409 of its own type):
        // none is a rate limit, so a client never retries a sold-out event in a loop.
        let refused = |reason| ticketing_platform::status::refused(reason, message.clone());
        match e {
            InventoryError::Invalid(violations) => ticketing_platform::status::invalid_argument(&message, &violations),
            InventoryError::EventNotFound | InventoryError::HoldNotFound => Status::not_found(message),
            InventoryError::NotOnSale => refused("NOT_ON_SALE"),
            InventoryError::EmailUnverified => refused(ticketing_platform::status::EMAIL_UNVERIFIED),
            InventoryError::LimitExceeded { .. } => refused("LIMIT_EXCEEDED"),
            InventoryError::SoldOut { .. } => refused("SOLD_OUT"),
            InventoryError::SeatTaken(_) => refused("SEAT_TAKEN"),
            InventoryError::NoAdjacentSeats(_) => refused("NO_ADJACENT_SEATS"),
            InventoryError::Expired => refused("HOLD_EXPIRED"),
            InventoryError::Ended(_) => refused("HOLD_ENDED"),
            InventoryError::IdempotencyMismatch => ticketing_platform::idempotency::key_reused(),
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

/// Most events one `BatchAvailability` may ask for: a page of events.
pub const MAX_BATCH: usize = 100;

/// The distinct events of a `BatchAvailability`, in the order first asked: 1 to
/// [`MAX_BATCH`] UUIDs.
pub fn event_ids(raw: &[String]) -> Result<Vec<uuid::Uuid>, Status> {
    if raw.is_empty() || raw.len() > MAX_BATCH {
        return Err(invalid("event_ids", &format!("must list 1 to {MAX_BATCH} events")));
    }
    let mut events = Vec::with_capacity(raw.len());
    for (i, id) in raw.iter().enumerate() {
        let event = uuid(&format!("event_ids[{i}]"), id)?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

/// Most items one `HoldBatch` or `ReleaseBatch` may carry.
pub const MAX_ITEMS: usize = 256;

/// A batch's items: 1 to [`MAX_ITEMS`].
pub fn batch<T>(items: Vec<T>) -> Result<Vec<T>, Status> {
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(invalid("items", &format!("must list 1 to {MAX_ITEMS} items")));
    }
    Ok(items)
}

/// A missing message field.
pub fn required(field: &str) -> Status {
    invalid(field, "is required")
}

/// A batch's answers: each item's hold, or the status its own call would have failed
/// with. When every item failed UNAVAILABLE (Redis or the ledger is down), the call fails
/// so too, as each of its calls would have: callers' breakers and retries see it.
pub fn outcomes(results: Vec<Result<pb::HoldDetails, Status>>) -> Result<Vec<pb::HoldOutcome>, Status> {
    use pb::hold_outcome::Outcome;
    if let Some(Err(first)) = results.first()
        && results.iter().all(|r| r.as_ref().is_err_and(|s| s.code() == tonic::Code::Unavailable))
    {
        return Err(first.clone());
    }
    let outcome = |result| match result {
        Ok(hold) => Outcome::Hold(hold),
        Err(status) => Outcome::Error(ticketing_platform::status::to_message(&status)),
    };
    Ok(results.into_iter().map(|r| pb::HoldOutcome { outcome: Some(outcome(r)) }).collect())
}

/// An event's availability, restricted to the categories `wanted`.
pub fn availability(
    event: uuid::Uuid,
    a: &crate::service::Availability,
    wanted: impl Fn(&uuid::Uuid) -> bool,
) -> pb::AvailabilityResponse {
    pb::AvailabilityResponse {
        event_id: event.to_string(),
        categories: a
            .categories
            .iter()
            .filter(|(c, _)| wanted(c))
            .map(|(c, n)| pb::CategoryAvailability {
                category_id: c.to_string(),
                capacity: n.capacity,
                available: n.available,
                held: n.held,
                sold: n.sold,
            })
            .collect(),
        seats: a
            .seats
            .iter()
            .filter(|(_, c, _)| wanted(c))
            .map(|(s, c, state)| pb::SeatAvailability {
                seat_id: s.to_string(),
                category_id: c.to_string(),
                state: seat_state(*state).into(),
            })
            .collect(),
        as_of: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
    }
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
            expires_at: Some(to_proto(hold.expires_at.into())),
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
            created_at: Some(to_proto(hold.created_at.into())),
            ended_at: hold.ended_at.map(|t| to_proto(t.into())),
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

#[cfg(test)]
mod tests {
    use ticketing_platform::status::refusal_reason;
    use tonic::Code;

    use super::*;

    #[test]
    fn every_refusal_a_buyer_can_meet_is_a_named_failed_precondition() {
        let refusals = [
            (InventoryError::NotOnSale, "NOT_ON_SALE"),
            (InventoryError::EmailUnverified, "EMAIL_UNVERIFIED"),
            (InventoryError::LimitExceeded { remaining: 1 }, "LIMIT_EXCEEDED"),
            (InventoryError::SoldOut { available: 2 }, "SOLD_OUT"),
            (InventoryError::SeatTaken("s1".into()), "SEAT_TAKEN"),
            (InventoryError::NoAdjacentSeats(3), "NO_ADJACENT_SEATS"),
            (InventoryError::Expired, "HOLD_EXPIRED"),
            (InventoryError::Ended("confirmed"), "HOLD_ENDED"),
        ];
        for (error, reason) in refusals {
            let message = error.to_string();
            let status = Status::from(error);
            assert_eq!(status.code(), Code::FailedPrecondition, "{reason}: never a rate limit");
            assert_eq!(refusal_reason(&status).as_deref(), Some(reason));
            assert_eq!(status.message(), message, "the message still says what is left");
        }
    }

    #[test]
    fn a_reused_idempotency_key_is_a_bad_idempotency_key_field() {
        let status = Status::from(InventoryError::IdempotencyMismatch);
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = tonic_types::StatusExt::get_details_bad_request(&status).expect("field violations");
        assert_eq!(bad.field_violations[0].field, "idempotency_key");
        assert_eq!(Status::from(InventoryError::StaleToken).code(), Code::Aborted, "other codes stay");
    }
}
