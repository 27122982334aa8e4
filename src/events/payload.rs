//! Wire types for market events: what is stored and sent, kept apart from the domain types
//! because a serialized type is a compatibility promise and the domain must stay free to
//! change. Domain -> wire is infallible; wire -> domain checks every value and fails with a
//! typed error. Amounts travel as decimal strings (JSON numbers lose precision past 2^53),
//! users as `0x`-prefixed lowercase hex.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::upcast::{upcast_to_current, UpcastError};
use crate::domain::{
    Amount, CancelReason, ExpireReason, MarketEvent, NewOrder, OrderId, OrderType, PriceTicks, QtyLots, RejectReason,
    Side, StpMode, TimeInForce, TimestampMs, Trade, TradeId, UserId,
};

/// Event types and the schema version each is written at today. Older stored versions are
/// brought up to these by `upcast.rs` before decoding.
pub const MARKET_EVENT_TYPES: &[(&str, u16)] = &[
    (ACCEPTED, 1),
    (RESTED, 2),
    (TRADED, 1),
    (FILLED, 1),
    (EXPIRED, 1),
    (CANCELLED, 1),
    (AMENDED, 1),
    (REJECTED, 1),
    (HALTED, 1),
    (RESUMED, 1),
];

pub const ACCEPTED: &str = "market.Accepted";
pub const RESTED: &str = "market.Rested";
pub const TRADED: &str = "market.Traded";
pub const FILLED: &str = "market.Filled";
pub const EXPIRED: &str = "market.Expired";
pub const CANCELLED: &str = "market.Cancelled";
pub const AMENDED: &str = "market.Amended";
pub const REJECTED: &str = "market.Rejected";
pub const HALTED: &str = "market.Halted";
pub const RESUMED: &str = "market.Resumed";

/// The schema version an event type is written at today, or `None` for an unknown type.
pub fn current_schema_version(event_type: &str) -> Option<u16> {
    MARKET_EVENT_TYPES.iter().find(|(t, _)| *t == event_type).map(|(_, v)| *v)
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("{event_type}: payload does not match its schema: {source}")]
    Json { event_type: String, source: serde_json::Error },
    #[error("{field}: invalid user address {value:?}")]
    InvalidUser { field: &'static str, value: String },
    #[error("{field}: invalid amount {value:?} (expected a decimal integer that fits u128)")]
    InvalidAmount { field: &'static str, value: String },
    #[error("{field}: unknown code {value:?}")]
    UnknownCode { field: &'static str, value: String },
}

/// An event ready to be put in an envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedEvent {
    pub event_type: &'static str,
    pub schema_version: u16,
    pub payload: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireSide {
    Buy,
    Sell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireStp {
    ExpireMaker,
    ExpireTaker,
    ExpireBoth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireOrderType {
    Limit { price_ticks: u64 },
    Market { worst_price_ticks: Option<u64> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireTimeInForce {
    Gtc,
    Ioc,
    Fok,
    Gtd { expiry_ms: u64 },
}

/// `market.Accepted` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAccepted {
    pub order_id: u64,
    pub user: String,
    pub side: WireSide,
    pub order_type: WireOrderType,
    pub qty_lots: u64,
    pub tif: WireTimeInForce,
    pub post_only: bool,
    pub stp: WireStp,
}

/// `market.Rested` v2 (v1 lacked `post_only` and `stp`; see `upcast.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRested {
    pub order_id: u64,
    pub user: String,
    pub side: WireSide,
    pub price_ticks: u64,
    pub qty_lots: u64,
    pub expiry_ms: Option<u64>,
    pub post_only: bool,
    pub stp: WireStp,
}

/// `market.Traded` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTraded {
    pub trade_id: u64,
    pub maker_order: u64,
    pub maker_user: String,
    pub taker_order: u64,
    pub taker_user: String,
    pub taker_side: WireSide,
    pub price_ticks: u64,
    pub qty_lots: u64,
    pub base_amount: String,
    pub quote_amount: String,
    pub maker_fee: String,
    pub taker_fee: String,
}

/// `market.Filled` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFilled {
    pub order_id: u64,
}

/// `market.Expired` v1; `reason` is `ExpireReason::code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireExpired {
    pub order_id: u64,
    pub remaining_lots: u64,
    pub reason: String,
}

/// `market.Cancelled` v1; `reason` is `CancelReason::code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCancelled {
    pub order_id: u64,
    pub remaining_lots: u64,
    pub reason: String,
}

/// `market.Amended` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAmended {
    pub order_id: u64,
    pub price_ticks: u64,
    pub qty_lots: u64,
    pub keeps_priority: bool,
}

/// `market.Rejected` v1; `reason` is `RejectReason::code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRejected {
    pub order_id: u64,
    pub reason: String,
}

/// `market.Halted` / `market.Resumed` v1: no fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WireEmpty {}

/// Every market event as it is stored, one variant per event type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireMarketEvent {
    Accepted(WireAccepted),
    Rested(WireRested),
    Traded(WireTraded),
    Filled(WireFilled),
    Expired(WireExpired),
    Cancelled(WireCancelled),
    Amended(WireAmended),
    Rejected(WireRejected),
    Halted(WireEmpty),
    Resumed(WireEmpty),
}

impl WireMarketEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            WireMarketEvent::Accepted(_) => ACCEPTED,
            WireMarketEvent::Rested(_) => RESTED,
            WireMarketEvent::Traded(_) => TRADED,
            WireMarketEvent::Filled(_) => FILLED,
            WireMarketEvent::Expired(_) => EXPIRED,
            WireMarketEvent::Cancelled(_) => CANCELLED,
            WireMarketEvent::Amended(_) => AMENDED,
            WireMarketEvent::Rejected(_) => REJECTED,
            WireMarketEvent::Halted(_) => HALTED,
            WireMarketEvent::Resumed(_) => RESUMED,
        }
    }

    pub fn schema_version(&self) -> u16 {
        // Every variant's type is in MARKET_EVENT_TYPES (checked by a unit test).
        current_schema_version(self.event_type()).unwrap_or(1)
    }

    pub fn to_payload(&self) -> Value {
        fn json<T: Serialize>(v: &T) -> Value {
            // Plain structs of integers, strings, bools and unit enums: serializing them to a
            // Value cannot fail (no maps with non-string keys, no fallible Serialize impls).
            serde_json::to_value(v).expect("cannot fail: wire structs always serialize")
        }
        match self {
            WireMarketEvent::Accepted(p) => json(p),
            WireMarketEvent::Rested(p) => json(p),
            WireMarketEvent::Traded(p) => json(p),
            WireMarketEvent::Filled(p) => json(p),
            WireMarketEvent::Expired(p) => json(p),
            WireMarketEvent::Cancelled(p) => json(p),
            WireMarketEvent::Amended(p) => json(p),
            WireMarketEvent::Rejected(p) => json(p),
            WireMarketEvent::Halted(p) | WireMarketEvent::Resumed(p) => json(p),
        }
    }

    /// Decodes a stored payload written at `schema_version`, upcasting it first.
    pub fn from_payload(event_type: &str, schema_version: u16, payload: Value) -> Result<Self, PayloadError> {
        if current_schema_version(event_type).is_none() {
            return Err(PayloadError::UnknownEventType(event_type.to_owned()));
        }
        let payload = upcast_to_current(event_type, schema_version, payload)?;
        let json = |source| PayloadError::Json { event_type: event_type.to_owned(), source };
        WireMarketEvent::by_type(event_type, payload)
            .map_err(json)?
            .ok_or_else(|| PayloadError::UnknownEventType(event_type.to_owned()))
    }

    /// Decodes stored payload text. At the current schema version it parses straight into
    /// the wire type (the replay hot path); an older version goes through its upcasters.
    pub fn from_bytes(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Self, PayloadError> {
        let current =
            current_schema_version(event_type).ok_or_else(|| PayloadError::UnknownEventType(event_type.to_owned()))?;
        let json = |source| PayloadError::Json { event_type: event_type.to_owned(), source };
        if schema_version != current {
            let value = serde_json::from_slice(payload).map_err(json)?;
            return WireMarketEvent::from_payload(event_type, schema_version, value);
        }
        let mut de = serde_json::Deserializer::from_slice(payload);
        let event = WireMarketEvent::by_type(event_type, &mut de).map_err(json)?;
        de.end().map_err(json)?;
        event.ok_or_else(|| PayloadError::UnknownEventType(event_type.to_owned()))
    }

    /// The one place that maps an event type to its wire struct, for any JSON source (a parsed
    /// value or the stored text). None for an unknown type.
    fn by_type<'de, D>(event_type: &str, d: D) -> Result<Option<Self>, serde_json::Error>
    where
        D: serde::Deserializer<'de, Error = serde_json::Error>,
    {
        Ok(Some(match event_type {
            ACCEPTED => WireMarketEvent::Accepted(Deserialize::deserialize(d)?),
            RESTED => WireMarketEvent::Rested(Deserialize::deserialize(d)?),
            TRADED => WireMarketEvent::Traded(Deserialize::deserialize(d)?),
            FILLED => WireMarketEvent::Filled(Deserialize::deserialize(d)?),
            EXPIRED => WireMarketEvent::Expired(Deserialize::deserialize(d)?),
            CANCELLED => WireMarketEvent::Cancelled(Deserialize::deserialize(d)?),
            AMENDED => WireMarketEvent::Amended(Deserialize::deserialize(d)?),
            REJECTED => WireMarketEvent::Rejected(Deserialize::deserialize(d)?),
            HALTED => WireMarketEvent::Halted(Deserialize::deserialize(d)?),
            RESUMED => WireMarketEvent::Resumed(Deserialize::deserialize(d)?),
            _ => return Ok(None),
        }))
    }
}

/// Decodes a stored market event from its payload text (any known schema version).
pub fn decode_market_event_bytes(
    event_type: &str,
    schema_version: u16,
    payload: &[u8],
) -> Result<MarketEvent, PayloadError> {
    MarketEvent::try_from(WireMarketEvent::from_bytes(event_type, schema_version, payload)?)
}

/// Encodes a domain event at its current schema version.
pub fn encode_market_event(event: &MarketEvent) -> EncodedEvent {
    let wire = WireMarketEvent::from(event);
    EncodedEvent { event_type: wire.event_type(), schema_version: wire.schema_version(), payload: wire.to_payload() }
}

/// Decodes a stored market event of any known schema version.
pub fn decode_market_event(event_type: &str, schema_version: u16, payload: Value) -> Result<MarketEvent, PayloadError> {
    MarketEvent::try_from(WireMarketEvent::from_payload(event_type, schema_version, payload)?)
}

pub(crate) fn side_to_wire(s: Side) -> WireSide {
    match s {
        Side::Buy => WireSide::Buy,
        Side::Sell => WireSide::Sell,
    }
}

pub(crate) fn side_from_wire(s: WireSide) -> Side {
    match s {
        WireSide::Buy => Side::Buy,
        WireSide::Sell => Side::Sell,
    }
}

pub(crate) fn stp_to_wire(s: StpMode) -> WireStp {
    match s {
        StpMode::ExpireMaker => WireStp::ExpireMaker,
        StpMode::ExpireTaker => WireStp::ExpireTaker,
        StpMode::ExpireBoth => WireStp::ExpireBoth,
    }
}

pub(crate) fn stp_from_wire(s: WireStp) -> StpMode {
    match s {
        WireStp::ExpireMaker => StpMode::ExpireMaker,
        WireStp::ExpireTaker => StpMode::ExpireTaker,
        WireStp::ExpireBoth => StpMode::ExpireBoth,
    }
}

pub(crate) fn user_from_wire(field: &'static str, s: &str) -> Result<UserId, PayloadError> {
    UserId::from_hex(s).map_err(|_| PayloadError::InvalidUser { field, value: s.chars().take(64).collect() })
}

pub(crate) fn amount_from_wire(field: &'static str, s: &str) -> Result<Amount, PayloadError> {
    let bad = || PayloadError::InvalidAmount { field, value: s.chars().take(64).collect() };
    // `u128::from_str` accepts a leading `+`; the wire form is digits only.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse::<u128>().map(Amount).map_err(|_| bad())
}

/// The reason a stable code names, or a typed error naming the field.
pub(crate) fn code_from_wire<T>(
    field: &'static str,
    from_code: fn(&str) -> Option<T>,
    s: &str,
) -> Result<T, PayloadError> {
    from_code(s).ok_or_else(|| PayloadError::UnknownCode { field, value: s.chars().take(64).collect() })
}

impl From<&NewOrder> for WireAccepted {
    fn from(o: &NewOrder) -> Self {
        WireAccepted {
            order_id: o.id.0,
            user: o.user.to_string(),
            side: side_to_wire(o.side),
            order_type: match o.order_type {
                OrderType::Limit { price } => WireOrderType::Limit { price_ticks: price.0 },
                OrderType::Market { worst_price } => {
                    WireOrderType::Market { worst_price_ticks: worst_price.map(|p| p.0) }
                }
            },
            qty_lots: o.qty.0,
            tif: match o.tif {
                TimeInForce::Gtc => WireTimeInForce::Gtc,
                TimeInForce::Ioc => WireTimeInForce::Ioc,
                TimeInForce::Fok => WireTimeInForce::Fok,
                TimeInForce::Gtd(at) => WireTimeInForce::Gtd { expiry_ms: at.0 },
            },
            post_only: o.post_only,
            stp: stp_to_wire(o.stp),
        }
    }
}

impl TryFrom<&WireAccepted> for NewOrder {
    type Error = PayloadError;
    fn try_from(w: &WireAccepted) -> Result<Self, PayloadError> {
        Ok(NewOrder {
            id: OrderId(w.order_id),
            user: user_from_wire("user", &w.user)?,
            side: side_from_wire(w.side),
            order_type: match w.order_type {
                WireOrderType::Limit { price_ticks } => OrderType::Limit { price: PriceTicks(price_ticks) },
                WireOrderType::Market { worst_price_ticks } => {
                    OrderType::Market { worst_price: worst_price_ticks.map(PriceTicks) }
                }
            },
            qty: QtyLots(w.qty_lots),
            tif: match w.tif {
                WireTimeInForce::Gtc => TimeInForce::Gtc,
                WireTimeInForce::Ioc => TimeInForce::Ioc,
                WireTimeInForce::Fok => TimeInForce::Fok,
                WireTimeInForce::Gtd { expiry_ms } => TimeInForce::Gtd(TimestampMs(expiry_ms)),
            },
            post_only: w.post_only,
            stp: stp_from_wire(w.stp),
        })
    }
}

impl From<&Trade> for WireTraded {
    fn from(t: &Trade) -> Self {
        WireTraded {
            trade_id: t.id.0,
            maker_order: t.maker_order.0,
            maker_user: t.maker_user.to_string(),
            taker_order: t.taker_order.0,
            taker_user: t.taker_user.to_string(),
            taker_side: side_to_wire(t.taker_side),
            price_ticks: t.price.0,
            qty_lots: t.qty.0,
            base_amount: t.base_amount.0.to_string(),
            quote_amount: t.quote_amount.0.to_string(),
            maker_fee: t.maker_fee.0.to_string(),
            taker_fee: t.taker_fee.0.to_string(),
        }
    }
}

impl TryFrom<&WireTraded> for Trade {
    type Error = PayloadError;
    fn try_from(w: &WireTraded) -> Result<Self, PayloadError> {
        Ok(Trade {
            id: TradeId(w.trade_id),
            maker_order: OrderId(w.maker_order),
            maker_user: user_from_wire("maker_user", &w.maker_user)?,
            taker_order: OrderId(w.taker_order),
            taker_user: user_from_wire("taker_user", &w.taker_user)?,
            taker_side: side_from_wire(w.taker_side),
            price: PriceTicks(w.price_ticks),
            qty: QtyLots(w.qty_lots),
            base_amount: amount_from_wire("base_amount", &w.base_amount)?,
            quote_amount: amount_from_wire("quote_amount", &w.quote_amount)?,
            maker_fee: amount_from_wire("maker_fee", &w.maker_fee)?,
            taker_fee: amount_from_wire("taker_fee", &w.taker_fee)?,
        })
    }
}

impl From<&MarketEvent> for WireMarketEvent {
    fn from(e: &MarketEvent) -> Self {
        match e {
            MarketEvent::Accepted(o) => WireMarketEvent::Accepted(o.into()),
            MarketEvent::Rested { order, user, side, price, qty, expiry, post_only, stp } => {
                WireMarketEvent::Rested(WireRested {
                    order_id: order.0,
                    user: user.to_string(),
                    side: side_to_wire(*side),
                    price_ticks: price.0,
                    qty_lots: qty.0,
                    expiry_ms: expiry.map(|t| t.0),
                    post_only: *post_only,
                    stp: stp_to_wire(*stp),
                })
            }
            MarketEvent::Traded(t) => WireMarketEvent::Traded(t.into()),
            MarketEvent::Filled { order } => WireMarketEvent::Filled(WireFilled { order_id: order.0 }),
            MarketEvent::Expired { order, remaining, reason } => WireMarketEvent::Expired(WireExpired {
                order_id: order.0,
                remaining_lots: remaining.0,
                reason: reason.code().to_owned(),
            }),
            MarketEvent::Cancelled { order, remaining, reason } => WireMarketEvent::Cancelled(WireCancelled {
                order_id: order.0,
                remaining_lots: remaining.0,
                reason: reason.code().to_owned(),
            }),
            MarketEvent::Amended { order, price, qty, keeps_priority } => WireMarketEvent::Amended(WireAmended {
                order_id: order.0,
                price_ticks: price.0,
                qty_lots: qty.0,
                keeps_priority: *keeps_priority,
            }),
            MarketEvent::Rejected { order, reason } => {
                WireMarketEvent::Rejected(WireRejected { order_id: order.0, reason: reason.code().to_owned() })
            }
            MarketEvent::Halted => WireMarketEvent::Halted(WireEmpty {}),
            MarketEvent::Resumed => WireMarketEvent::Resumed(WireEmpty {}),
        }
    }
}

impl TryFrom<WireMarketEvent> for MarketEvent {
    type Error = PayloadError;
    fn try_from(w: WireMarketEvent) -> Result<Self, PayloadError> {
        Ok(match w {
            WireMarketEvent::Accepted(o) => MarketEvent::Accepted((&o).try_into()?),
            WireMarketEvent::Rested(r) => MarketEvent::Rested {
                order: OrderId(r.order_id),
                user: user_from_wire("user", &r.user)?,
                side: side_from_wire(r.side),
                price: PriceTicks(r.price_ticks),
                qty: QtyLots(r.qty_lots),
                expiry: r.expiry_ms.map(TimestampMs),
                post_only: r.post_only,
                stp: stp_from_wire(r.stp),
            },
            WireMarketEvent::Traded(t) => MarketEvent::Traded((&t).try_into()?),
            WireMarketEvent::Filled(f) => MarketEvent::Filled { order: OrderId(f.order_id) },
            WireMarketEvent::Expired(e) => MarketEvent::Expired {
                order: OrderId(e.order_id),
                remaining: QtyLots(e.remaining_lots),
                reason: code_from_wire("reason", ExpireReason::from_code, &e.reason)?,
            },
            WireMarketEvent::Cancelled(c) => MarketEvent::Cancelled {
                order: OrderId(c.order_id),
                remaining: QtyLots(c.remaining_lots),
                reason: code_from_wire("reason", CancelReason::from_code, &c.reason)?,
            },
            WireMarketEvent::Amended(a) => MarketEvent::Amended {
                order: OrderId(a.order_id),
                price: PriceTicks(a.price_ticks),
                qty: QtyLots(a.qty_lots),
                keeps_priority: a.keeps_priority,
            },
            WireMarketEvent::Rejected(r) => MarketEvent::Rejected {
                order: OrderId(r.order_id),
                reason: code_from_wire("reason", RejectReason::from_code, &r.reason)?,
            },
            WireMarketEvent::Halted(_) => MarketEvent::Halted,
            WireMarketEvent::Resumed(_) => MarketEvent::Resumed,
        })
    }
}

#[cfg(test)]
#[path = "../../unit_tests/events/payload.rs"]
mod tests;
