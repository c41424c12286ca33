//! Seat maps (sections → rows → seats, plus general-admission areas) and their validation
//! into an [`ImportPlan`]: the flat columns one bulk statement per table inserts.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{CatalogError, Violations, text};

/// Most seats one venue may have (the largest stadiums hold about 130,000).
pub const MAX_SEATS: usize = 150_000;
/// Most general-admission areas one venue may have.
pub const MAX_AREAS: usize = 100;
/// Largest capacity of one general-admission area.
pub const MAX_AREA_CAPACITY: u32 = 1_000_000;
const NAME_MAX: usize = 64;
const NUMBER_MAX: usize = 16;
const LABEL_MAX: usize = 200;

/// A venue's layout, in best-available order. Ids are `None` on import and set once stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeatMap {
    /// Seated sections.
    pub sections: Vec<Section>,
    /// Standing areas.
    pub areas: Vec<Area>,
}

/// A section, e.g. "Floor A".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Stable id.
    pub id: Option<Uuid>,
    /// Unique within the venue.
    pub name: String,
    /// Its rows.
    pub rows: Vec<Row>,
}

/// A row of a section, e.g. "12".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Stable id.
    pub id: Option<Uuid>,
    /// Unique within its section.
    pub name: String,
    /// Its seats; consecutive seats are adjacent.
    pub seats: Vec<Seat>,
}

/// One seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// Stable id: kept across imports while section name, row name and number are unchanged.
    pub id: Option<Uuid>,
    /// Unique within its row, e.g. "7".
    pub number: String,
    /// e.g. "Floor A, Row 12, Seat 7"; built from the names when empty on import.
    pub label: String,
    /// Wheelchair or otherwise accessible.
    pub accessible: bool,
}

/// A general-admission (standing) area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// Stable id: kept across imports while the name is unchanged.
    pub id: Option<Uuid>,
    /// Unique within the venue.
    pub name: String,
    /// How many people it holds.
    pub capacity: u32,
}

/// Where a seat is, as best-available selection needs it: seats sharing a row whose
/// positions differ by one are adjacent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatPlace {
    /// The seat.
    pub seat_id: Uuid,
    /// Its row.
    pub row_id: Uuid,
    /// Its position in the row, from 1.
    pub position: u32,
}

/// A validated seat map as columns (index = ordinal in seat-map order), ready for `UNNEST`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportPlan {
    /// Section names.
    pub section_names: Vec<String>,
    /// Each row's section (its ordinal).
    pub row_sections: Vec<i32>,
    /// Row names.
    pub row_names: Vec<String>,
    /// Each seat's row (its ordinal).
    pub seat_rows: Vec<i32>,
    /// Seat numbers.
    pub seat_numbers: Vec<String>,
    /// Seat labels.
    pub seat_labels: Vec<String>,
    /// Accessibility flags.
    pub seat_accessible: Vec<bool>,
    /// Each seat's position within its row, from 1.
    pub seat_positions: Vec<i32>,
    /// Area names.
    pub area_names: Vec<String>,
    /// Area capacities.
    pub area_capacities: Vec<i32>,
}

impl ImportPlan {
    /// Number of seats.
    pub fn seat_count(&self) -> usize {
        self.seat_numbers.len()
    }

    /// Sum of the areas' capacities.
    pub fn ga_capacity(&self) -> i64 {
        self.area_capacities.iter().map(|&c| i64::from(c)).sum()
    }
}

impl SeatMap {
    /// Number of seats.
    pub fn seat_count(&self) -> usize {
        self.sections.iter().flat_map(|s| &s.rows).map(|r| r.seats.len()).sum()
    }

    /// Validates the map (names present, bounded and unique among siblings, no empty sections
    /// or rows, bounded sizes) and flattens it, filling in missing labels.
    pub fn plan(&self) -> Result<ImportPlan, CatalogError> {
        let seats = self.seat_count();
        if seats > MAX_SEATS {
            return Err(CatalogError::invalid("seat_map", format!("has {seats} seats; at most {MAX_SEATS}")));
        }
        if self.areas.len() > MAX_AREAS {
            return Err(CatalogError::invalid("seat_map.general_admission_areas", format!("at most {MAX_AREAS}")));
        }
        let mut v = Violations::default();
        let mut plan = ImportPlan::default();
        let mut sections = Names::default();
        for (s, section) in self.sections.iter().enumerate() {
            let path = format!("seat_map.sections[{s}]");
            let name = sections.check(&mut v, &format!("{path}.name"), &section.name);
            if section.rows.is_empty() {
                v.add(format!("{path}.rows"), "must have at least one row");
            }
            let section_ordinal = ordinal(plan.section_names.len());
            plan.section_names.push(name.clone());
            let mut rows = Names::default();
            for (r, row) in section.rows.iter().enumerate() {
                let path = format!("{path}.rows[{r}]");
                let row_name = rows.check(&mut v, &format!("{path}.name"), &row.name);
                if row.seats.is_empty() {
                    v.add(format!("{path}.seats"), "must have at least one seat");
                }
                let row_ordinal = ordinal(plan.row_names.len());
                plan.row_sections.push(section_ordinal);
                plan.row_names.push(row_name.clone());
                let mut numbers: HashMap<&str, usize> = HashMap::with_capacity(row.seats.len());
                for (i, seat) in row.seats.iter().enumerate() {
                    let path = format!("{path}.seats[{i}]");
                    let number =
                        v.check(format!("{path}.number"), text::name(&seat.number, NUMBER_MAX)).unwrap_or_default();
                    if !number.is_empty()
                        && let Some(first) = numbers.insert(seat.number.trim(), i)
                    {
                        v.add(format!("{path}.number"), format!("repeats seats[{first}] of the row"));
                    }
                    let label =
                        v.check(format!("{path}.label"), text::line(&seat.label, LABEL_MAX)).unwrap_or_default();
                    let label = if label.is_empty() { format!("{name}, Row {row_name}, Seat {number}") } else { label };
                    plan.seat_rows.push(row_ordinal);
                    plan.seat_numbers.push(number);
                    plan.seat_labels.push(label);
                    plan.seat_accessible.push(seat.accessible);
                    plan.seat_positions.push(ordinal(i + 1));
                    if v.is_full() {
                        return Err(v.into_error());
                    }
                }
            }
        }
        let mut areas = Names::default();
        for (a, area) in self.areas.iter().enumerate() {
            let path = format!("seat_map.general_admission_areas[{a}]");
            let name = areas.check(&mut v, &format!("{path}.name"), &area.name);
            if !(1..=MAX_AREA_CAPACITY).contains(&area.capacity) {
                v.add(format!("{path}.capacity"), format!("must be between 1 and {MAX_AREA_CAPACITY}"));
            }
            plan.area_names.push(name);
            plan.area_capacities.push(ordinal(area.capacity as usize));
        }
        v.finish()?;
        Ok(plan)
    }
}

/// Sizes are bounded far below `i32::MAX` before anything is numbered.
fn ordinal(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Sibling names seen so far, to refuse duplicates.
#[derive(Default)]
struct Names(HashSet<String>);

impl Names {
    /// The valid name, or an empty one after recording why not.
    fn check(&mut self, v: &mut Violations, field: &str, raw: &str) -> String {
        let Some(name) = v.check(field, text::name(raw, NAME_MAX)) else { return String::new() };
        if !self.0.insert(name.clone()) {
            v.add(field, format!("{name:?} is used twice"));
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(number: &str) -> Seat {
        Seat { id: None, number: number.into(), label: String::new(), accessible: false }
    }

    fn row(name: &str, seats: &[&str]) -> Row {
        Row { id: None, name: name.into(), seats: seats.iter().map(|n| seat(n)).collect() }
    }

    fn section(name: &str, rows: Vec<Row>) -> Section {
        Section { id: None, name: name.into(), rows }
    }

    fn fields(error: CatalogError) -> Vec<String> {
        match error {
            CatalogError::Invalid(list) => list.into_iter().map(|v| v.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_map_flattens_in_order_with_labels_and_positions() {
        let mut map = SeatMap {
            sections: vec![
                section("Floor A", vec![row("1", &["1", "2"]), row("2", &["1"])]),
                section("Balcony", vec![row("1", &["10", "11"])]),
            ],
            areas: vec![Area { id: None, name: "Pit".into(), capacity: 300 }],
        };
        map.sections[1].rows[0].seats[1].label = "Balcony, best seat".into();
        map.sections[1].rows[0].seats[1].accessible = true;
        let plan = map.plan().unwrap();
        assert_eq!(plan.section_names, ["Floor A", "Balcony"]);
        assert_eq!(plan.row_sections, [0, 0, 1]);
        assert_eq!(plan.seat_rows, [0, 0, 1, 2, 2]);
        assert_eq!(plan.seat_positions, [1, 2, 1, 1, 2]);
        assert_eq!(plan.seat_labels[0], "Floor A, Row 1, Seat 1");
        assert_eq!(plan.seat_labels[4], "Balcony, best seat");
        assert_eq!(plan.seat_accessible, [false, false, false, false, true]);
        assert_eq!((plan.seat_count(), plan.ga_capacity()), (5, 300));
    }

    #[test]
    fn duplicates_and_blanks_are_reported_with_their_paths() {
        let map = SeatMap {
            sections: vec![section("A", vec![row("1", &["1", "1", " "]), row("1", &[])]), section(" A ", vec![])],
            areas: vec![Area { id: None, name: "A".into(), capacity: 0 }],
        };
        assert_eq!(
            fields(map.plan().unwrap_err()),
            [
                "seat_map.sections[0].rows[0].seats[1].number",
                "seat_map.sections[0].rows[0].seats[2].number",
                "seat_map.sections[0].rows[1].name",
                "seat_map.sections[0].rows[1].seats",
                "seat_map.sections[1].name",
                "seat_map.sections[1].rows",
                "seat_map.general_admission_areas[0].capacity",
            ]
        );
    }

    #[test]
    fn size_limits_are_enforced_before_any_work() {
        let numbers: Vec<String> = (0..=MAX_SEATS).map(|n| n.to_string()).collect();
        let big = Row { id: None, name: "1".into(), seats: numbers.iter().map(|n| seat(n)).collect() };
        let map = SeatMap { sections: vec![section("A", vec![big])], areas: vec![] };
        assert_eq!(fields(map.plan().unwrap_err()), ["seat_map"]);
        assert_eq!(SeatMap::default().plan().unwrap(), ImportPlan::default(), "an empty map clears the venue");
    }

    #[test]
    fn a_map_full_of_mistakes_reports_a_bounded_list() {
        let blanks = vec![""; 1_000];
        let map = SeatMap { sections: vec![section("A", vec![row("1", &blanks)])], areas: vec![] };
        assert_eq!(fields(map.plan().unwrap_err()).len(), Violations::LIMIT);
    }
}
