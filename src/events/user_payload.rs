//! Wire types for user events and the user snapshot, kept apart from the domain types for the
//! same reason as `payload.rs`: a serialized type is a compatibility promise. Domain -> wire
//! is infallible; wire -> domain checks every value. Amounts are decimal strings, users `0x`
//! hex, reasons their stable codes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::payload::{
    amount_from_wire, code_from_wire, side_from_wire, side_to_wire, user_from_wire, PayloadError, WireAccepted,
    WireSide, WireTraded,
};
use super::upcast::upcast_to_current;
use crate::domain::transfers::{DepositId, PendingWithdrawal, TransfersParts, WithdrawalAuth};
use crate::domain::{
    AmendAuth, AssetId, Balance, Bps, CancelReason, ClientOrderId, ExpireReason, HeldMarket, MarketId, MarketSpec,
    NewOrder, OpenOrder, OrderAuth, OrderId, OrderLock, OrderStatus, PendingRequest, PriceTicks, QtyLots, RejectReason,
    ReleaseReason, Trade, TradeId, UserApplyError, UserEvent, UserState, UserStateParts,
};

pub const DEPOSITED: &str = "user.Deposited";
pub const WITHDRAWN: &str = "user.Withdrawn";
pub const ORDER_PLACED: &str = "user.OrderPlaced";
pub const ORDER_ACKNOWLEDGED: &str = "user.OrderAcknowledged";
pub const CANCEL_REQUESTED: &str = "user.CancelRequested";
pub const CANCEL_REJECTED: &str = "user.CancelRejected";
pub const AMEND_REQUESTED: &str = "user.AmendRequested";
pub const AMEND_APPLIED: &str = "user.AmendApplied";
pub const AMEND_REVERTED: &str = "user.AmendReverted";
pub const FILL_APPLIED: &str = "user.FillApplied";
pub const ORDER_RELEASED: &str = "user.OrderReleased";
pub const ORDER_CLOSED: &str = "user.OrderClosed";
pub const SETTLEMENT_CONFIRMED: &str = "user.SettlementConfirmed";
pub const TRADE_VOIDED: &str = "user.TradeVoided";
pub const DEPOSIT_CREDITED: &str = "user.DepositCredited";
pub const WITHDRAWAL_REQUESTED: &str = "user.WithdrawalRequested";
pub const WITHDRAWAL_COMPLETED: &str = "user.WithdrawalCompleted";
pub const WITHDRAWAL_FAILED: &str = "user.WithdrawalFailed";

/// User event types and the schema version each is written at today.
pub const USER_EVENT_TYPES: &[(&str, u16)] = &[
    (DEPOSITED, 1),
    (WITHDRAWN, 1),
    (ORDER_PLACED, 1),
    (ORDER_ACKNOWLEDGED, 1),
    (CANCEL_REQUESTED, 1),
    (CANCEL_REJECTED, 1),
    (AMEND_REQUESTED, 2),
    (AMEND_APPLIED, 1),
    (AMEND_REVERTED, 1),
    (FILL_APPLIED, 1),
    (ORDER_RELEASED, 1),
    (ORDER_CLOSED, 1),
    (SETTLEMENT_CONFIRMED, 1),
    (TRADE_VOIDED, 1),
    (DEPOSIT_CREDITED, 1),
    (WITHDRAWAL_REQUESTED, 1),
    (WITHDRAWAL_COMPLETED, 1),
    (WITHDRAWAL_FAILED, 1),
];

pub const USER_SNAPSHOT_VERSION: u16 = 1;

pub fn current_user_schema_version(event_type: &str) -> Option<u16> {
    USER_EVENT_TYPES.iter().find(|(t, _)| *t == event_type).map(|(_, v)| *v)
}

#[derive(Debug, thiserror::Error)]
pub enum UserPayloadError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("user snapshot version {0} is not known")]
    SnapshotVersion(u16),
    #[error("user snapshot does not decode: {0}")]
    SnapshotJson(serde_json::Error),
    #[error("user snapshot does not restore: {0}")]
    Restore(#[from] UserApplyError),
}

/// `user.Deposited`, `user.Withdrawn`, `user.SettlementConfirmed` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAssetAmount {
    pub asset: String,
    pub amount: String,
}

/// `user.DepositCredited` v1. `deposit` is `0x{tx hash}:{log index}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDepositCredited {
    pub deposit: String,
    pub asset: String,
    pub amount: String,
}

/// `user.WithdrawalRequested` v1; `auth` is the signed withdrawal the operator sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireWithdrawalRequested {
    pub nonce: u64,
    pub asset: String,
    pub amount: String,
    pub auth: String,
}

/// `user.WithdrawalCompleted` v1, and `user.WithdrawalFailed` v1 with its `reason`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireWithdrawalEnded {
    pub nonce: u64,
    pub asset: String,
    pub amount: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLock {
    pub side: WireSide,
    pub asset: String,
    pub amount: String,
    pub qty_lots: u64,
    pub limit_ticks: u64,
    pub fee_bps: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSpec {
    pub id: String,
    pub base: String,
    pub quote: String,
    pub base_lot: String,
    pub quote_tick: String,
    pub min_qty_lots: u64,
    pub max_qty_lots: u64,
    pub min_notional: String,
    pub maker_fee_bps: u16,
    pub taker_fee_bps: u16,
}

/// `user.OrderPlaced` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOrderPlaced {
    pub market: String,
    pub order: WireAccepted,
    pub client_order_id: Option<String>,
    pub nonce: u64,
    pub lock: WireLock,
    pub spec: WireSpec,
    /// The user's signed order (see `domain::OrderAuth`); absent when unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
}

/// `user.OrderAcknowledged`, `user.CancelRequested` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOrderRef {
    pub market: String,
    pub order_id: u64,
}

/// `user.CancelRejected` v1; `reason` is `RejectReason::code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCancelRejected {
    pub market: String,
    pub order_id: u64,
    pub reason: String,
}

/// `user.AmendRequested` v2 (v2 added `nonce` and `auth`: a signed amend's new signed order;
/// both null for an unsigned amend, which is what every v1 event was).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAmendRequested {
    pub market: String,
    pub order_id: u64,
    pub price_ticks: u64,
    pub qty_lots: u64,
    pub previous: WireLock,
    pub lock: WireLock,
    pub nonce: Option<u64>,
    pub auth: Option<String>,
}

/// `user.AmendApplied` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAmendApplied {
    pub market: String,
    pub order_id: u64,
    pub price_ticks: u64,
    pub qty_lots: u64,
    pub lock: WireLock,
}

/// `user.AmendReverted` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAmendReverted {
    pub market: String,
    pub order_id: u64,
    pub reason: String,
    pub lock: WireLock,
}

/// `user.FillApplied` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFillApplied {
    pub market: String,
    pub order_id: u64,
    pub trade: WireTraded,
}

/// `user.OrderReleased` v1; `kind` is `cancelled`, `expired` or `rejected`, `code` the
/// reason's stable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOrderReleased {
    pub market: String,
    pub order_id: u64,
    pub amount: String,
    pub kind: String,
    pub code: String,
}

/// `user.OrderClosed` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOrderClosed {
    pub market: String,
    pub order_id: u64,
    pub released: String,
}

/// `user.TradeVoided` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTradeVoided {
    pub market: String,
    pub order_id: u64,
    pub trade_id: u64,
    /// Left settling.
    pub reclaimed: WireAssetAmount,
    /// Came back as available.
    pub restored: WireAssetAmount,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireUserEvent {
    Deposited(WireAssetAmount),
    Withdrawn(WireAssetAmount),
    OrderPlaced(WireOrderPlaced),
    OrderAcknowledged(WireOrderRef),
    CancelRequested(WireOrderRef),
    CancelRejected(WireCancelRejected),
    AmendRequested(WireAmendRequested),
    AmendApplied(WireAmendApplied),
    AmendReverted(WireAmendReverted),
    FillApplied(WireFillApplied),
    OrderReleased(WireOrderReleased),
    OrderClosed(WireOrderClosed),
    SettlementConfirmed(WireAssetAmount),
    TradeVoided(WireTradeVoided),
    DepositCredited(WireDepositCredited),
    WithdrawalRequested(WireWithdrawalRequested),
    WithdrawalCompleted(WireWithdrawalEnded),
    WithdrawalFailed(WireWithdrawalEnded),
}

/// A user event ready to be put in an envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedUserEvent {
    pub event_type: &'static str,
    pub schema_version: u16,
    pub payload: Value,
}

impl WireUserEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            WireUserEvent::Deposited(_) => DEPOSITED,
            WireUserEvent::Withdrawn(_) => WITHDRAWN,
            WireUserEvent::OrderPlaced(_) => ORDER_PLACED,
            WireUserEvent::OrderAcknowledged(_) => ORDER_ACKNOWLEDGED,
            WireUserEvent::CancelRequested(_) => CANCEL_REQUESTED,
            WireUserEvent::CancelRejected(_) => CANCEL_REJECTED,
            WireUserEvent::AmendRequested(_) => AMEND_REQUESTED,
            WireUserEvent::AmendApplied(_) => AMEND_APPLIED,
            WireUserEvent::AmendReverted(_) => AMEND_REVERTED,
            WireUserEvent::FillApplied(_) => FILL_APPLIED,
            WireUserEvent::OrderReleased(_) => ORDER_RELEASED,
            WireUserEvent::OrderClosed(_) => ORDER_CLOSED,
            WireUserEvent::SettlementConfirmed(_) => SETTLEMENT_CONFIRMED,
            WireUserEvent::TradeVoided(_) => TRADE_VOIDED,
            WireUserEvent::DepositCredited(_) => DEPOSIT_CREDITED,
            WireUserEvent::WithdrawalRequested(_) => WITHDRAWAL_REQUESTED,
            WireUserEvent::WithdrawalCompleted(_) => WITHDRAWAL_COMPLETED,
            WireUserEvent::WithdrawalFailed(_) => WITHDRAWAL_FAILED,
        }
    }

    pub fn schema_version(&self) -> u16 {
        // Every variant's type is in USER_EVENT_TYPES (checked by a unit test).
        current_user_schema_version(self.event_type()).unwrap_or(1)
    }

    pub fn to_payload(&self) -> Value {
        fn json<T: Serialize>(v: &T) -> Value {
            // Plain structs of integers, strings, bools and unit enums always serialize.
            serde_json::to_value(v).expect("cannot fail: wire structs always serialize")
        }
        match self {
            WireUserEvent::Deposited(p) | WireUserEvent::Withdrawn(p) | WireUserEvent::SettlementConfirmed(p) => {
                json(p)
            }
            WireUserEvent::OrderPlaced(p) => json(p),
            WireUserEvent::OrderAcknowledged(p) | WireUserEvent::CancelRequested(p) => json(p),
            WireUserEvent::CancelRejected(p) => json(p),
            WireUserEvent::AmendRequested(p) => json(p),
            WireUserEvent::AmendApplied(p) => json(p),
            WireUserEvent::AmendReverted(p) => json(p),
            WireUserEvent::FillApplied(p) => json(p),
            WireUserEvent::OrderReleased(p) => json(p),
            WireUserEvent::OrderClosed(p) => json(p),
            WireUserEvent::TradeVoided(p) => json(p),
            WireUserEvent::DepositCredited(p) => json(p),
            WireUserEvent::WithdrawalRequested(p) => json(p),
            WireUserEvent::WithdrawalCompleted(p) | WireUserEvent::WithdrawalFailed(p) => json(p),
        }
    }

    /// Decodes a stored payload written at `schema_version`, upcasting it first.
    pub fn from_payload(event_type: &str, schema_version: u16, payload: Value) -> Result<Self, PayloadError> {
        if current_user_schema_version(event_type).is_none() {
            return Err(PayloadError::UnknownEventType(event_type.to_owned()));
        }
        let payload = upcast_to_current(event_type, schema_version, payload)?;
        let json = |source| PayloadError::Json { event_type: event_type.to_owned(), source };
        Self::by_type(event_type, payload)
            .map_err(json)?
            .ok_or_else(|| PayloadError::UnknownEventType(event_type.to_owned()))
    }

    /// Decodes the stored text of an event at any known schema version. At the current version
    /// it reads the text straight into the wire struct, with no `Value` per event (replay and
    /// `hob audit` read millions); an older version goes through its upcasters.
    pub fn from_bytes(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Self, PayloadError> {
        let current = current_user_schema_version(event_type)
            .ok_or_else(|| PayloadError::UnknownEventType(event_type.to_owned()))?;
        let json = |source| PayloadError::Json { event_type: event_type.to_owned(), source };
        if schema_version != current {
            let value = serde_json::from_slice(payload).map_err(json)?;
            return WireUserEvent::from_payload(event_type, schema_version, value);
        }
        let mut de = serde_json::Deserializer::from_slice(payload);
        let event = WireUserEvent::by_type(event_type, &mut de).map_err(json)?;
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
            DEPOSITED => WireUserEvent::Deposited(Deserialize::deserialize(d)?),
            WITHDRAWN => WireUserEvent::Withdrawn(Deserialize::deserialize(d)?),
            ORDER_PLACED => WireUserEvent::OrderPlaced(Deserialize::deserialize(d)?),
            ORDER_ACKNOWLEDGED => WireUserEvent::OrderAcknowledged(Deserialize::deserialize(d)?),
            CANCEL_REQUESTED => WireUserEvent::CancelRequested(Deserialize::deserialize(d)?),
            CANCEL_REJECTED => WireUserEvent::CancelRejected(Deserialize::deserialize(d)?),
            AMEND_REQUESTED => WireUserEvent::AmendRequested(Deserialize::deserialize(d)?),
            AMEND_APPLIED => WireUserEvent::AmendApplied(Deserialize::deserialize(d)?),
            AMEND_REVERTED => WireUserEvent::AmendReverted(Deserialize::deserialize(d)?),
            FILL_APPLIED => WireUserEvent::FillApplied(Deserialize::deserialize(d)?),
            ORDER_RELEASED => WireUserEvent::OrderReleased(Deserialize::deserialize(d)?),
            ORDER_CLOSED => WireUserEvent::OrderClosed(Deserialize::deserialize(d)?),
            SETTLEMENT_CONFIRMED => WireUserEvent::SettlementConfirmed(Deserialize::deserialize(d)?),
            TRADE_VOIDED => WireUserEvent::TradeVoided(Deserialize::deserialize(d)?),
            DEPOSIT_CREDITED => WireUserEvent::DepositCredited(Deserialize::deserialize(d)?),
            WITHDRAWAL_REQUESTED => WireUserEvent::WithdrawalRequested(Deserialize::deserialize(d)?),
            WITHDRAWAL_COMPLETED => WireUserEvent::WithdrawalCompleted(Deserialize::deserialize(d)?),
            WITHDRAWAL_FAILED => WireUserEvent::WithdrawalFailed(Deserialize::deserialize(d)?),
            _ => return Ok(None),
        }))
    }
}

/// Encodes a user event at its current schema version.
pub fn encode_user_event(event: &UserEvent) -> EncodedUserEvent {
    let wire = WireUserEvent::from(event);
    EncodedUserEvent {
        event_type: wire.event_type(),
        schema_version: wire.schema_version(),
        payload: wire.to_payload(),
    }
}

/// Decodes a stored user event from its payload text (any known schema version).
pub fn decode_user_event_bytes(
    event_type: &str,
    schema_version: u16,
    payload: &[u8],
) -> Result<UserEvent, PayloadError> {
    domain_event(event_type, WireUserEvent::from_bytes(event_type, schema_version, payload)?)
}

/// Decodes a stored user event of any known schema version. A value that parses but is not
/// valid (an asset symbol with spaces, an inconsistent market spec) is a schema mismatch.
pub fn decode_user_event(event_type: &str, schema_version: u16, payload: Value) -> Result<UserEvent, PayloadError> {
    domain_event(event_type, WireUserEvent::from_payload(event_type, schema_version, payload)?)
}

fn domain_event(event_type: &str, wire: WireUserEvent) -> Result<UserEvent, PayloadError> {
    UserEvent::try_from(wire).map_err(|e| match e {
        UserPayloadError::Payload(p) => p,
        other => PayloadError::Json {
            event_type: event_type.to_owned(),
            source: <serde_json::Error as serde::de::Error>::custom(other.to_string()),
        },
    })
}

// ---------------------------------------------------------------------------------------
// Field conversions

fn asset_from_wire(field: &'static str, s: &str) -> Result<AssetId, UserPayloadError> {
    AssetId::new(s).map_err(|e| UserPayloadError::Invalid { field, reason: e.to_string() })
}

fn market_from_wire(field: &'static str, s: &str) -> Result<MarketId, UserPayloadError> {
    MarketId::new(s).map_err(|e| UserPayloadError::Invalid { field, reason: e.to_string() })
}

fn client_from_wire(field: &'static str, s: &Option<String>) -> Result<Option<ClientOrderId>, UserPayloadError> {
    s.as_deref()
        .map(|s| ClientOrderId::new(s).map_err(|e| UserPayloadError::Invalid { field, reason: e.to_string() }))
        .transpose()
}

fn amount(field: &'static str, s: &str) -> Result<crate::domain::Amount, UserPayloadError> {
    Ok(amount_from_wire(field, s)?)
}

fn reject_from_wire(s: &str) -> Result<RejectReason, UserPayloadError> {
    Ok(code_from_wire("reason", RejectReason::from_code, s)?)
}

impl From<&OrderLock> for WireLock {
    fn from(l: &OrderLock) -> Self {
        WireLock {
            side: side_to_wire(l.side),
            asset: l.asset.to_string(),
            amount: l.amount.0.to_string(),
            qty_lots: l.qty.0,
            limit_ticks: l.limit.0,
            fee_bps: l.fee_rate.0,
        }
    }
}

impl TryFrom<&WireLock> for OrderLock {
    type Error = UserPayloadError;
    fn try_from(w: &WireLock) -> Result<Self, UserPayloadError> {
        Ok(OrderLock {
            side: side_from_wire(w.side),
            asset: asset_from_wire("lock.asset", &w.asset)?,
            amount: amount("lock.amount", &w.amount)?,
            qty: QtyLots(w.qty_lots),
            limit: PriceTicks(w.limit_ticks),
            fee_rate: Bps(w.fee_bps),
        })
    }
}

impl From<&MarketSpec> for WireSpec {
    fn from(s: &MarketSpec) -> Self {
        WireSpec {
            id: s.id.to_string(),
            base: s.base.to_string(),
            quote: s.quote.to_string(),
            base_lot: s.base_lot.0.to_string(),
            quote_tick: s.quote_tick.0.to_string(),
            min_qty_lots: s.min_qty.0,
            max_qty_lots: s.max_qty.0,
            min_notional: s.min_notional.0.to_string(),
            maker_fee_bps: s.maker_fee.0,
            taker_fee_bps: s.taker_fee.0,
        }
    }
}

impl TryFrom<&WireSpec> for MarketSpec {
    type Error = UserPayloadError;
    fn try_from(w: &WireSpec) -> Result<Self, UserPayloadError> {
        let spec = MarketSpec {
            id: market_from_wire("spec.id", &w.id)?,
            base: asset_from_wire("spec.base", &w.base)?,
            quote: asset_from_wire("spec.quote", &w.quote)?,
            base_lot: amount("spec.base_lot", &w.base_lot)?,
            quote_tick: amount("spec.quote_tick", &w.quote_tick)?,
            min_qty: QtyLots(w.min_qty_lots),
            max_qty: QtyLots(w.max_qty_lots),
            min_notional: amount("spec.min_notional", &w.min_notional)?,
            maker_fee: Bps(w.maker_fee_bps),
            taker_fee: Bps(w.taker_fee_bps),
        };
        spec.validate().map_err(|e| UserPayloadError::Invalid { field: "spec", reason: e.to_string() })?;
        Ok(spec)
    }
}

fn release_to_wire(r: ReleaseReason) -> (String, String) {
    let (kind, code) = match r {
        ReleaseReason::Cancelled(c) => ("cancelled", c.code()),
        ReleaseReason::Expired(e) => ("expired", e.code()),
        ReleaseReason::Rejected(r) => ("rejected", r.code()),
    };
    (kind.to_owned(), code.to_owned())
}

fn release_from_wire(kind: &str, code: &str) -> Result<ReleaseReason, UserPayloadError> {
    Ok(match kind {
        "cancelled" => ReleaseReason::Cancelled(code_from_wire("code", CancelReason::from_code, code)?),
        "expired" => ReleaseReason::Expired(code_from_wire("code", ExpireReason::from_code, code)?),
        "rejected" => ReleaseReason::Rejected(reject_from_wire(code)?),
        other => {
            return Err(PayloadError::UnknownCode { field: "kind", value: other.chars().take(64).collect() }.into())
        }
    })
}

fn deposit_from_wire(field: &'static str, s: &str) -> Result<DepositId, UserPayloadError> {
    DepositId::parse(s).ok_or_else(|| UserPayloadError::Invalid {
        field,
        reason: format!("not a deposit id: {:?}", s.chars().take(80).collect::<String>()),
    })
}

impl From<&UserEvent> for WireUserEvent {
    fn from(e: &UserEvent) -> Self {
        let asset_amount = |asset: &AssetId, amount: &crate::domain::Amount| WireAssetAmount {
            asset: asset.to_string(),
            amount: amount.0.to_string(),
        };
        let order_ref =
            |market: &MarketId, order: &OrderId| WireOrderRef { market: market.to_string(), order_id: order.0 };
        match e {
            UserEvent::Deposited { asset, amount } => WireUserEvent::Deposited(asset_amount(asset, amount)),
            UserEvent::Withdrawn { asset, amount } => WireUserEvent::Withdrawn(asset_amount(asset, amount)),
            UserEvent::SettlementConfirmed { asset, amount } => {
                WireUserEvent::SettlementConfirmed(asset_amount(asset, amount))
            }
            UserEvent::DepositCredited { deposit, asset, amount } => {
                WireUserEvent::DepositCredited(WireDepositCredited {
                    deposit: deposit.to_string(),
                    asset: asset.to_string(),
                    amount: amount.0.to_string(),
                })
            }
            UserEvent::WithdrawalRequested { nonce, asset, amount, auth } => {
                WireUserEvent::WithdrawalRequested(WireWithdrawalRequested {
                    nonce: *nonce,
                    asset: asset.to_string(),
                    amount: amount.0.to_string(),
                    auth: auth.as_str().to_owned(),
                })
            }
            UserEvent::WithdrawalCompleted { nonce, asset, amount } => {
                WireUserEvent::WithdrawalCompleted(WireWithdrawalEnded {
                    nonce: *nonce,
                    asset: asset.to_string(),
                    amount: amount.0.to_string(),
                    reason: None,
                })
            }
            UserEvent::WithdrawalFailed { nonce, asset, amount, reason } => {
                WireUserEvent::WithdrawalFailed(WireWithdrawalEnded {
                    nonce: *nonce,
                    asset: asset.to_string(),
                    amount: amount.0.to_string(),
                    reason: Some(reason.clone()),
                })
            }
            UserEvent::OrderPlaced { market, order, client_order_id, nonce, lock, spec, auth } => {
                WireUserEvent::OrderPlaced(WireOrderPlaced {
                    market: market.to_string(),
                    order: order.into(),
                    client_order_id: client_order_id.as_ref().map(|c| c.as_str().to_owned()),
                    nonce: *nonce,
                    lock: lock.into(),
                    spec: spec.into(),
                    auth: auth.as_ref().map(|a| a.as_str().to_owned()),
                })
            }
            UserEvent::OrderAcknowledged { market, order } => {
                WireUserEvent::OrderAcknowledged(order_ref(market, order))
            }
            UserEvent::CancelRequested { market, order } => WireUserEvent::CancelRequested(order_ref(market, order)),
            UserEvent::CancelRejected { market, order, reason } => WireUserEvent::CancelRejected(WireCancelRejected {
                market: market.to_string(),
                order_id: order.0,
                reason: reason.code().to_owned(),
            }),
            UserEvent::AmendRequested { market, order, price, qty, previous, lock, signed } => {
                WireUserEvent::AmendRequested(WireAmendRequested {
                    market: market.to_string(),
                    order_id: order.0,
                    price_ticks: price.0,
                    qty_lots: qty.0,
                    previous: previous.into(),
                    lock: lock.into(),
                    nonce: signed.as_ref().map(|s| s.nonce),
                    auth: signed.as_ref().map(|s| s.auth.as_str().to_owned()),
                })
            }
            UserEvent::AmendApplied { market, order, price, qty, lock } => {
                WireUserEvent::AmendApplied(WireAmendApplied {
                    market: market.to_string(),
                    order_id: order.0,
                    price_ticks: price.0,
                    qty_lots: qty.0,
                    lock: lock.into(),
                })
            }
            UserEvent::AmendReverted { market, order, reason, lock } => {
                WireUserEvent::AmendReverted(WireAmendReverted {
                    market: market.to_string(),
                    order_id: order.0,
                    reason: reason.code().to_owned(),
                    lock: lock.into(),
                })
            }
            UserEvent::FillApplied { market, order, trade } => WireUserEvent::FillApplied(WireFillApplied {
                market: market.to_string(),
                order_id: order.0,
                trade: trade.into(),
            }),
            UserEvent::OrderReleased { market, order, amount, reason } => {
                let (kind, code) = release_to_wire(*reason);
                WireUserEvent::OrderReleased(WireOrderReleased {
                    market: market.to_string(),
                    order_id: order.0,
                    amount: amount.0.to_string(),
                    kind,
                    code,
                })
            }
            UserEvent::OrderClosed { market, order, released } => WireUserEvent::OrderClosed(WireOrderClosed {
                market: market.to_string(),
                order_id: order.0,
                released: released.0.to_string(),
            }),
            UserEvent::TradeVoided { market, order, trade, reclaimed_asset, reclaimed, restored_asset, restored } => {
                WireUserEvent::TradeVoided(WireTradeVoided {
                    market: market.to_string(),
                    order_id: order.0,
                    trade_id: trade.0,
                    reclaimed: asset_amount(reclaimed_asset, reclaimed),
                    restored: asset_amount(restored_asset, restored),
                })
            }
        }
    }
}

impl TryFrom<WireUserEvent> for UserEvent {
    type Error = UserPayloadError;
    fn try_from(w: WireUserEvent) -> Result<Self, UserPayloadError> {
        let market = |s: &str| market_from_wire("market", s);
        Ok(match w {
            WireUserEvent::Deposited(a) => UserEvent::Deposited {
                asset: asset_from_wire("asset", &a.asset)?,
                amount: amount("amount", &a.amount)?,
            },
            WireUserEvent::Withdrawn(a) => UserEvent::Withdrawn {
                asset: asset_from_wire("asset", &a.asset)?,
                amount: amount("amount", &a.amount)?,
            },
            WireUserEvent::SettlementConfirmed(a) => UserEvent::SettlementConfirmed {
                asset: asset_from_wire("asset", &a.asset)?,
                amount: amount("amount", &a.amount)?,
            },
            WireUserEvent::DepositCredited(d) => UserEvent::DepositCredited {
                deposit: deposit_from_wire("deposit", &d.deposit)?,
                asset: asset_from_wire("asset", &d.asset)?,
                amount: amount("amount", &d.amount)?,
            },
            WireUserEvent::WithdrawalRequested(w) => UserEvent::WithdrawalRequested {
                nonce: w.nonce,
                asset: asset_from_wire("asset", &w.asset)?,
                amount: amount("amount", &w.amount)?,
                auth: WithdrawalAuth::new(w.auth),
            },
            WireUserEvent::WithdrawalCompleted(w) => UserEvent::WithdrawalCompleted {
                nonce: w.nonce,
                asset: asset_from_wire("asset", &w.asset)?,
                amount: amount("amount", &w.amount)?,
            },
            WireUserEvent::WithdrawalFailed(w) => UserEvent::WithdrawalFailed {
                nonce: w.nonce,
                asset: asset_from_wire("asset", &w.asset)?,
                amount: amount("amount", &w.amount)?,
                reason: w.reason.unwrap_or_default(),
            },
            WireUserEvent::OrderPlaced(p) => UserEvent::OrderPlaced {
                market: market(&p.market)?,
                order: NewOrder::try_from(&p.order)?,
                client_order_id: client_from_wire("client_order_id", &p.client_order_id)?,
                nonce: p.nonce,
                lock: (&p.lock).try_into()?,
                spec: (&p.spec).try_into()?,
                auth: p.auth.as_deref().map(OrderAuth::new),
            },
            WireUserEvent::OrderAcknowledged(r) => {
                UserEvent::OrderAcknowledged { market: market(&r.market)?, order: OrderId(r.order_id) }
            }
            WireUserEvent::CancelRequested(r) => {
                UserEvent::CancelRequested { market: market(&r.market)?, order: OrderId(r.order_id) }
            }
            WireUserEvent::CancelRejected(r) => UserEvent::CancelRejected {
                market: market(&r.market)?,
                order: OrderId(r.order_id),
                reason: reject_from_wire(&r.reason)?,
            },
            WireUserEvent::AmendRequested(a) => UserEvent::AmendRequested {
                market: market(&a.market)?,
                order: OrderId(a.order_id),
                price: PriceTicks(a.price_ticks),
                qty: QtyLots(a.qty_lots),
                previous: (&a.previous).try_into()?,
                lock: (&a.lock).try_into()?,
                signed: match (a.nonce, &a.auth) {
                    (Some(nonce), Some(auth)) => Some(AmendAuth { nonce, auth: OrderAuth::new(auth.as_str()) }),
                    (None, None) => None,
                    _ => {
                        return Err(UserPayloadError::Invalid {
                            field: "auth",
                            reason: "a signed amend has both nonce and auth, an unsigned one neither".into(),
                        })
                    }
                },
            },
            WireUserEvent::AmendApplied(a) => UserEvent::AmendApplied {
                market: market(&a.market)?,
                order: OrderId(a.order_id),
                price: PriceTicks(a.price_ticks),
                qty: QtyLots(a.qty_lots),
                lock: (&a.lock).try_into()?,
            },
            WireUserEvent::AmendReverted(a) => UserEvent::AmendReverted {
                market: market(&a.market)?,
                order: OrderId(a.order_id),
                reason: reject_from_wire(&a.reason)?,
                lock: (&a.lock).try_into()?,
            },
            WireUserEvent::FillApplied(f) => UserEvent::FillApplied {
                market: market(&f.market)?,
                order: OrderId(f.order_id),
                trade: Trade::try_from(&f.trade)?,
            },
            WireUserEvent::OrderReleased(r) => UserEvent::OrderReleased {
                market: market(&r.market)?,
                order: OrderId(r.order_id),
                amount: amount("amount", &r.amount)?,
                reason: release_from_wire(&r.kind, &r.code)?,
            },
            WireUserEvent::OrderClosed(c) => UserEvent::OrderClosed {
                market: market(&c.market)?,
                order: OrderId(c.order_id),
                released: amount("released", &c.released)?,
            },
            WireUserEvent::TradeVoided(v) => UserEvent::TradeVoided {
                market: market(&v.market)?,
                order: OrderId(v.order_id),
                trade: TradeId(v.trade_id),
                reclaimed_asset: asset_from_wire("reclaimed.asset", &v.reclaimed.asset)?,
                reclaimed: amount("reclaimed.amount", &v.reclaimed.amount)?,
                restored_asset: asset_from_wire("restored.asset", &v.restored.asset)?,
                restored: amount("restored.amount", &v.restored.amount)?,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Snapshot

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WireUserSnapshot {
    snapshot_version: u16,
    user: String,
    balances: Vec<WireBalance>,
    orders: Vec<WireOpenOrder>,
    nonces: Vec<u64>,
    closed_client_ids: Vec<WireClientId>,
    markets: Vec<WireHeldMarket>,
    /// Absent in snapshots written before deposits and withdrawals went on-chain.
    #[serde(default)]
    transfers: WireTransfers,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct WireTransfers {
    credited: Vec<String>,
    used_nonces: Vec<u64>,
    pending: Vec<WirePendingWithdrawal>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WirePendingWithdrawal {
    nonce: u64,
    asset: String,
    amount: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WireBalance {
    asset: String,
    available: String,
    locked: String,
    settling: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WirePending {
    Amend { price_ticks: u64, qty_lots: u64, previous: WireLock },
    Cancel,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WireOpenOrder {
    market: String,
    order: WireAccepted,
    price_ticks: Option<u64>,
    qty_lots: u64,
    client_order_id: Option<String>,
    nonce: u64,
    /// `sent` or `working`.
    status: String,
    pending: Vec<WirePending>,
    lock: Option<WireLock>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WireClientId {
    client_order_id: String,
    order_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WireHeldMarket {
    spec: WireSpec,
    last_trade: Option<u64>,
    open_orders: u64,
}

/// The user's whole state as JSON, every collection in a fixed order.
pub fn encode_user_snapshot(state: &UserState) -> Vec<u8> {
    let parts = state.to_parts();
    let wire = WireUserSnapshot {
        snapshot_version: USER_SNAPSHOT_VERSION,
        user: parts.user.to_string(),
        balances: parts
            .balances
            .iter()
            .map(|(asset, b)| WireBalance {
                asset: asset.to_string(),
                available: b.available.0.to_string(),
                locked: b.locked.0.to_string(),
                settling: b.settling.0.to_string(),
            })
            .collect(),
        orders: parts
            .orders
            .iter()
            .map(|(o, lock)| WireOpenOrder {
                market: o.market.to_string(),
                order: (&o.order).into(),
                price_ticks: o.price.map(|p| p.0),
                qty_lots: o.qty.0,
                client_order_id: o.client_order_id.as_ref().map(|c| c.as_str().to_owned()),
                nonce: o.nonce,
                status: match o.status {
                    OrderStatus::Sent => "sent",
                    OrderStatus::Working => "working",
                }
                .to_owned(),
                pending: o
                    .pending
                    .iter()
                    .map(|p| match p {
                        PendingRequest::Amend { price, qty, previous } => {
                            WirePending::Amend { price_ticks: price.0, qty_lots: qty.0, previous: previous.into() }
                        }
                        PendingRequest::Cancel => WirePending::Cancel,
                    })
                    .collect(),
                lock: lock.as_ref().map(WireLock::from),
            })
            .collect(),
        nonces: parts.nonces.clone(),
        closed_client_ids: parts
            .closed_client_ids
            .iter()
            .map(|(c, o)| WireClientId { client_order_id: c.as_str().to_owned(), order_id: o.0 })
            .collect(),
        markets: parts
            .markets
            .iter()
            .map(|m| WireHeldMarket {
                spec: (&m.spec).into(),
                last_trade: m.last_trade.map(|t| t.0),
                open_orders: m.open_orders as u64,
            })
            .collect(),
        transfers: WireTransfers {
            credited: parts.transfers.credited.iter().map(|d| d.to_string()).collect(),
            used_nonces: parts.transfers.used_nonces.clone(),
            pending: parts
                .transfers
                .pending
                .iter()
                .map(|(n, p)| WirePendingWithdrawal {
                    nonce: *n,
                    asset: p.asset.to_string(),
                    amount: p.amount.0.to_string(),
                })
                .collect(),
        },
    };
    // Plain structs of integers, strings and options always serialize.
    serde_json::to_vec(&wire).expect("cannot fail: snapshot wire structs always serialize")
}

/// Restores a state written by [`encode_user_snapshot`], checking every value.
pub fn decode_user_snapshot(bytes: &[u8]) -> Result<UserState, UserPayloadError> {
    let wire: WireUserSnapshot = serde_json::from_slice(bytes).map_err(UserPayloadError::SnapshotJson)?;
    if wire.snapshot_version != USER_SNAPSHOT_VERSION {
        return Err(UserPayloadError::SnapshotVersion(wire.snapshot_version));
    }
    let mut balances = Vec::with_capacity(wire.balances.len());
    for b in &wire.balances {
        balances.push((
            asset_from_wire("balances.asset", &b.asset)?,
            Balance {
                available: amount("balances.available", &b.available)?,
                locked: amount("balances.locked", &b.locked)?,
                settling: amount("balances.settling", &b.settling)?,
            },
        ));
    }
    let mut orders = Vec::with_capacity(wire.orders.len());
    for o in &wire.orders {
        let mut pending = Vec::with_capacity(o.pending.len());
        for p in &o.pending {
            pending.push(match p {
                WirePending::Amend { price_ticks, qty_lots, previous } => PendingRequest::Amend {
                    price: PriceTicks(*price_ticks),
                    qty: QtyLots(*qty_lots),
                    previous: previous.try_into()?,
                },
                WirePending::Cancel => PendingRequest::Cancel,
            });
        }
        let status = match o.status.as_str() {
            "sent" => OrderStatus::Sent,
            "working" => OrderStatus::Working,
            other => {
                return Err(
                    PayloadError::UnknownCode { field: "status", value: other.chars().take(64).collect() }.into()
                )
            }
        };
        let open = OpenOrder {
            market: market_from_wire("orders.market", &o.market)?,
            order: NewOrder::try_from(&o.order)?,
            price: o.price_ticks.map(PriceTicks),
            qty: QtyLots(o.qty_lots),
            client_order_id: client_from_wire("orders.client_order_id", &o.client_order_id)?,
            nonce: o.nonce,
            status,
            pending,
        };
        orders.push((open, o.lock.as_ref().map(OrderLock::try_from).transpose()?));
    }
    let mut closed_client_ids = Vec::with_capacity(wire.closed_client_ids.len());
    for c in &wire.closed_client_ids {
        let id = client_from_wire("closed_client_ids", &Some(c.client_order_id.clone()))?;
        if let Some(id) = id {
            closed_client_ids.push((id, OrderId(c.order_id)));
        }
    }
    let mut markets = Vec::with_capacity(wire.markets.len());
    for m in &wire.markets {
        let open_orders = usize::try_from(m.open_orders)
            .map_err(|e| UserPayloadError::Invalid { field: "markets.open_orders", reason: e.to_string() })?;
        markets.push(HeldMarket { spec: (&m.spec).try_into()?, last_trade: m.last_trade.map(TradeId), open_orders });
    }
    let mut transfers = TransfersParts::default();
    for d in &wire.transfers.credited {
        transfers.credited.push(deposit_from_wire("transfers.credited", d)?);
    }
    transfers.used_nonces = wire.transfers.used_nonces;
    for p in &wire.transfers.pending {
        let pending = PendingWithdrawal {
            asset: asset_from_wire("transfers.pending.asset", &p.asset)?,
            amount: amount("transfers.pending.amount", &p.amount)?,
        };
        transfers.pending.push((p.nonce, pending));
    }
    let parts = UserStateParts {
        user: user_from_wire("user", &wire.user)?,
        balances,
        orders,
        nonces: wire.nonces,
        closed_client_ids,
        markets,
        transfers,
    };
    Ok(UserState::from_parts(parts)?)
}

#[cfg(test)]
#[path = "../../unit_tests/events/user_payload.rs"]
mod tests;
