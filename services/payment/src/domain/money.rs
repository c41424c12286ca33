//! Amounts: an ISO 4217 currency code and integer minor units, never floats.

use std::fmt;

/// A positive amount in a currency's minor units (cents for EUR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// Three upper-case ASCII letters, e.g. `EUR`.
    pub currency: String,
    /// The amount in minor units.
    pub minor_units: i64,
}

impl Money {
    /// Largest amount accepted in one charge: 10 billion minor units.
    pub const MAX_MINOR_UNITS: i64 = 10_000_000_000;

    /// Validates an amount: a currency code and `1..=MAX_MINOR_UNITS` minor units.
    /// Errors come as `(field, description)` with fields relative to the amount.
    pub fn parse(currency: &str, minor_units: i64) -> Result<Self, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let currency = currency.trim();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            errors.push(("currency", "must be an ISO 4217 code like EUR".to_owned()));
        }
        if !(1..=Self::MAX_MINOR_UNITS).contains(&minor_units) {
            errors.push(("minor_units", format!("must be between 1 and {}", Self::MAX_MINOR_UNITS)));
        }
        if errors.is_empty() { Ok(Self { currency: currency.to_ascii_uppercase(), minor_units }) } else { Err(errors) }
    }

    /// The same currency with another amount.
    pub fn with_minor_units(&self, minor_units: i64) -> Self {
        Self { currency: self.currency.clone(), minor_units }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.minor_units, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_positive_and_codes_upper_cased() {
        assert_eq!(Money::parse("eur", 500).unwrap(), Money { currency: "EUR".into(), minor_units: 500 });
        let errors = Money::parse("EURO", 0).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), ["currency", "minor_units"]);
        assert!(Money::parse("EUR", Money::MAX_MINOR_UNITS + 1).is_err());
    }
}
