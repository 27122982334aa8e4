//! A market's snapshot: its whole state in a wire form, and the state hash recorded with it.
//! Restoring a snapshot and then replaying the later events must give the live state bit for
//! bit; the hash lets the actor prove it on every start.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::payload::{side_from_wire, side_to_wire, stp_from_wire, stp_to_wire, user_from_wire, PayloadError};
use super::payload::{WireSide, WireStp};
use crate::domain::{
    Market, MarketSpec, MarketStatus, OrderId, PriceTicks, QtyLots, RestingOrder, Side, TimestampMs, TradeId,
};

pub const MARKET_SNAPSHOT_VERSION: u16 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WireMarketSnapshot {
    snapshot_version: u16,
    market: String,
    halted: bool,
    next_trade: u64,
    /// Bids then asks, each best first and in time priority within a level.
    orders: Vec<WireResting>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WireResting {
    id: u64,
    user: String,
    side: WireSide,
    price_ticks: u64,
    qty_lots: u64,
    expiry_ms: Option<u64>,
    post_only: bool,
    stp: WireStp,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot does not decode: {0}")]
    Json(#[from] serde_json::Error),
    #[error("snapshot version {0} is not known")]
    Version(u16),
    #[error("snapshot is of market {got}, expected {expected}")]
    WrongMarket { expected: String, got: String },
    #[error("snapshot payload: {0}")]
    Payload(#[from] PayloadError),
    #[error("snapshot does not restore: {0}")]
    Restore(String),
}

fn resting_orders(market: &Market) -> Vec<RestingOrder> {
    let mut orders = Vec::with_capacity(market.book().len());
    for side in [Side::Buy, Side::Sell] {
        market.book().walk::<()>(side, |o| {
            orders.push(o);
            ControlFlow::Continue(())
        });
    }
    orders
}

fn wire(market: &Market) -> WireMarketSnapshot {
    WireMarketSnapshot {
        snapshot_version: MARKET_SNAPSHOT_VERSION,
        market: market.spec().id.to_string(),
        halted: market.status() == MarketStatus::Halted,
        next_trade: market.next_trade_id().0,
        orders: resting_orders(market)
            .into_iter()
            .map(|o| WireResting {
                id: o.id.0,
                user: o.user.to_string(),
                side: side_to_wire(o.side),
                price_ticks: o.price.0,
                qty_lots: o.qty.0,
                expiry_ms: o.expiry.map(|t| t.0),
                post_only: o.post_only,
                stp: stp_to_wire(o.stp),
            })
            .collect(),
    }
}

/// The snapshot bytes of a market (canonical: the same state always gives the same bytes).
pub fn encode_market_snapshot(market: &Market) -> Vec<u8> {
    // Plain structs of integers, strings and bools always serialize.
    serde_json::to_vec(&wire(market)).unwrap_or_default()
}

/// SHA-256 of the snapshot bytes: equal states, equal hashes.
pub fn market_state_hash(market: &Market) -> [u8; 32] {
    Sha256::digest(encode_market_snapshot(market)).into()
}

/// Rebuilds a market of `spec` from snapshot bytes.
pub fn decode_market_snapshot(spec: MarketSpec, bytes: &[u8]) -> Result<Market, SnapshotError> {
    let w: WireMarketSnapshot = serde_json::from_slice(bytes)?;
    if w.snapshot_version != MARKET_SNAPSHOT_VERSION {
        return Err(SnapshotError::Version(w.snapshot_version));
    }
    if w.market != spec.id.as_str() {
        return Err(SnapshotError::WrongMarket { expected: spec.id.to_string(), got: w.market });
    }
    let mut orders = Vec::with_capacity(w.orders.len());
    for o in &w.orders {
        orders.push(RestingOrder {
            id: OrderId(o.id),
            user: user_from_wire("user", &o.user)?,
            side: side_from_wire(o.side),
            price: PriceTicks(o.price_ticks),
            qty: QtyLots(o.qty_lots),
            expiry: o.expiry_ms.map(TimestampMs),
            post_only: o.post_only,
            stp: stp_from_wire(o.stp),
        });
    }
    let status = if w.halted { MarketStatus::Halted } else { MarketStatus::Open };
    Market::restore(spec, status, TradeId(w.next_trade), orders).map_err(|e| SnapshotError::Restore(e.to_string()))
}
