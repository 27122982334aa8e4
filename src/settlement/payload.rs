//! Wire types of the operator's events (stream `operator:{address}`), apart from the state's
//! types for the reason `events/payload.rs` gives: a stored payload is a compatibility
//! promise. Amounts and prices are decimal strings, hashes and signed bytes `0x` hex.

use alloy::primitives::{Bytes, B256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::nonce::{Attempt, NonceEvent, Resolution, TxPurpose};
use super::state::{OperatorEvent, VoidReason};
use super::trades::{QueuedTrade, TradeKey};
use super::withdrawals::{queued_from_value, queued_to_value, WithdrawalKey};
use crate::domain::{MarketId, OrderAuth, OrderId, Trade, TradeId, UserId};
use crate::events::payload::WireTraded;

pub const TRADE_QUEUED: &str = "operator.TradeQueued";
pub const BATCH_OPENED: &str = "operator.BatchOpened";
pub const TX_SIGNED: &str = "operator.TxSigned";
pub const TX_FINAL: &str = "operator.TxFinal";
pub const NONCE_SYNCED: &str = "operator.NonceSynced";
pub const CHAIN_INDEX_SYNCED: &str = "operator.ChainIndexSynced";
pub const ATTEMPT_FAILED: &str = "operator.AttemptFailed";
pub const SETTLEMENT_CONFIRMED: &str = "operator.SettlementConfirmed";
pub const TRADE_VOIDED: &str = "operator.TradeVoided";
pub const SETTLEMENT_FAILED: &str = "operator.SettlementFailed";
pub const WITHDRAWAL_QUEUED: &str = "operator.WithdrawalQueued";
pub const WITHDRAWAL_COMPLETED: &str = "operator.WithdrawalCompleted";
pub const WITHDRAWAL_FAILED: &str = "operator.WithdrawalFailed";

/// Every operator event type; all at schema version 1.
pub const OPERATOR_EVENT_TYPES: &[&str] = &[
    TRADE_QUEUED,
    BATCH_OPENED,
    TX_SIGNED,
    TX_FINAL,
    NONCE_SYNCED,
    CHAIN_INDEX_SYNCED,
    ATTEMPT_FAILED,
    SETTLEMENT_CONFIRMED,
    TRADE_VOIDED,
    SETTLEMENT_FAILED,
    WITHDRAWAL_QUEUED,
    WITHDRAWAL_COMPLETED,
    WITHDRAWAL_FAILED,
];

pub const OPERATOR_SCHEMA_VERSION: u16 = 1;

#[derive(Debug, thiserror::Error)]
pub enum OperatorPayloadError {
    #[error("unknown operator event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} v{version}: no such schema version")]
    Version { event_type: String, version: u16 },
    #[error("{event_type}: {reason}")]
    Invalid { event_type: String, reason: String },
}

#[derive(Serialize, Deserialize)]
struct WireKey {
    market: String,
    trade_id: u64,
}

#[derive(Serialize, Deserialize)]
struct WireTradeQueued {
    market: String,
    trade: WireTraded,
    maker_auth: Option<String>,
    taker_auth: Option<String>,
    queued_at_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct WireBatchOpened {
    batch: u64,
    trades: Vec<WireKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WirePurpose {
    Batch { batch: u64, chain_index: u64 },
    Filler,
    Withdrawal { user: String, nonce: u64 },
}

#[derive(Serialize, Deserialize)]
struct WireWithdrawalEnded {
    user: String,
    nonce: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tx_hash: Option<B256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireTxSigned {
    nonce: u64,
    tx_hash: B256,
    gas_price: String,
    gas_limit: u64,
    purpose: WirePurpose,
    raw: Bytes,
    signed_at_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireResolution {
    Mined { tx_hash: B256, block: u64, success: bool, gas_used: u64 },
    Superseded,
}

#[derive(Serialize, Deserialize)]
struct WireTxFinal {
    nonce: u64,
    resolution: WireResolution,
}

#[derive(Serialize, Deserialize)]
struct WireNext {
    next: u64,
}

#[derive(Serialize, Deserialize)]
struct WireAttemptFailed {
    batch: u64,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct WireSettlementConfirmed {
    batch: u64,
    chain_index: u64,
    tx_hash: B256,
    block: u64,
    trades: Vec<WireKey>,
}

#[derive(Serialize, Deserialize)]
struct WireTradeVoided {
    market: String,
    trade: WireTraded,
    reason: String,
    detail: String,
    batch: Option<u64>,
    order_id: Option<u64>,
}

/// An operator event ready for an envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedOperatorEvent {
    pub event_type: &'static str,
    pub schema_version: u16,
    pub payload: Value,
}

fn key_to_wire(k: &TradeKey) -> WireKey {
    WireKey { market: k.market.to_string(), trade_id: k.trade.0 }
}

pub fn encode_operator_event(event: &OperatorEvent) -> EncodedOperatorEvent {
    fn json<T: Serialize>(v: T) -> Value {
        // Plain structs of integers, strings, hex bytes and unit enums always serialize.
        serde_json::to_value(v).unwrap_or(Value::Null)
    }
    let (event_type, payload) = match event {
        OperatorEvent::TradeQueued { trade, queued_at_ms } => (
            TRADE_QUEUED,
            json(WireTradeQueued {
                market: trade.market.to_string(),
                trade: (&trade.trade).into(),
                maker_auth: trade.maker_auth.as_ref().map(|a| a.as_str().to_owned()),
                taker_auth: trade.taker_auth.as_ref().map(|a| a.as_str().to_owned()),
                queued_at_ms: *queued_at_ms,
            }),
        ),
        OperatorEvent::BatchOpened { batch, trades } => {
            (BATCH_OPENED, json(WireBatchOpened { batch: *batch, trades: trades.iter().map(key_to_wire).collect() }))
        }
        OperatorEvent::Nonce(NonceEvent::Signed { nonce, attempt }) => (
            TX_SIGNED,
            json(WireTxSigned {
                nonce: *nonce,
                tx_hash: attempt.hash,
                gas_price: attempt.gas_price.to_string(),
                gas_limit: attempt.gas_limit,
                purpose: match attempt.purpose {
                    TxPurpose::Batch { batch, chain_index } => WirePurpose::Batch { batch, chain_index },
                    TxPurpose::Filler => WirePurpose::Filler,
                    TxPurpose::Withdrawal { user, nonce } => WirePurpose::Withdrawal { user: user.to_string(), nonce },
                },
                raw: attempt.raw.clone(),
                signed_at_ms: attempt.signed_at_ms,
            }),
        ),
        OperatorEvent::Nonce(NonceEvent::Final { nonce, resolution }) => (
            TX_FINAL,
            json(WireTxFinal {
                nonce: *nonce,
                resolution: match *resolution {
                    Resolution::Mined { hash, block, success, gas_used } => {
                        WireResolution::Mined { tx_hash: hash, block, success, gas_used }
                    }
                    Resolution::Superseded => WireResolution::Superseded,
                },
            }),
        ),
        OperatorEvent::Nonce(NonceEvent::Synced { next }) => (NONCE_SYNCED, json(WireNext { next: *next })),
        OperatorEvent::ChainIndexSynced { next } => (CHAIN_INDEX_SYNCED, json(WireNext { next: *next })),
        OperatorEvent::AttemptFailed { batch, reason } => {
            (ATTEMPT_FAILED, json(WireAttemptFailed { batch: *batch, reason: reason.clone() }))
        }
        OperatorEvent::SettlementConfirmed { batch, chain_index, tx, block, trades } => (
            SETTLEMENT_CONFIRMED,
            json(WireSettlementConfirmed {
                batch: *batch,
                chain_index: *chain_index,
                tx_hash: *tx,
                block: *block,
                trades: trades.iter().map(key_to_wire).collect(),
            }),
        ),
        OperatorEvent::TradeVoided { trade, key, reason, detail, batch, order } => (
            TRADE_VOIDED,
            json(WireTradeVoided {
                market: key.market.to_string(),
                trade: trade.into(),
                reason: reason.code().to_owned(),
                detail: detail.clone(),
                batch: *batch,
                order_id: order.map(|o| o.0),
            }),
        ),
        OperatorEvent::SettlementFailed { batch, reason } => {
            (SETTLEMENT_FAILED, json(WireAttemptFailed { batch: *batch, reason: reason.clone() }))
        }
        OperatorEvent::WithdrawalQueued { withdrawal } => (WITHDRAWAL_QUEUED, queued_to_value(withdrawal)),
        OperatorEvent::WithdrawalCompleted { key, tx, block } => (
            WITHDRAWAL_COMPLETED,
            json(WireWithdrawalEnded {
                user: key.user.to_string(),
                nonce: key.nonce,
                tx_hash: Some(*tx),
                block: Some(*block),
                reason: None,
            }),
        ),
        OperatorEvent::WithdrawalFailed { key, reason } => (
            WITHDRAWAL_FAILED,
            json(WireWithdrawalEnded {
                user: key.user.to_string(),
                nonce: key.nonce,
                tx_hash: None,
                block: None,
                reason: Some(reason.clone()),
            }),
        ),
    };
    EncodedOperatorEvent { event_type, schema_version: OPERATOR_SCHEMA_VERSION, payload }
}

/// Decodes a stored operator event, checking every value.
pub fn decode_operator_event(
    event_type: &str,
    schema_version: u16,
    payload: Value,
) -> Result<OperatorEvent, OperatorPayloadError> {
    let Some(&known) = OPERATOR_EVENT_TYPES.iter().find(|t| **t == event_type) else {
        return Err(OperatorPayloadError::UnknownType(event_type.to_owned()));
    };
    if schema_version != OPERATOR_SCHEMA_VERSION {
        return Err(OperatorPayloadError::Version { event_type: known.to_owned(), version: schema_version });
    }
    let invalid = |reason: String| OperatorPayloadError::Invalid { event_type: known.to_owned(), reason };
    fn parse<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
    let market = |s: &str| MarketId::new(s).map_err(|e| e.to_string());
    let key = |k: WireKey| -> Result<TradeKey, String> {
        Ok(TradeKey { market: market(&k.market)?, trade: TradeId(k.trade_id) })
    };
    let keys = |ks: Vec<WireKey>| ks.into_iter().map(key).collect::<Result<Vec<_>, _>>();
    let trade = |t: &WireTraded| Trade::try_from(t).map_err(|e| e.to_string());
    let decoded: Result<OperatorEvent, String> = (|| {
        Ok(match known {
            TRADE_QUEUED => {
                let w: WireTradeQueued = parse(payload)?;
                OperatorEvent::TradeQueued {
                    trade: QueuedTrade {
                        market: market(&w.market)?,
                        trade: trade(&w.trade)?,
                        maker_auth: w.maker_auth.map(OrderAuth::new),
                        taker_auth: w.taker_auth.map(OrderAuth::new),
                    },
                    queued_at_ms: w.queued_at_ms,
                }
            }
            BATCH_OPENED => {
                let w: WireBatchOpened = parse(payload)?;
                OperatorEvent::BatchOpened { batch: w.batch, trades: keys(w.trades)? }
            }
            TX_SIGNED => {
                let w: WireTxSigned = parse(payload)?;
                let gas_price = w.gas_price.parse::<u128>().map_err(|_| format!("gas_price {:?}", w.gas_price))?;
                let purpose = match w.purpose {
                    WirePurpose::Batch { batch, chain_index } => TxPurpose::Batch { batch, chain_index },
                    WirePurpose::Filler => TxPurpose::Filler,
                    WirePurpose::Withdrawal { user, nonce } => {
                        TxPurpose::Withdrawal { user: UserId::from_hex(&user).map_err(|e| e.to_string())?, nonce }
                    }
                };
                let attempt = Attempt {
                    hash: w.tx_hash,
                    gas_price,
                    gas_limit: w.gas_limit,
                    purpose,
                    raw: w.raw,
                    signed_at_ms: w.signed_at_ms,
                };
                OperatorEvent::Nonce(NonceEvent::Signed { nonce: w.nonce, attempt })
            }
            TX_FINAL => {
                let w: WireTxFinal = parse(payload)?;
                let resolution = match w.resolution {
                    WireResolution::Mined { tx_hash, block, success, gas_used } => {
                        Resolution::Mined { hash: tx_hash, block, success, gas_used }
                    }
                    WireResolution::Superseded => Resolution::Superseded,
                };
                OperatorEvent::Nonce(NonceEvent::Final { nonce: w.nonce, resolution })
            }
            NONCE_SYNCED => OperatorEvent::Nonce(NonceEvent::Synced { next: parse::<WireNext>(payload)?.next }),
            CHAIN_INDEX_SYNCED => OperatorEvent::ChainIndexSynced { next: parse::<WireNext>(payload)?.next },
            ATTEMPT_FAILED => {
                let w: WireAttemptFailed = parse(payload)?;
                OperatorEvent::AttemptFailed { batch: w.batch, reason: w.reason }
            }
            SETTLEMENT_CONFIRMED => {
                let w: WireSettlementConfirmed = parse(payload)?;
                OperatorEvent::SettlementConfirmed {
                    batch: w.batch,
                    chain_index: w.chain_index,
                    tx: w.tx_hash,
                    block: w.block,
                    trades: keys(w.trades)?,
                }
            }
            TRADE_VOIDED => {
                let w: WireTradeVoided = parse(payload)?;
                let t = trade(&w.trade)?;
                OperatorEvent::TradeVoided {
                    trade: t,
                    key: TradeKey { market: market(&w.market)?, trade: t.id },
                    reason: VoidReason::from_code(&w.reason).ok_or_else(|| format!("reason {:?}", w.reason))?,
                    detail: w.detail,
                    batch: w.batch,
                    order: w.order_id.map(OrderId),
                }
            }
            SETTLEMENT_FAILED => {
                let w: WireAttemptFailed = parse(payload)?;
                OperatorEvent::SettlementFailed { batch: w.batch, reason: w.reason }
            }
            WITHDRAWAL_QUEUED => OperatorEvent::WithdrawalQueued { withdrawal: queued_from_value(payload)? },
            WITHDRAWAL_COMPLETED | WITHDRAWAL_FAILED => {
                let w: WireWithdrawalEnded = parse(payload)?;
                let key = WithdrawalKey { user: UserId::from_hex(&w.user).map_err(|e| e.to_string())?, nonce: w.nonce };
                if known == WITHDRAWAL_FAILED {
                    OperatorEvent::WithdrawalFailed { key, reason: w.reason.unwrap_or_default() }
                } else {
                    OperatorEvent::WithdrawalCompleted {
                        key,
                        tx: w.tx_hash.ok_or("tx_hash")?,
                        block: w.block.ok_or("block")?,
                    }
                }
            }
            other => return Err(format!("no decoder for {other}")),
        })
    })();
    decoded.map_err(invalid)
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/payload.rs"]
mod tests;
