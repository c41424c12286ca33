//! Money: an ISO 4217 currency code and integer minor units, never floats.
//!
//! A currency is three upper-case ASCII letters, exactly as ISO 4217 writes it: the
//! gateway's API, catalog's prices and payment's charges all take that one form (whether
//! ISO lists the code is not checked). Amounts are bounded so that a total of many tickets
//! stays far from overflowing an `i64`.

use std::fmt;

/// What a valid currency is, for error messages.
pub const CURRENCY_RULE: &str = "must be an ISO 4217 code such as EUR";

/// A refused part of an amount: its field relative to the amount (`currency` or
/// `minor_units`) and the rule it breaks.
pub type Violation = (&'static str, String);

/// An ISO 4217 alphabetic currency code (`EUR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// `raw` as a currency: three upper-case ASCII letters, or [`CURRENCY_RULE`].
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match <[u8; 3]>::try_from(raw.as_bytes()) {
            Ok(code) if code.iter().all(u8::is_ascii_uppercase) => Ok(Self(code)),
            _ => Err(CURRENCY_RULE),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        // Three ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// How many digits its minor unit has (ISO 4217): 0 for JPY, 3 for KWD, 2 for most.
    pub fn minor_unit_digits(self) -> u32 {
        minor_unit_digits(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ISO 4217 exponent of `currency`: 0 for e.g. JPY, 3 for e.g. KWD, 2 for most (and for
/// a code this table does not know).
pub fn minor_unit_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// An amount in a currency's minor units (cents for EUR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// The currency.
    pub currency: Currency,
    /// The amount in minor units.
    pub minor_units: i64,
}

impl Money {
    /// Largest amount accepted: 10 billion minor units (100 million euros). Anything above
    /// is a typo, and the bound keeps totals (`price × quantity`) far from overflowing.
    pub const MAX_MINOR_UNITS: i64 = 10_000_000_000;

    /// A price: `0..=MAX_MINOR_UNITS` minor units (free tickets are fine).
    pub fn parse(currency: &str, minor_units: i64) -> Result<Self, Vec<Violation>> {
        Self::parse_from(0, currency, minor_units)
    }

    /// A sum to move (a charge, a refund): `1..=MAX_MINOR_UNITS` minor units.
    pub fn parse_positive(currency: &str, minor_units: i64) -> Result<Self, Vec<Violation>> {
        Self::parse_from(1, currency, minor_units)
    }

    fn parse_from(least: i64, currency: &str, minor_units: i64) -> Result<Self, Vec<Violation>> {
        let mut errors = Vec::new();
        let currency = Currency::parse(currency).map_err(|rule| errors.push(("currency", rule.to_owned()))).ok();
        if !(least..=Self::MAX_MINOR_UNITS).contains(&minor_units) {
            errors.push(("minor_units", format!("must be between {least} and {}", Self::MAX_MINOR_UNITS)));
        }
        match currency {
            Some(currency) if errors.is_empty() => Ok(Self { currency, minor_units }),
            _ => Err(errors),
        }
    }

    /// The same currency with another amount.
    pub fn with_minor_units(self, minor_units: i64) -> Self {
        Self { minor_units, ..self }
    }
}

impl fmt::Display for Money {
    /// `EUR 50.00`: the code and the amount with the currency's minor digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.currency.as_str(), self.minor_units))
    }
}

/// `"EUR 50.00"`: `currency` and `minor_units` with the currency's minor digits, for amounts
/// read from elsewhere that are shown, not checked.
pub fn format(currency: &str, minor_units: i64) -> String {
    format!("{currency} {}", decimal(currency, minor_units))
}

/// `"50.00"`: `minor_units` as a decimal number with `currency`'s minor digits, for exports
/// that put the currency in a column of its own.
pub fn decimal(currency: &str, minor_units: i64) -> String {
    let digits = minor_unit_digits(currency);
    let sign = if minor_units < 0 { "-" } else { "" };
    let units = minor_units.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{units}");
    }
    let scale = 10u64.pow(digits);
    format!("{sign}{}.{:0width$}", units / scale, units % scale, width = digits as usize)
}

/// `minor_units` of `currency` in its major unit, for metrics (never for sums).
pub fn major_units(currency: &str, minor_units: i64) -> f64 {
    minor_units as f64 / 10f64.powi(minor_unit_digits(currency) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_upper_case_letters_exactly() {
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["", "EU", "EURO", "eur", "Eur", " EUR", "E1R", "€", "ÉUR"] {
            assert_eq!(Currency::parse(bad), Err(CURRENCY_RULE), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prices_may_be_free_and_sums_to_move_may_not() {
        assert_eq!(Money::parse("EUR", 0).unwrap().minor_units, 0);
        assert_eq!(
            Money::parse_positive("EUR", 0).unwrap_err(),
            [("minor_units", "must be between 1 and 10000000000".to_owned())]
        );
        for amount in [-1, Money::MAX_MINOR_UNITS + 1, i64::MIN, i64::MAX] {
            assert!(Money::parse("EUR", amount).is_err(), "{amount} was accepted");
        }
        assert_eq!(Money::parse("USD", 4_999).unwrap().to_string(), "USD 49.99");
        let both = Money::parse("euro", -5).unwrap_err();
        assert_eq!(both.iter().map(|(f, _)| *f).collect::<Vec<_>>(), ["currency", "minor_units"]);
    }

    #[test]
    fn minor_units_follow_the_currency() {
        assert_eq!(format("EUR", 5000), "EUR 50.00");
        assert_eq!(format("USD", 7), "USD 0.07");
        assert_eq!(format("JPY", 1500), "JPY 1500");
        assert_eq!(format("KWD", 12345), "KWD 12.345");
        assert_eq!(format("EUR", -250), "EUR -2.50");
        assert_eq!(major_units("EUR", 1250), 12.5);
        assert_eq!(major_units("JPY", 1250), 1250.0);
        assert_eq!(major_units("KWD", 1250), 1.25);
    }
}
