//! Asset amounts at the edge: decimal strings in the asset's own units ("1.5" BTC) outside,
//! integer base units (`Amount`) inside. Like prices and sizes, an amount with more decimal
//! places than the asset has is refused, never rounded.
//!
//! Plain string arithmetic rather than `Decimal`: a `u128` of base units has up to 39 digits,
//! more than `Decimal`'s 28.

use crate::domain::Amount;

/// The most decimal places an asset may have: enough for every EVM token in use (18) with
/// room, and small enough that `10^decimals` fits comfortably in a `u128`.
pub const MAX_DECIMALS: u8 = 30;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{value:?} is not a plain decimal number (digits with at most one '.')")]
    NotDecimal { value: String },
    #[error("{value} has more than {decimals} decimal places")]
    TooManyDecimals { value: String, decimals: u8 },
    #[error("{value} is too large")]
    TooLarge { value: String },
}

/// Parses a non-negative decimal with at most `decimals` places into base units.
pub fn parse_amount(value: &str, decimals: u8) -> Result<Amount, AmountError> {
    let shown = || value.chars().take(64).collect::<String>();
    let (whole, fraction) = match value.split_once('.') {
        Some((w, f)) => (w, f),
        None => (value, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(AmountError::NotDecimal { value: shown() });
    }
    // Trailing zeros past the asset's places are harmless ("1.50" of a 1-decimal asset).
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > decimals as usize {
        return Err(AmountError::TooManyDecimals { value: shown(), decimals });
    }
    let too_large = || AmountError::TooLarge { value: shown() };
    let mut units: u128 = 0;
    let padded = fraction.bytes().chain(std::iter::repeat(b'0')).take(decimals as usize);
    for b in whole.bytes().chain(padded) {
        units = units.checked_mul(10).and_then(|u| u.checked_add(u128::from(b - b'0'))).ok_or_else(too_large)?;
    }
    Ok(Amount(units))
}

/// Base units as a decimal in the asset's units, without trailing zeros ("1.5", "0", "42").
pub fn format_amount(amount: Amount, decimals: u8) -> String {
    let digits = amount.0.to_string();
    let places = decimals as usize;
    if places == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = places + 1);
    let (whole, fraction) = padded.split_at(padded.len() - places);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_both_ways_exactly() {
        assert_eq!(parse_amount("1.5", 6), Ok(Amount(1_500_000)));
        assert_eq!(parse_amount("0.000001", 6), Ok(Amount(1)));
        assert_eq!(parse_amount("42", 0), Ok(Amount(42)));
        assert_eq!(parse_amount(".5", 1), Ok(Amount(5)));
        assert_eq!(parse_amount("1.50", 1), Ok(Amount(15)));
        assert_eq!(format_amount(Amount(1_500_000), 6), "1.5");
        assert_eq!(format_amount(Amount(1), 6), "0.000001");
        assert_eq!(format_amount(Amount(0), 18), "0");
        assert_eq!(format_amount(Amount(u128::MAX), 0), u128::MAX.to_string());
        let big = format_amount(Amount(u128::MAX), 18);
        assert_eq!(parse_amount(&big, 18), Ok(Amount(u128::MAX)));
    }

    #[test]
    fn amounts_off_the_asset_grid_or_malformed_are_refused() {
        assert!(matches!(parse_amount("0.0000001", 6), Err(AmountError::TooManyDecimals { .. })));
        for bad in ["", ".", "-1", "1e3", "1.2.3", " 1", "0x10", "+1"] {
            assert!(matches!(parse_amount(bad, 6), Err(AmountError::NotDecimal { .. })), "{bad:?}");
        }
        assert!(matches!(parse_amount("1000000000000000000000000000000000", 6), Err(AmountError::TooLarge { .. })));
    }
}
