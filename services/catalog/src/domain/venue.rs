//! Venues: where events happen, owned by an organizer.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CatalogError, Violations, text};

const NAME_MAX: usize = 200;
const ADDRESS_MAX: usize = 300;
const CITY_MAX: usize = 100;

/// A stored venue (its seat map is loaded separately, on request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venue {
    /// Stable id.
    pub id: Uuid,
    /// Owner.
    pub organizer_id: Uuid,
    /// Display name (never changes: events copy it for search).
    pub name: String,
    /// Street address.
    pub address: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country_code: String,
    /// IANA zone, the default of its events.
    pub time_zone: String,
    /// Seats in the seat map.
    pub seat_count: u32,
    /// Sum of the general-admission areas' capacities.
    pub ga_capacity: u32,
    /// Incremented by every seat-map import.
    pub seat_map_revision: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A CreateVenue request as received.
#[derive(Debug, Clone, Default)]
pub struct VenueInput {
    /// Admin only; empty means the caller.
    pub organizer_id: String,
    /// Display name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country_code: String,
    /// IANA zone.
    pub time_zone: String,
}

/// A validated CreateVenue request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVenue {
    /// The owner asked for, if any.
    pub organizer_id: Option<Uuid>,
    /// Display name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// City.
    pub city: String,
    /// Upper-cased country code.
    pub country_code: String,
    /// IANA zone (existence checked by the service).
    pub time_zone: String,
}

impl VenueInput {
    /// Checks every field, reporting all problems at once.
    pub fn validate(self) -> Result<NewVenue, CatalogError> {
        let mut v = Violations::default();
        let organizer_id = v.check("organizer_id", text::optional_id(&self.organizer_id));
        let name = v.check("name", text::name(&self.name, NAME_MAX));
        let address = v.check("address", text::line(&self.address, ADDRESS_MAX));
        let city = v.check("city", text::name(&self.city, CITY_MAX));
        let country_code = v.check("country_code", text::country_code(&self.country_code));
        let time_zone = v.check("time_zone", text::time_zone(&self.time_zone));
        match (organizer_id, name, address, city, country_code, time_zone) {
            (Some(organizer_id), Some(name), Some(address), Some(city), Some(country_code), Some(time_zone)) => {
                Ok(NewVenue { organizer_id, name, address, city, country_code, time_zone })
            }
            _ => Err(v.into_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venues_are_validated_and_normalized() {
        let input = VenueInput {
            name: " Olympiastadion ".into(),
            city: "Berlin".into(),
            country_code: "de".into(),
            time_zone: "Europe/Berlin".into(),
            ..VenueInput::default()
        };
        let venue = input.validate().unwrap();
        assert_eq!((venue.name.as_str(), venue.country_code.as_str()), ("Olympiastadion", "DE"));
        assert_eq!((venue.address.as_str(), venue.organizer_id), ("", None));

        let CatalogError::Invalid(list) = VenueInput::default().validate().unwrap_err() else { panic!() };
        let fields: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["name", "city", "country_code", "time_zone"]);
    }
}
