//! Rules for free-text and identifier fields, shared by every input.
//!
//! Postgres refuses NUL in `text`, so letting one through would turn bad input
//! into a server error; control characters in names only ever mean garbage.

use uuid::Uuid;

/// A required single-line value: trimmed, 1..=`max` characters, no control characters.
pub fn name(raw: &str, max: usize) -> Result<String, String> {
    let value = line(raw, max)?;
    if value.is_empty() {
        return Err("is required".into());
    }
    Ok(value)
}

/// An optional single-line value: trimmed, at most `max` characters, no control characters.
pub fn line(raw: &str, max: usize) -> Result<String, String> {
    let value = raw.trim();
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    bounded(value, max)
}

/// Multi-line prose: trimmed, at most `max` characters; tabs and line breaks allowed.
pub fn paragraph(raw: &str, max: usize) -> Result<String, String> {
    let value = raw.trim();
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err("must not contain control characters other than tabs and line breaks".into());
    }
    bounded(value, max)
}

fn bounded(value: &str, max: usize) -> Result<String, String> {
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(value.to_owned())
}

/// A required id.
pub fn id(raw: &str) -> Result<Uuid, String> {
    if raw.trim().is_empty() {
        return Err("is required".into());
    }
    Uuid::parse_str(raw.trim()).map_err(|_| "must be a UUID".into())
}

/// An optional id: empty means none.
pub fn optional_id(raw: &str) -> Result<Option<Uuid>, String> {
    if raw.trim().is_empty() { Ok(None) } else { id(raw).map(Some) }
}

/// The shape of an IANA time zone name (`Europe/Berlin`, `America/Argentina/Buenos_Aires`, `UTC`).
/// Whether the zone exists is checked against the database's zone list by the service.
pub fn time_zone(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err("is required".into());
    }
    let well_formed = value.len() <= 64
        && value.split('/').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        });
    if !well_formed {
        return Err("must be an IANA time zone name like Europe/Berlin".into());
    }
    Ok(value.to_owned())
}

/// An ISO 3166-1 alpha-2 country code, upper-cased.
pub fn country_code(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.len() != 2 || !value.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err("must be an ISO 3166-1 alpha-2 code like DE".into());
    }
    Ok(value.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_required_bounded_and_clean() {
        assert_eq!(name("  Arena  ", 10).unwrap(), "Arena");
        assert!(name("   ", 10).is_err());
        assert!(name("abcdefghijk", 10).is_err());
        assert_eq!(name("äöüßéèêë", 8).unwrap(), "äöüßéèêë", "counts characters, not bytes");
        assert!(name("a\0b", 10).is_err());
        assert!(name("a\nb", 10).is_err());
        assert_eq!(line("", 10).unwrap(), "");
    }

    #[test]
    fn paragraphs_allow_line_breaks_but_not_nul() {
        assert_eq!(paragraph(" one\n\ttwo\r\n ", 100).unwrap(), "one\n\ttwo");
        assert!(paragraph("nul\0", 100).is_err());
        assert!(paragraph("bell\u{7}", 100).is_err());
    }

    #[test]
    fn ids_must_be_uuids() {
        let id = Uuid::new_v4();
        assert_eq!(super::id(&id.to_string()).unwrap(), id);
        assert_eq!(super::id("").unwrap_err(), "is required");
        assert_eq!(super::id("42").unwrap_err(), "must be a UUID");
        assert_eq!(optional_id(" ").unwrap(), None);
        assert!(optional_id("nope").is_err());
    }

    #[test]
    fn time_zones_must_look_like_iana_names() {
        for good in ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "America/Port-au-Prince"] {
            assert_eq!(time_zone(good).unwrap(), good);
        }
        for bad in ["", "Europe/", "/Berlin", "Europe//Berlin", "Europe/Ber lin", "../etc/passwd", "+05:00", "Europe\0"]
        {
            assert!(time_zone(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn country_codes_are_two_letters_upper_cased() {
        assert_eq!(country_code(" de ").unwrap(), "DE");
        for bad in ["", "D", "DEU", "D1", "ÄÖ"] {
            assert!(country_code(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
