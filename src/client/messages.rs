//! What the server sends over the WebSocket, as a client reads it (docs/websocket.md). The
//! private channels' rows are the server's own wire types; messages and channels this client
//! has no use for are kept as `Other` rather than refused, so a server that grows new ones
//! does not break it.

use serde::Deserialize;
use serde_json::Value;

use crate::api::wire::{BalanceInfo, FillInfo, OrderInfo};

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        connection_id: u64,
        user: Option<String>,
    },
    /// A subscription or unsubscription took effect.
    Ack {
        id: Option<Value>,
        op: String,
        channel: String,
        market: Option<String>,
    },
    /// The answer to a request.
    Result {
        id: Option<Value>,
        op: String,
        result: Value,
    },
    /// A refused request (or message).
    Error {
        id: Option<Value>,
        code: String,
        message: String,
    },
    Pong {
        id: Option<Value>,
    },
    Heartbeat {
        counter: u64,
    },
    DeadManTriggered {
        cancel_requested: Vec<String>,
    },
    /// A channel's state when subscribing.
    Snapshot(Push),
    /// What changed on a channel since its previous message.
    Update(Push),
    #[serde(other)]
    Other,
}

/// A channel's snapshot or update. `version` is the user stream's version it reflects.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Push {
    Orders {
        version: u64,
        orders: Vec<OrderInfo>,
    },
    Fills {
        version: u64,
        fills: Vec<FillInfo>,
    },
    Balances {
        version: u64,
        balances: Vec<BalanceInfo>,
    },
    /// A market channel (`l2`, `trades`, `candles`, `ticker`): not read by this client.
    #[serde(other)]
    Other,
}

impl ServerMessage {
    /// The request id this message answers, if it answers one.
    pub fn answers(&self) -> Option<&Value> {
        match self {
            ServerMessage::Ack { id, .. }
            | ServerMessage::Result { id, .. }
            | ServerMessage::Error { id, .. }
            | ServerMessage::Pong { id } => id.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "../../unit_tests/client/messages.rs"]
mod tests;
