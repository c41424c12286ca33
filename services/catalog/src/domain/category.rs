//! Ticket categories: a price plus either a general-admission capacity or a set of seats.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ticketing_kernel::money::Money;
use uuid::Uuid;

use super::{CatalogError, Violations, text};

/// Largest general-admission capacity of one category.
pub const MAX_GA_CAPACITY: u32 = 1_000_000;
const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 2_000;

/// A stored category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// Stable id.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// Unique within the event.
    pub name: String,
    /// Free text.
    pub description: String,
    /// One ticket's price.
    pub price: Money,
    /// Tickets: the GA capacity or the number of seats.
    pub capacity: u32,
    /// What the tickets are for.
    pub allocation: Allocation,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What a category's tickets admit to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// Unseated: this many tickets, optionally for one of the venue's areas.
    GeneralAdmission {
        /// Number of tickets.
        capacity: u32,
        /// The venue's area, if any.
        area_id: Option<Uuid>,
    },
    /// These seats of the venue, in seat-map order (left empty when not asked for).
    Seats(Vec<Uuid>),
}

/// An allocation as received.
#[derive(Debug, Clone)]
pub enum AllocationInput {
    /// General admission.
    GeneralAdmission {
        /// Number of tickets.
        capacity: u32,
        /// Empty means no area.
        area_id: String,
    },
    /// Seat ids.
    Seats(Vec<String>),
}

/// A price as received.
#[derive(Debug, Clone)]
pub struct PriceInput {
    /// ISO 4217 code.
    pub currency: String,
    /// Minor units.
    pub minor_units: i64,
}

/// A CreateCategory or UpdateCategory request; absent fields are required on creation and
/// left alone on update.
#[derive(Debug, Clone, Default)]
pub struct CategoryInput {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Price.
    pub price: Option<PriceInput>,
    /// Allocation (replaces the whole allocation on update).
    pub allocation: Option<AllocationInput>,
}

/// The scalar fields of a category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryFields {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Price.
    pub price: Money,
}

/// A validated CreateCategory request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCategory {
    /// Name, description, price.
    pub fields: CategoryFields,
    /// What it sells.
    pub allocation: Allocation,
}

/// A validated UpdateCategory request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryChange {
    name: Option<String>,
    description: Option<String>,
    price: Option<Money>,
    /// The new allocation, if it changes.
    pub allocation: Option<Allocation>,
}

impl CategoryInput {
    /// Validates a new category: name, price and allocation are required.
    pub fn validate_new(self) -> Result<NewCategory, CatalogError> {
        let mut v = Violations::default();
        if self.price.is_none() {
            v.add("price", "is required");
        }
        if self.allocation.is_none() {
            v.add("allocation", "general_admission or seats is required");
        }
        // An absent name is an empty one, which the name rule refuses.
        let change = CategoryInput { name: Some(self.name.clone().unwrap_or_default()), ..self }.validate(&mut v);
        match (change.name, change.price, change.allocation) {
            (Some(name), Some(price), Some(allocation)) if v.is_empty() => Ok(NewCategory {
                fields: CategoryFields { name, description: change.description.unwrap_or_default(), price },
                allocation,
            }),
            _ => Err(v.into_error()),
        }
    }

    /// Validates an update.
    pub fn validate_change(self) -> Result<CategoryChange, CatalogError> {
        let mut v = Violations::default();
        let change = self.validate(&mut v);
        v.finish()?;
        Ok(change)
    }

    fn validate(self, v: &mut Violations) -> CategoryChange {
        CategoryChange {
            name: self.name.and_then(|raw| v.check("name", text::name(&raw, NAME_MAX))),
            description: self
                .description
                .and_then(|raw| v.check("description", text::paragraph(&raw, DESCRIPTION_MAX))),
            price: self.price.and_then(|p| {
                Money::parse(&p.currency, p.minor_units)
                    .map_err(|errors| errors.into_iter().for_each(|(f, e)| v.add(format!("price.{f}"), e)))
                    .ok()
            }),
            allocation: self.allocation.and_then(|a| allocation(a, v)),
        }
    }
}

fn allocation(input: AllocationInput, v: &mut Violations) -> Option<Allocation> {
    match input {
        AllocationInput::GeneralAdmission { capacity, area_id } => {
            if !(1..=MAX_GA_CAPACITY).contains(&capacity) {
                v.add("general_admission.capacity", format!("must be between 1 and {MAX_GA_CAPACITY}"));
            }
            let area_id = v.check("general_admission.area_id", text::optional_id(&area_id))?;
            (1..=MAX_GA_CAPACITY).contains(&capacity).then_some(Allocation::GeneralAdmission { capacity, area_id })
        }
        AllocationInput::Seats(raw) => {
            if raw.is_empty() {
                v.add("seats.seat_ids", "must list at least one seat");
                return None;
            }
            let mut ids = Vec::with_capacity(raw.len());
            let mut first_index: HashMap<Uuid, usize> = HashMap::with_capacity(raw.len());
            for (i, raw) in raw.iter().enumerate() {
                let field = || format!("seats.seat_ids[{i}]");
                match text::id(raw) {
                    Ok(id) => match first_index.insert(id, i) {
                        Some(first) => v.add(field(), format!("repeats seats.seat_ids[{first}]")),
                        None => ids.push(id),
                    },
                    Err(e) => v.add(field(), e),
                }
                if v.is_full() {
                    break;
                }
            }
            (ids.len() == raw.len()).then_some(Allocation::Seats(ids))
        }
    }
}

impl CategoryChange {
    /// `current`'s fields with this change applied.
    pub fn apply_to(&self, current: &Category) -> CategoryFields {
        CategoryFields {
            name: self.name.clone().unwrap_or_else(|| current.name.clone()),
            description: self.description.clone().unwrap_or_else(|| current.description.clone()),
            price: self.price.unwrap_or(current.price),
        }
    }
}

/// All categories of an event share one currency: `price` must match the `others`.
pub fn check_currency<'a>(others: impl IntoIterator<Item = &'a Category>, price: &Money) -> Result<(), CatalogError> {
    match others.into_iter().find(|c| c.price.currency != price.currency) {
        Some(other) => Err(CatalogError::invalid(
            "price.currency",
            format!("must be {} like the event's other categories", other.price.currency),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(currency: &str, minor_units: i64) -> Option<PriceInput> {
        Some(PriceInput { currency: currency.into(), minor_units })
    }

    fn fields(error: CatalogError) -> Vec<String> {
        match error {
            CatalogError::Invalid(list) => list.into_iter().map(|v| v.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_new_category_needs_name_price_and_allocation() {
        let error = CategoryInput::default().validate_new().unwrap_err();
        assert_eq!(fields(error), ["price", "allocation", "name"]);
        let ok = CategoryInput {
            name: Some(" Floor ".into()),
            price: price("EUR", 8_950),
            allocation: Some(AllocationInput::GeneralAdmission { capacity: 500, area_id: String::new() }),
            ..CategoryInput::default()
        }
        .validate_new()
        .unwrap();
        assert_eq!(ok.fields.name, "Floor");
        assert_eq!(ok.fields.price.currency.as_str(), "EUR");
        assert_eq!(ok.allocation, Allocation::GeneralAdmission { capacity: 500, area_id: None });
    }

    #[test]
    fn allocations_are_checked_field_by_field() {
        let bad_ga = CategoryInput {
            name: Some("GA".into()),
            price: price("EUR", -1),
            allocation: Some(AllocationInput::GeneralAdmission { capacity: 0, area_id: "area".into() }),
            ..CategoryInput::default()
        };
        assert_eq!(
            fields(bad_ga.validate_new().unwrap_err()),
            ["price.minor_units", "general_admission.capacity", "general_admission.area_id"]
        );
        let seat = Uuid::new_v4().to_string();
        let bad_seats = CategoryInput {
            allocation: Some(AllocationInput::Seats(vec![seat.clone(), "x".into(), seat])),
            ..CategoryInput::default()
        };
        assert_eq!(fields(bad_seats.validate_change().unwrap_err()), ["seats.seat_ids[1]", "seats.seat_ids[2]"]);
        let none = CategoryInput { allocation: Some(AllocationInput::Seats(vec![])), ..CategoryInput::default() };
        assert_eq!(fields(none.validate_change().unwrap_err()), ["seats.seat_ids"]);
    }

    #[test]
    fn a_change_touches_only_what_it_names() {
        let change = CategoryInput { description: Some("Front rows".into()), ..CategoryInput::default() }
            .validate_change()
            .unwrap();
        let current = Category {
            id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            name: "Tier 1".into(),
            description: String::new(),
            price: Money::parse("EUR", 100).unwrap(),
            capacity: 1,
            allocation: Allocation::Seats(vec![]),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let next = change.apply_to(&current);
        assert_eq!((next.name.as_str(), next.description.as_str()), ("Tier 1", "Front rows"));
        assert_eq!(change.allocation, None);

        assert!(check_currency([&current], &Money::parse("EUR", 5).unwrap()).is_ok());
        let error = check_currency([&current], &Money::parse("USD", 5).unwrap()).unwrap_err();
        assert_eq!(error.to_string(), "invalid request: price.currency: must be EUR like the event's other categories");
    }
}
