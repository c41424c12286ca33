//! Currencies: how many minor-unit digits each has (ISO 4217), for showing and summing
//! amounts kept as integer minor units.

/// The ISO 4217 exponent of `currency`: 0 for e.g. JPY, 3 for e.g. KWD, 2 for most.
pub fn minor_unit_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}
