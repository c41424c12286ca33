//! Prices: an ISO 4217 currency code and integer minor units, never floats.

use std::fmt;

/// An ISO 4217 alphabetic currency code (`EUR`), upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// Validates `raw`: three ASCII letters, upper-cased. Whether ISO lists it is not checked.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim();
        if value.len() != 3 || !value.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err("must be an ISO 4217 code like EUR".into());
        }
        Ok(Self(value.to_ascii_uppercase()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-negative amount in a currency's minor units (cents for EUR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// The currency.
    pub currency: Currency,
    /// The amount in minor units.
    pub minor_units: i64,
}

impl Money {
    /// Largest price accepted: 10 billion minor units (100 million euros). Anything above is a
    /// typo, and the bound keeps order totals (`price × quantity`) far from overflowing an i64.
    pub const MAX_MINOR_UNITS: i64 = 10_000_000_000;

    /// Validates a price; errors come as `(field, description)` with fields relative to the price.
    pub fn parse(currency: &str, minor_units: i64) -> Result<Self, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let currency = Currency::parse(currency).map_err(|e| errors.push(("currency", e))).ok();
        if minor_units < 0 {
            errors.push(("minor_units", "must not be negative".into()));
        } else if minor_units > Self::MAX_MINOR_UNITS {
            errors.push(("minor_units", format!("must be at most {}", Self::MAX_MINOR_UNITS)));
        }
        match currency {
            Some(currency) if errors.is_empty() => Ok(Self { currency, minor_units }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_letters_upper_cased() {
        assert_eq!(Currency::parse(" eur ").unwrap().as_str(), "EUR");
        for bad in ["", "EU", "EURO", "E1R", "€"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prices_are_non_negative_bounded_integers() {
        let price = Money::parse("usd", 4_999).unwrap();
        assert_eq!((price.currency.as_str(), price.minor_units), ("USD", 4_999));
        assert_eq!(Money::parse("EUR", 0).unwrap().minor_units, 0, "free tickets are fine");
        assert_eq!(Money::parse("EUR", -1).unwrap_err(), vec![("minor_units", "must not be negative".into())]);
        assert!(Money::parse("EUR", Money::MAX_MINOR_UNITS + 1).is_err());
        let both = Money::parse("euro", -5).unwrap_err();
        assert_eq!(both.iter().map(|(f, _)| *f).collect::<Vec<_>>(), ["currency", "minor_units"]);
    }
}
