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
