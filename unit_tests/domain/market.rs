//! Unit tests of `src/domain/market.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

pub(crate) fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("BTC-USDT").unwrap(),
        base: AssetId::new("BTC").unwrap(),
        quote: AssetId::new("USDT").unwrap(),
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000_000),
        min_notional: Amount(0),
        maker_fee: Bps(10),
        taker_fee: Bps(20),
    }
}

#[test]
fn a_consistent_spec_validates() {
    assert_eq!(spec().validate(), Ok(()));
}

#[test]
fn inconsistent_specs_are_refused() {
    let mut s = spec();
    s.quote = s.base;
    assert_eq!(s.validate(), Err(SpecError::SameAsset));
    let mut s = spec();
    s.base_lot = Amount(0);
    assert_eq!(s.validate(), Err(SpecError::ZeroGrid));
    let mut s = spec();
    s.min_qty = QtyLots(0);
    assert_eq!(s.validate(), Err(SpecError::SizeBounds));
    let mut s = spec();
    s.taker_fee = Bps(10_001);
    assert_eq!(s.validate(), Err(SpecError::FeeTooHigh));
}

#[test]
fn fill_amounts_are_exact_integers() {
    let s = spec();
    assert_eq!(s.base_amount(QtyLots(3)), Some(Amount(3_000)));
    assert_eq!(s.notional(PriceTicks(10_050), QtyLots(3)), Some(Amount(301_500)));
    assert_eq!(s.notional(PriceTicks(u64::MAX), QtyLots(u64::MAX)), None);
}
