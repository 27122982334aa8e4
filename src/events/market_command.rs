//! Commands to a market as they travel on the market queue: the wire form, separate from
//! `domain::MarketCommand`, so a queued message stays readable across releases.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::payload::{user_from_wire, PayloadError, WireAccepted};
use crate::domain::{MarketCommand, NewOrder, OrderAuth, OrderId, PriceTicks, QtyLots};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WireMarketCommand {
    Place {
        order: WireAccepted,
        /// The user's signed order, for settlement (see `domain::OrderAuth`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<String>,
    },
    Cancel {
        order_id: u64,
        user: String,
    },
    Amend {
        order_id: u64,
        user: String,
        price_ticks: u64,
        qty_lots: u64,
        /// A signed amend's new signed order, which trades after the amend settle under.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<String>,
    },
    ExpireDue,
    Halt,
    Resume,
}

impl From<&MarketCommand> for WireMarketCommand {
    fn from(c: &MarketCommand) -> Self {
        match *c {
            MarketCommand::Place(ref order) => WireMarketCommand::Place { order: order.into(), auth: None },
            MarketCommand::Cancel { order, user } => {
                WireMarketCommand::Cancel { order_id: order.0, user: user.to_string() }
            }
            MarketCommand::Amend { order, user, price, qty } => WireMarketCommand::Amend {
                order_id: order.0,
                user: user.to_string(),
                price_ticks: price.0,
                qty_lots: qty.0,
                auth: None,
            },
            MarketCommand::ExpireDue => WireMarketCommand::ExpireDue,
            MarketCommand::Halt => WireMarketCommand::Halt,
            MarketCommand::Resume => WireMarketCommand::Resume,
        }
    }
}

impl TryFrom<&WireMarketCommand> for MarketCommand {
    type Error = PayloadError;
    fn try_from(w: &WireMarketCommand) -> Result<Self, PayloadError> {
        Ok(match w {
            WireMarketCommand::Place { order, .. } => MarketCommand::Place(NewOrder::try_from(order)?),
            WireMarketCommand::Cancel { order_id, user } => {
                MarketCommand::Cancel { order: OrderId(*order_id), user: user_from_wire("user", user)? }
            }
            WireMarketCommand::Amend { order_id, user, price_ticks, qty_lots, .. } => MarketCommand::Amend {
                order: OrderId(*order_id),
                user: user_from_wire("user", user)?,
                price: PriceTicks(*price_ticks),
                qty: QtyLots(*qty_lots),
            },
            WireMarketCommand::ExpireDue => MarketCommand::ExpireDue,
            WireMarketCommand::Halt => MarketCommand::Halt,
            WireMarketCommand::Resume => MarketCommand::Resume,
        })
    }
}

pub fn encode_market_command(command: &MarketCommand) -> Value {
    // A plain tagged enum of integers and strings always serializes.
    serde_json::to_value(WireMarketCommand::from(command)).unwrap_or(Value::Null)
}

/// A command with the signed order that rides with a placement or a signed amend.
pub fn encode_market_record(command: &MarketCommand, auth: Option<&OrderAuth>) -> Value {
    let mut wire = WireMarketCommand::from(command);
    if let WireMarketCommand::Place { auth: slot, .. } | WireMarketCommand::Amend { auth: slot, .. } = &mut wire {
        *slot = auth.map(|a| a.as_str().to_owned());
    }
    // A plain tagged enum of integers and strings always serializes.
    serde_json::to_value(wire).unwrap_or(Value::Null)
}

pub fn decode_market_command(payload: &Value) -> Result<MarketCommand, PayloadError> {
    decode_market_record(payload).map(|(command, _)| command)
}

/// The command and, for a placement or a signed amend, the user's signed order.
pub fn decode_market_record(payload: &Value) -> Result<(MarketCommand, Option<OrderAuth>), PayloadError> {
    // Deserialized from the borrowed value: no copy of the record on the consumer's hot path.
    let wire = <WireMarketCommand as serde::Deserialize>::deserialize(payload)
        .map_err(|source| PayloadError::Json { event_type: "market.Command".into(), source })?;
    let auth = match &wire {
        WireMarketCommand::Place { auth: Some(a), .. } | WireMarketCommand::Amend { auth: Some(a), .. } => {
            Some(OrderAuth::new(a.as_str()))
        }
        _ => None,
    };
    Ok((MarketCommand::try_from(&wire)?, auth))
}

#[cfg(test)]
#[path = "../../unit_tests/events/market_command.rs"]
mod tests;
