//! The BTC-USDT market the engine-level tests trade on (1,000 base units a lot, 10 quote units
//! a tick, maker 10 bps, taker 20 bps), numbered users, and a GTC limit order to place on it.
//!
//! Test code unwraps: a failure should fail the test.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use hob::domain::{
    Amount, AssetId, Bps, MarketId, MarketSpec, OrderType, PriceTicks, QtyLots, Side, StpMode, TimeInForce, UserId,
};
use hob::engine::PlaceOrder;

pub fn asset(s: &str) -> AssetId {
    AssetId::new(s).unwrap()
}

pub fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("BTC-USDT").unwrap(),
        base: asset("BTC"),
        quote: asset("USDT"),
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000_000),
        min_notional: Amount(0),
        maker_fee: Bps(10),
        taker_fee: Bps(20),
    }
}

pub fn user(n: u8) -> UserId {
    UserId([n; 20])
}

/// A good-till-cancelled limit order on BTC-USDT, unsigned (the engine's callers authenticate).
pub fn limit(side: Side, price: u64, qty: u64, nonce: u64) -> PlaceOrder {
    PlaceOrder {
        market: spec().id,
        side,
        order_type: OrderType::Limit { price: PriceTicks(price) },
        qty: QtyLots(qty),
        tif: TimeInForce::Gtc,
        post_only: false,
        stp: StpMode::ExpireMaker,
        client_order_id: None,
        nonce,
        auth: None,
    }
}
