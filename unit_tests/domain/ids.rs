//! Unit tests of `src/domain/ids.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

#[test]
fn symbols_are_checked() {
    assert_eq!(AssetId::new("USDT").unwrap().as_str(), "USDT");
    assert!(AssetId::new("").is_err());
    assert!(AssetId::new("a b").is_err());
    assert!(AssetId::new("ABCDEFGHIJKLMNOPQ").is_err());
    assert_eq!(MarketId::new("BTC-USDT").unwrap().to_string(), "BTC-USDT");
}

#[test]
fn user_addresses_round_trip() {
    let s = "0x00000000000000000000000000000000000000ab";
    assert_eq!(UserId::from_hex(s).unwrap().to_string(), s);
    assert!(UserId::from_hex("0x12").is_err());
    assert!(UserId::from_hex("00000000000000000000000000000000000000ab").is_err());
    assert!(UserId::from_hex("0xzz000000000000000000000000000000000000ab").is_err());
}

#[test]
fn user_addresses_read_any_case_and_print_lower_case() {
    let upper = "0xABCDEF0123456789ABCDEF0123456789ABCDEF01";
    assert_eq!(UserId::from_hex(upper).unwrap().to_string(), upper.to_lowercase());
    assert_eq!(UserId::from_hex("0X00000000000000000000000000000000000000fF").unwrap().0[19], 0xff);
}

#[test]
fn a_user_address_with_multi_byte_characters_is_an_error_not_a_panic() {
    // 40 bytes after `0x`, but "a" then 2-byte characters: pairs that split a character.
    let s = format!("0xa{}b", "é".repeat(19));
    assert_eq!(s.len(), 42);
    assert!(UserId::from_hex(&s).is_err());
    assert!(UserId::from_hex(&format!("0x{}", "é".repeat(20))).is_err());
}
