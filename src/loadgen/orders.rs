//! The WebSocket `place` requests a client will send, each an EIP-712 order signed by the
//! trader with a fresh nonce. They are built and signed before the run starts: signing costs
//! tens of microseconds of CPU, and spent during the run it would be measured as server
//! latency and take cores from the server under test.

use alloy::signers::local::PrivateKeySigner;
use rust_decimal::Decimal;
use serde_json::json;

use crate::api::wire::{WireSide, WireTif};
use crate::client::orders::{signed_place, LimitOrder};
use crate::loadgen::mix::{GenOrder, GenSide, OrderMix};
use crate::loadgen::schedule::Rng;
use crate::loadgen::setup::MarketTerms;
use crate::loadgen::LoadgenError;

/// The text of the `place` request with id `index` for `order`, signed by `key`; `nonce`
/// must be one the trader never used.
pub fn place_request(
    terms: &MarketTerms,
    key: &PrivateKeySigner,
    index: usize,
    order: GenOrder,
    nonce: u64,
) -> Result<String, LoadgenError> {
    let order = LimitOrder {
        side: if order.side == GenSide::Buy { WireSide::Buy } else { WireSide::Sell },
        price_ticks: order.price_ticks,
        qty_lots: order.qty_lots,
        tif: if order.ioc { WireTif::Ioc } else { WireTif::Gtc },
        nonce,
        client_order_id: None,
    };
    let request = json!({ "op": "place", "id": index, "order": signed_place(terms, key, &order)? });
    Ok(request.to_string())
}

/// `count` signed requests for one trader, ids 0.., nonces 1.., terms drawn from `mix`.
pub fn plan_requests(
    terms: &MarketTerms,
    key: &PrivateKeySigner,
    mix: &OrderMix,
    seed: u64,
    count: usize,
) -> Result<Vec<String>, LoadgenError> {
    let mut rng = Rng::new(seed);
    (0..count).map(|i| place_request(terms, key, i, mix.pick(&mut rng), i as u64 + 1)).collect()
}

/// The smallest size in lots that meets the market's minimum size and minimum notional at
/// `price_ticks`.
pub fn min_lots(terms: &MarketTerms, price_ticks: u64) -> Result<u64, LoadgenError> {
    let bad = || LoadgenError::Config(format!("{}: cannot size orders on its grid", terms.market));
    if terms.lot_size <= Decimal::ZERO || terms.tick_size <= Decimal::ZERO {
        return Err(bad());
    }
    let price = Decimal::from(price_ticks) * terms.tick_size;
    let by_qty = (terms.min_qty / terms.lot_size).ceil();
    let lot_value = price.checked_mul(terms.lot_size).filter(|v| *v > Decimal::ZERO).ok_or_else(bad)?;
    let by_notional = (terms.min_notional / lot_value).ceil();
    let lots = by_qty.max(by_notional).max(Decimal::ONE);
    u64::try_from(lots).map_err(|_| bad())
}

/// The mid price in ticks for a decimal `mid`, which must be on the market's grid.
pub fn mid_ticks(terms: &MarketTerms, mid: Decimal) -> Result<u64, LoadgenError> {
    let off_grid = || LoadgenError::Config(format!("--mid {mid} is not a positive price on {}'s grid", terms.market));
    if terms.tick_size <= Decimal::ZERO {
        return Err(off_grid());
    }
    let ticks = mid.checked_div(terms.tick_size).ok_or_else(off_grid)?;
    if ticks.fract() != Decimal::ZERO || ticks <= Decimal::ZERO {
        return Err(off_grid());
    }
    u64::try_from(ticks).map_err(|_| off_grid())
}
