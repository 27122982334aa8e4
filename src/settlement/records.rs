//! Queue records in and out of settlement, in their wire form (a queued record is a
//! compatibility promise, like a stored event):
//!
//! - in, on the settlement queue, from a market: `{"market", "trade": WireTraded,
//!   "maker_auth", "taker_auth"}` (see `MarketActor::outbox`);
//! - out, on the user queue, to a party: `{"settlement": {"op": "confirm", "asset",
//!   "amount"}}` (settling funds became final) or `{"settlement": {"op": "void", "market",
//!   "order_id", "trade": WireTraded}}` (the trade will never settle). The user consumer tells
//!   them from a market outcome by the `settlement` key.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::trades::QueuedTrade;
use crate::domain::{Amount, AssetId, MarketId, OrderAuth, OrderId, Trade};
use crate::events::payload::{PayloadError, WireTraded};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("settlement record: {0}")]
    Shape(String),
    #[error("settlement record: {0}")]
    Payload(String),
}

impl From<PayloadError> for RecordError {
    fn from(e: PayloadError) -> RecordError {
        RecordError::Payload(e.to_string())
    }
}

#[derive(Serialize, Deserialize)]
struct WireTradeRecord {
    market: String,
    trade: WireTraded,
    maker_auth: Option<String>,
    taker_auth: Option<String>,
}

/// The trade a settlement-queue record carries.
pub fn decode_trade_record(body: &Value) -> Result<QueuedTrade, RecordError> {
    let wire = WireTradeRecord::deserialize(body).map_err(|e| RecordError::Shape(e.to_string()))?;
    Ok(QueuedTrade {
        market: MarketId::new(&wire.market).map_err(|e| RecordError::Shape(e.to_string()))?,
        trade: Trade::try_from(&wire.trade)?,
        maker_auth: wire.maker_auth.map(OrderAuth::new),
        taker_auth: wire.taker_auth.map(OrderAuth::new),
    })
}

/// The record a market writes for a trade (here for tests and tools; the market builds its
/// own with the same fields).
pub fn encode_trade_record(trade: &QueuedTrade) -> Value {
    json!({
        "market": trade.market.to_string(),
        "trade": WireTraded::from(&trade.trade),
        "maker_auth": trade.maker_auth.as_ref().map(|a| a.as_str()),
        "taker_auth": trade.taker_auth.as_ref().map(|a| a.as_str()),
    })
}

/// What settlement tells a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSettlement {
    /// `amount` of `asset` in settling is final: it becomes available.
    Confirm { asset: AssetId, amount: Amount },
    /// The trade of the user's `order` will never settle.
    Void { market: MarketId, order: OrderId, trade: Trade },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum WireUserSettlement {
    Confirm { asset: String, amount: String },
    Void { market: String, order_id: u64, trade: WireTraded },
}

pub fn encode_user_record(record: &UserSettlement) -> Value {
    let wire = match record {
        UserSettlement::Confirm { asset, amount } => {
            WireUserSettlement::Confirm { asset: asset.to_string(), amount: amount.0.to_string() }
        }
        UserSettlement::Void { market, order, trade } => {
            WireUserSettlement::Void { market: market.to_string(), order_id: order.0, trade: trade.into() }
        }
    };
    // A tagged enum of strings and integers always serializes.
    json!({ "settlement": serde_json::to_value(wire).unwrap_or(Value::Null) })
}

/// The settlement record in a user-queue body, or None if the body is something else (a
/// market outcome).
pub fn decode_user_record(body: &Value) -> Option<Result<UserSettlement, RecordError>> {
    let inner = body.get("settlement")?;
    Some(decode_user_settlement(inner))
}

fn decode_user_settlement(inner: &Value) -> Result<UserSettlement, RecordError> {
    let shape = |e: String| RecordError::Shape(e);
    let wire = WireUserSettlement::deserialize(inner).map_err(|e| shape(e.to_string()))?;
    Ok(match wire {
        WireUserSettlement::Confirm { asset, amount } => UserSettlement::Confirm {
            asset: AssetId::new(&asset).map_err(|e| shape(e.to_string()))?,
            amount: amount_from_text(&amount)?,
        },
        WireUserSettlement::Void { market, order_id, trade } => UserSettlement::Void {
            market: MarketId::new(&market).map_err(|e| shape(e.to_string()))?,
            order: OrderId(order_id),
            trade: Trade::try_from(&trade)?,
        },
    })
}

fn amount_from_text(s: &str) -> Result<Amount, RecordError> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| s.parse::<u128>().ok())
        .flatten()
        .map(Amount)
        .ok_or_else(|| RecordError::Shape(format!("amount {s:?}")))
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/records.rs"]
mod tests;
