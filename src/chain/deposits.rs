//! The chain watcher's state and decisions, pure: which `Deposited` logs to credit, and how
//! far the chain has been read. A fold of the watcher's stream (`chain:{chain_id}`).
//!
//! Confirmations. The watcher only ever reads logs of blocks at least `confirmations` deep
//! (a block is 1 deep when it is the head). A deposit in a shallower block is not read at all,
//! so a reorg that drops it before it is deep enough leaves nothing to undo, and one that moves
//! it to another block is read where it finally lands. A reorg deeper than `confirmations` is
//! outside what the watcher defends against; choose the depth by the chain's finality.
//!
//! Idempotency. Each log is named by `(tx hash, log index)`: a log already decided (credited
//! or ignored) decides to nothing, so re-reading a range after a crash changes nothing, and
//! the user's own `DepositCredited` check makes a redelivered credit a no-op too.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::{Amount, AssetId, DepositId, UserId};

pub const SCANNED: &str = "chain.Scanned";
pub const DEPOSIT_CREDITED: &str = "chain.DepositCredited";
pub const DEPOSIT_IGNORED: &str = "chain.DepositIgnored";

/// One `Deposited(user, token, amount)` log as the node returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositLog {
    pub block: u64,
    pub deposit: DepositId,
    pub user: UserId,
    pub token: Address,
    /// As logged (a `uint256`); one beyond `u128` is ignored, never truncated.
    pub amount: alloy::primitives::U256,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatcherEvent {
    /// A deposit deep enough, credited to `user` (a user-queue record goes with it).
    DepositCredited { deposit: DepositId, block: u64, user: UserId, asset: AssetId, amount: Amount },
    /// A deposit the exchange cannot credit (a token no market trades, an amount beyond
    /// `u128`): recorded so an operator sees it, and never looked at again.
    DepositIgnored { deposit: DepositId, block: u64, user: UserId, token: Address, amount: String, reason: String },
    /// Every log up to and including `through` is decided.
    Scanned { through: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatcherApplyError {
    #[error("deposit {0} is already decided")]
    Duplicate(DepositId),
    #[error("scanned through {through}, but the cursor is already at {next}")]
    Backwards { through: u64, next: u64 },
}

/// How far the chain is read and which logs are decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherState {
    /// The first block not yet read.
    next_block: u64,
    decided: BTreeSet<DepositId>,
    credited: u64,
}

impl WatcherState {
    /// A watcher that starts reading at `start_block` (the exchange's deployment block, say).
    pub fn new(start_block: u64) -> WatcherState {
        WatcherState { next_block: start_block, decided: BTreeSet::new(), credited: 0 }
    }

    pub fn next_block(&self) -> u64 {
        self.next_block
    }

    pub fn credited(&self) -> u64 {
        self.credited
    }

    pub fn is_decided(&self, deposit: &DepositId) -> bool {
        self.decided.contains(deposit)
    }

    /// The last block deep enough to read with `head` the chain's latest block, if any.
    pub fn safe_block(head: u64, confirmations: u64) -> Option<u64> {
        // A block is 1 deep at the head; depth 0 is read as 1 (the head itself).
        head.checked_sub(confirmations.max(1) - 1)
    }

    /// The events that reading `logs` (every deposit log of blocks `next_block..=through`)
    /// produces. Logs outside the range or already decided decide to nothing.
    pub fn decide(&self, logs: &[DepositLog], through: u64, tokens: &BTreeMap<Address, AssetId>) -> Vec<WatcherEvent> {
        if through < self.next_block {
            return Vec::new();
        }
        let mut seen = BTreeSet::new();
        let mut events = Vec::new();
        for log in logs {
            let in_range = (self.next_block..=through).contains(&log.block);
            if !in_range || self.decided.contains(&log.deposit) || !seen.insert(log.deposit) {
                continue;
            }
            let ignored = |reason: &str| WatcherEvent::DepositIgnored {
                deposit: log.deposit,
                block: log.block,
                user: log.user,
                token: log.token,
                amount: log.amount.to_string(),
                reason: reason.to_owned(),
            };
            let event = match (tokens.get(&log.token), u128::try_from(log.amount)) {
                (None, _) => ignored("unknown_token"),
                (_, Err(_)) => ignored("amount_too_large"),
                (Some(_), Ok(0)) => ignored("zero_amount"),
                (Some(asset), Ok(amount)) => WatcherEvent::DepositCredited {
                    deposit: log.deposit,
                    block: log.block,
                    user: log.user,
                    asset: *asset,
                    amount: Amount(amount),
                },
            };
            events.push(event);
        }
        events.push(WatcherEvent::Scanned { through });
        events
    }

    pub fn apply(&mut self, event: &WatcherEvent) -> Result<(), WatcherApplyError> {
        match event {
            WatcherEvent::DepositCredited { deposit, .. } => {
                if !self.decided.insert(*deposit) {
                    return Err(WatcherApplyError::Duplicate(*deposit));
                }
                self.credited += 1;
            }
            WatcherEvent::DepositIgnored { deposit, .. } => {
                if !self.decided.insert(*deposit) {
                    return Err(WatcherApplyError::Duplicate(*deposit));
                }
            }
            WatcherEvent::Scanned { through } => {
                if *through < self.next_block {
                    return Err(WatcherApplyError::Backwards { through: *through, next: self.next_block });
                }
                self.next_block = through + 1;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Wire forms: the stored events and the user-queue record.

#[derive(Serialize, Deserialize)]
struct WireCredited {
    deposit: String,
    block: u64,
    user: String,
    asset: String,
    amount: String,
}

#[derive(Serialize, Deserialize)]
struct WireIgnored {
    deposit: String,
    block: u64,
    user: String,
    token: String,
    amount: String,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct WireScanned {
    through: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct WatcherPayloadError {
    pub what: String,
    pub detail: String,
}

fn bad(what: &str, detail: impl ToString) -> WatcherPayloadError {
    WatcherPayloadError { what: what.to_owned(), detail: detail.to_string() }
}

/// (event type, schema version, payload) of a watcher event.
pub fn encode_watcher_event(event: &WatcherEvent) -> (&'static str, u16, Value) {
    fn value<T: Serialize>(v: T) -> Value {
        // Structs of strings and integers always serialize.
        serde_json::to_value(v).unwrap_or(Value::Null)
    }
    match event {
        WatcherEvent::DepositCredited { deposit, block, user, asset, amount } => (
            DEPOSIT_CREDITED,
            1,
            value(WireCredited {
                deposit: deposit.to_string(),
                block: *block,
                user: user.to_string(),
                asset: asset.to_string(),
                amount: amount.0.to_string(),
            }),
        ),
        WatcherEvent::DepositIgnored { deposit, block, user, token, amount, reason } => (
            DEPOSIT_IGNORED,
            1,
            value(WireIgnored {
                deposit: deposit.to_string(),
                block: *block,
                user: user.to_string(),
                token: token.to_string(),
                amount: amount.clone(),
                reason: reason.clone(),
            }),
        ),
        WatcherEvent::Scanned { through } => (SCANNED, 1, value(WireScanned { through: *through })),
    }
}

pub fn decode_watcher_event(event_type: &str, payload: Value) -> Result<WatcherEvent, WatcherPayloadError> {
    let deposit = |s: &str| DepositId::parse(s).ok_or_else(|| bad("deposit", s));
    let user = |s: &str| UserId::from_hex(s).map_err(|e| bad("user", e));
    Ok(match event_type {
        DEPOSIT_CREDITED => {
            let w: WireCredited = serde_json::from_value(payload).map_err(|e| bad(event_type, e))?;
            WatcherEvent::DepositCredited {
                deposit: deposit(&w.deposit)?,
                block: w.block,
                user: user(&w.user)?,
                asset: AssetId::new(&w.asset).map_err(|e| bad("asset", e))?,
                amount: Amount(w.amount.parse().map_err(|e| bad("amount", e))?),
            }
        }
        DEPOSIT_IGNORED => {
            let w: WireIgnored = serde_json::from_value(payload).map_err(|e| bad(event_type, e))?;
            WatcherEvent::DepositIgnored {
                deposit: deposit(&w.deposit)?,
                block: w.block,
                user: user(&w.user)?,
                token: w.token.parse().map_err(|e| bad("token", e))?,
                amount: w.amount,
                reason: w.reason,
            }
        }
        SCANNED => {
            let w: WireScanned = serde_json::from_value(payload).map_err(|e| bad(event_type, e))?;
            WatcherEvent::Scanned { through: w.through }
        }
        other => return Err(bad("event type", other)),
    })
}

/// What the chain tells a user about its transfers, on the user queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferRecord {
    Deposit {
        deposit: DepositId,
        asset: AssetId,
        amount: Amount,
    },
    /// The vault paid the user's withdrawal `nonce` out.
    WithdrawalCompleted {
        nonce: u64,
    },
    /// The chain refused withdrawal `nonce`: its funds go back to available.
    WithdrawalFailed {
        nonce: u64,
        reason: String,
    },
}

/// `{"transfer": {"op": "deposit", "deposit", "asset", "amount"}}`,
/// `{"transfer": {"op": "withdrawal_completed", "nonce"}}` or
/// `{"transfer": {"op": "withdrawal_failed", "nonce", "reason"}}`.
pub fn encode_transfer_record(record: &TransferRecord) -> Value {
    match record {
        TransferRecord::WithdrawalCompleted { nonce } => {
            json!({ "transfer": { "op": "withdrawal_completed", "nonce": nonce } })
        }
        TransferRecord::WithdrawalFailed { nonce, reason } => {
            json!({ "transfer": { "op": "withdrawal_failed", "nonce": nonce, "reason": reason } })
        }
        TransferRecord::Deposit { deposit, asset, amount } => json!({
            "transfer": {
                "op": "deposit",
                "deposit": deposit.to_string(),
                "asset": asset.to_string(),
                "amount": amount.0.to_string(),
            }
        }),
    }
}

/// The transfer record in a user-queue body, or None if the body is something else.
pub fn decode_transfer_record(body: &Value) -> Option<Result<TransferRecord, WatcherPayloadError>> {
    let inner = body.get("transfer")?;
    let text = |field: &str| inner.get(field).and_then(Value::as_str).ok_or_else(|| bad("transfer record", field));
    let nonce = || inner.get("nonce").and_then(Value::as_u64).ok_or_else(|| bad("transfer record", "nonce"));
    let decoded = (|| match text("op")? {
        "deposit" => {
            let amount = text("amount")?;
            let digits = !amount.is_empty() && amount.bytes().all(|b| b.is_ascii_digit());
            Ok(TransferRecord::Deposit {
                deposit: DepositId::parse(text("deposit")?).ok_or_else(|| bad("transfer record", "deposit"))?,
                asset: AssetId::new(text("asset")?).map_err(|e| bad("asset", e))?,
                amount: Amount(
                    digits.then(|| amount.parse().ok()).flatten().ok_or_else(|| bad("transfer record", "amount"))?,
                ),
            })
        }
        "withdrawal_completed" => Ok(TransferRecord::WithdrawalCompleted { nonce: nonce()? }),
        "withdrawal_failed" => {
            Ok(TransferRecord::WithdrawalFailed { nonce: nonce()?, reason: text("reason")?.to_owned() })
        }
        other => Err(bad("transfer record op", other)),
    })();
    Some(decoded)
}

#[cfg(test)]
#[path = "../../unit_tests/chain/deposits.rs"]
mod tests;
