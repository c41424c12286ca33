//! Ticket categories of DRAFT events.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::PgConnection;
use ticketing_platform::audit::{self, Target};
use uuid::Uuid;

use super::events::lock_event;
use super::{Catalog, Result, commit, parse_id};
use crate::adapters::{categories, events, seat_maps};
use crate::domain::access::Caller;
use crate::domain::category::{self, Allocation, Category, CategoryFields, CategoryInput};
use crate::domain::event::{Action, Event};
use crate::domain::{CatalogError, Violations};

impl Catalog {
    /// Adds a category to a DRAFT event.
    pub async fn create_category(&self, caller: &Caller, event_id: &str, input: CategoryInput) -> Result<Category> {
        caller.manager()?;
        let event_id = parse_id("event_id", event_id)?;
        let new = input.validate_new()?;
        let mut tx = self.begin().await?;
        let event = lock_event(&mut tx, caller, event_id).await?;
        event.status.apply(Action::EditCategories)?;
        check(&mut tx, &event, None, &new.fields, Some(&new.allocation)).await?;
        let id = categories::insert(&mut tx, event_id, &new.fields, &new.allocation).await?;
        if let Allocation::Seats(seats) = &new.allocation {
            assign(&mut tx, event_id, id, seats).await?;
        }
        let category = finish(&mut tx, event_id, id).await?;
        let target = Target::new("category", id);
        self.audit(&mut tx, caller, "category.created", target, None, category_state(&category)).await?;
        commit(tx).await?;
        tracing::info!(%event_id, category_id = %id, "category created");
        Ok(category)
    }

    /// Changes a category of a DRAFT event; a new allocation replaces the old one whole.
    pub async fn update_category(&self, caller: &Caller, id: &str, input: CategoryInput) -> Result<Category> {
        caller.manager()?;
        let id = parse_id("category_id", id)?;
        let change = input.validate_change()?;
        let mut tx = self.begin().await?;
        let (event, current) = self.lock_category(&mut tx, caller, id).await?;
        let fields = change.apply_to(&current);
        check(&mut tx, &event, Some(id), &fields, change.allocation.as_ref()).await?;
        categories::update(&mut tx, id, &fields, change.allocation.as_ref()).await?;
        if let Some(allocation) = &change.allocation {
            categories::clear_seats(&mut tx, id).await?;
            if let Allocation::Seats(seats) = allocation {
                assign(&mut tx, event.id, id, seats).await?;
            }
        }
        let category = finish(&mut tx, event.id, id).await?;
        let (before, after) = (category_state(&current), category_state(&category));
        // A new seat list of the same size changes which seats the category sells, though not
        // the state the log keeps.
        if before != after || matches!(change.allocation, Some(Allocation::Seats(_))) {
            self.audit(&mut tx, caller, "category.updated", Target::new("category", id), Some(before), after).await?;
        }
        commit(tx).await?;
        Ok(category)
    }

    /// Removes a category (and frees its seats) from a DRAFT event.
    pub async fn delete_category(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.manager()?;
        let id = parse_id("category_id", id)?;
        let mut tx = self.begin().await?;
        let (event, current) = self.lock_category(&mut tx, caller, id).await?;
        categories::delete(&mut tx, id).await?;
        events::touch(&mut tx, event.id).await?;
        let after = json!({"event_id": event.id, "deleted": true});
        let target = Target::new("category", id);
        self.audit(&mut tx, caller, "category.deleted", target, Some(category_state(&current)), after).await?;
        commit(tx).await?;
        tracing::info!(event_id = %event.id, category_id = %id, "category deleted");
        Ok(())
    }

    /// Locks the category's event for a change by `caller`. A category of a draft the caller
    /// may not see is as unknown as the draft.
    async fn lock_category(&self, tx: &mut PgConnection, caller: &Caller, id: Uuid) -> Result<(Event, Category)> {
        let unknown = || CatalogError::not_found("category", id);
        let event_id = categories::event_of(&mut *tx, id).await?.ok_or_else(unknown)?;
        let event = lock_event(tx, caller, event_id).await.map_err(|e| match e {
            CatalogError::NotFound { .. } => unknown(),
            other => other,
        })?;
        event.status.apply(Action::EditCategories)?;
        // Deleted between the lookup and the lock.
        let current = event.categories.iter().find(|c| c.id == id).cloned().ok_or_else(unknown)?;
        Ok((event, current))
    }
}

/// The rules a category must keep with its siblings and venue: a unique name, the event's
/// currency, an area of the venue with room left, and seats of the venue.
async fn check(
    tx: &mut PgConnection,
    event: &Event,
    id: Option<Uuid>,
    fields: &CategoryFields,
    allocation: Option<&Allocation>,
) -> Result<()> {
    let others: Vec<&Category> = event.categories.iter().filter(|c| Some(c.id) != id).collect();
    if others.iter().any(|c| c.name == fields.name) {
        return Err(CatalogError::NameTaken { kind: "category", name: fields.name.clone() });
    }
    category::check_currency(others.iter().copied(), &fields.price)?;
    match allocation {
        Some(Allocation::GeneralAdmission { capacity, area_id: Some(area_id) }) => {
            let venue_id = event.details.venue_id;
            let Some(area_capacity) = seat_maps::area_capacity(&mut *tx, venue_id, *area_id).await? else {
                return Err(CatalogError::invalid("general_admission.area_id", "is not an area of the event's venue"));
            };
            let sold = categories::sold_on_area(&mut *tx, event.id, *area_id, id).await?;
            let left = i64::from(area_capacity) - sold;
            if i64::from(*capacity) > left {
                return Err(CatalogError::invalid(
                    "general_admission.capacity",
                    format!("exceeds the {left} places the area has left (of {area_capacity})"),
                ));
            }
        }
        Some(Allocation::Seats(seats)) => {
            let foreign = seat_maps::foreign_seats(&mut *tx, event.details.venue_id, seats).await?;
            if !foreign.is_empty() {
                let index: HashMap<&Uuid, usize> = seats.iter().enumerate().map(|(i, s)| (s, i)).collect();
                let mut v = Violations::default();
                for seat in &foreign {
                    let i = index.get(seat).copied().unwrap_or_default();
                    v.add(format!("seats.seat_ids[{i}]"), "is not a seat of the event's venue");
                }
                return Err(v.into_error());
            }
        }
        Some(Allocation::GeneralAdmission { area_id: None, .. }) | None => {}
    }
    Ok(())
}

/// What the audit log keeps of a category: its event, name, description, price and how many
/// tickets it sells of what kind (not which seats).
fn category_state(category: &Category) -> Value {
    let (allocation, area_id) = match category.allocation {
        Allocation::GeneralAdmission { area_id, .. } => ("general_admission", area_id),
        Allocation::Seats(_) => ("seats", None),
    };
    json!({
        "event_id": category.event_id,
        "name": category.name,
        "description": category.description,
        "price": audit::money(&category.price),
        "allocation": allocation,
        "capacity": category.capacity,
        "area_id": area_id,
    })
}

async fn assign(tx: &mut PgConnection, event_id: Uuid, category_id: Uuid, seats: &[Uuid]) -> Result<()> {
    match categories::add_seats(tx, event_id, category_id, seats).await? {
        Some((seat_id, holder)) => Err(CatalogError::SeatTaken { seat_id, category_id: holder }),
        None => Ok(()),
    }
}

/// Bumps the event's version and returns the category as stored.
async fn finish(tx: &mut PgConnection, event_id: Uuid, id: Uuid) -> Result<Category> {
    events::touch(&mut *tx, event_id).await?;
    let stored = categories::of_events(&mut *tx, &[event_id]).await?;
    Ok(stored.into_iter().find(|c| c.id == id).ok_or_else(|| anyhow::anyhow!("category {id} vanished"))?)
}
