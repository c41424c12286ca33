//! Money as emails print it.

/// `"EUR 50.00"`: the ISO 4217 code and the amount with the currency's minor digits.
pub fn format(currency: &str, minor_units: i64) -> String {
    let digits = ticketing_platform::money::minor_unit_digits(currency);
    let sign = if minor_units < 0 { "-" } else { "" };
    let units = minor_units.unsigned_abs();
    if digits == 0 {
        return format!("{currency} {sign}{units}");
    }
    let scale = 10u64.pow(digits);
    format!("{currency} {sign}{}.{:0width$}", units / scale, units % scale, width = digits as usize)
}

#[cfg(test)]
mod tests {
    #[test]
    fn minor_units_follow_the_currency() {
        assert_eq!(super::format("EUR", 5000), "EUR 50.00");
        assert_eq!(super::format("USD", 7), "USD 0.07");
        assert_eq!(super::format("JPY", 1500), "JPY 1500");
        assert_eq!(super::format("KWD", 12345), "KWD 12.345");
        assert_eq!(super::format("EUR", -250), "EUR -2.50");
    }
}
