//! The WebSocket protocol's messages (docs/websocket.md describes it with examples). Clients
//! send JSON objects with an `op`; the server sends JSON objects with a `type`. Requests may
//! carry an `id` (any JSON number or string), echoed in the answer.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::error::ErrorBody;
use crate::api::wire::{
    BalanceInfo, CandleInfo, FillInfo, Interval, Level, OrderInfo, PlaceOrderRequest, SignedOrderWire, TradeInfo,
};

/// What a client can ask.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Subscribe {
        id: Option<Value>,
        channel: String,
        market: Option<String>,
        interval: Option<Interval>,
    },
    Unsubscribe {
        id: Option<Value>,
        channel: String,
        market: Option<String>,
        interval: Option<Interval>,
    },
    Ping {
        id: Option<Value>,
    },
    /// Authenticates the connection with a session token (POST /api/v1/auth/login).
    Login {
        id: Option<Value>,
        token: String,
    },
    Place {
        id: Option<Value>,
        order: PlaceOrderRequest,
    },
    Cancel {
        id: Option<Value>,
        order_id: Option<String>,
        client_order_id: Option<String>,
    },
    CancelAll {
        id: Option<Value>,
        market: Option<String>,
    },
    Amend {
        id: Option<Value>,
        order_id: String,
        price: String,
        qty: String,
        /// Signed mode: as REST's `PATCH /orders/{order_id}`.
        #[serde(default)]
        nonce: Option<u64>,
        #[serde(default)]
        signed_order: Option<SignedOrderWire>,
    },
    Batch {
        id: Option<Value>,
        ops: Vec<Value>,
    },
    /// Opt in (or out) of cancelling every open order when this connection ends.
    CancelOnDisconnect {
        id: Option<Value>,
        enabled: bool,
    },
    /// Arms (or, with 0, disarms) the dead-man switch: unless sent again within
    /// `timeout_ms`, every open order of the user is cancelled.
    DeadMan {
        id: Option<Value>,
        timeout_ms: u64,
    },
}

/// Every op a client may send, for errors and docs.
pub const OPS: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "ping",
    "login",
    "place",
    "cancel",
    "cancel_all",
    "amend",
    "batch",
    "cancel_on_disconnect",
    "dead_man",
];

/// Every channel name, for errors and docs.
pub const CHANNELS: &[&str] = &["l2", "trades", "candles", "ticker", "heartbeat", "orders", "fills", "balances"];

/// Serializes a server message once; it is then shared by every subscriber.
pub fn encode<T: Serialize>(message: &T) -> ByteString {
    match serde_json::to_string(message) {
        Ok(text) => ByteString::from(text),
        // Only maps with non-string keys fail to serialize, and no message has one.
        Err(e) => ByteString::from(format!(r#"{{"type":"error","code":"internal","message":"{e}"}}"#)),
    }
}

/// A push on a channel: `{"type": "snapshot" | "update", "channel": ..., ...body}`.
#[derive(Clone, Debug, Serialize)]
pub struct Push<'a, T> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub channel: &'static str,
    #[serde(flatten)]
    pub body: &'a T,
}

pub fn snapshot<T: Serialize>(channel: &'static str, body: &T) -> ByteString {
    encode(&Push { kind: "snapshot", channel, body })
}

pub fn update<T: Serialize>(channel: &'static str, body: &T) -> ByteString {
    encode(&Push { kind: "update", channel, body })
}

/// An `l2` update: the levels that changed between two versions of the market's stream.
#[derive(Clone, Debug, Serialize)]
pub struct L2Update {
    pub market: String,
    pub first_update_id: u64,
    pub last_update_id: u64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub checksum: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct TradesBody {
    pub market: String,
    pub trades: Vec<TradeInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CandlesBody {
    pub market: String,
    pub interval: Interval,
    pub candles: Vec<CandleInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HeartbeatBody {
    pub counter: u64,
    pub time: i64,
}

/// Private pushes carry the user stream's version, so a reconnecting client can tell what
/// it has seen.
#[derive(Clone, Debug, Serialize)]
pub struct OrdersBody {
    pub version: u64,
    pub orders: Vec<OrderInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FillsBody {
    pub version: u64,
    pub fills: Vec<FillInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BalancesBody {
    pub version: u64,
    pub balances: Vec<BalanceInfo>,
}

/// Answers to requests.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Welcome {
        connection_id: u64,
        /// The user this connection acts for, if any.
        user: Option<String>,
        max_message_bytes: usize,
    },
    Ack {
        id: Option<Value>,
        op: &'static str,
        channel: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        market: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        interval: Option<Interval>,
    },
    Result {
        id: Option<Value>,
        op: &'static str,
        result: Value,
    },
    Error {
        id: Option<Value>,
        #[serde(flatten)]
        error: ErrorBody,
    },
    Pong {
        id: Option<Value>,
    },
    /// The dead-man switch fired: cancels were sent for these orders.
    DeadManTriggered {
        cancel_requested: Vec<String>,
    },
}

impl Reply {
    pub fn encode(&self) -> ByteString {
        encode(self)
    }
}
