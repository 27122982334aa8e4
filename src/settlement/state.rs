//! A settlement operator's state, a pure fold of its stream (`operator:{address}`): the
//! trades waiting for a batch, the batches being settled, the wallet's nonces, the
//! contract's next batch index. Deciders read it and return the events a step produces;
//! `apply` folds an event in and refuses one that does not fit (a corrupt stream).
//!
//! Several batches are in flight at once (a pipeline, at most `max_in_flight`): batch ids are
//! consecutive, and each batch goes out at a higher nonce than the one before it and as the
//! contract's next batch index after it. The contract takes exactly the next index and a
//! wallet's nonces are mined in order, so consecutive batches land in order, and a trade
//! arriving while batches are out waits only for its own batch's block. The window is a chain:
//! when a batch fails to land at its index (a revert, its nonce consumed by a self-transfer),
//! every later batch of the window reverts with a wrong index behind it. Those are not at
//! fault: once none of their transactions can be mined any more they are sent again at fresh
//! nonces, re-numbered to follow on from the batches still sound (`next_send`). A batch is
//! never signed again while a transaction of it may still be mined, so it cannot settle twice.
//!
//! A trade leaves the state exactly once: settled (`SettlementConfirmed`) or voided
//! (`TradeVoided`, a compensation that gives both parties their funds back). A batch ends
//! confirmed, or failed (`SettlementFailed`) once all its trades are voided. None of it is
//! ever edited; every change is a new event.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::nonce::{NonceError, NonceEvent, NonceManager, TxPurpose};
use super::policy::{BatchPolicy, Candidate};
use super::trades::{QueuedTrade, TradeKey};
use super::withdrawals::{QueuedWithdrawal, WithdrawalKey, Withdrawals, WithdrawalsError};
use crate::chain::batch::OrderKey;
use crate::domain::{OrderId, Trade};

/// Most trades the operator holds unsettled; past it the settlement queue waits (the records
/// stay queued), never silently drops.
pub const MAX_UNSETTLED_TRADES: usize = 100_000;

/// Why a trade was voided. Every reason but the user's own doing (an expired order, nonces
/// invalidated on-chain) points at a fault the exchange must look at, so it halts the market
/// before more trades pile up behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoidReason {
    /// The trade could not even be put in a batch (no signed order, an unreadable one, fees
    /// that are not the market's rates).
    Unsettleable,
    /// The contract refused an order's signature.
    BadSignature,
    /// The contract refused an order's encoding.
    OrderRefused,
    /// The contract refused the trade itself (price, quantity, fee cap, sides, market).
    TradeRefused,
    /// A party's vault balance does not cover the trade.
    InsufficientVaultBalance,
    /// An order's signed expiry passed before the trade could settle.
    OrderExpired,
    /// The trader invalidated the order's nonce on-chain: it can never settle.
    NonceInvalidated,
    /// The batch failed too many times (roll forward).
    GaveUp,
}

impl VoidReason {
    pub const ALL: &'static [VoidReason] = &[
        VoidReason::Unsettleable,
        VoidReason::BadSignature,
        VoidReason::OrderRefused,
        VoidReason::TradeRefused,
        VoidReason::InsufficientVaultBalance,
        VoidReason::OrderExpired,
        VoidReason::NonceInvalidated,
        VoidReason::GaveUp,
    ];

    pub fn code(self) -> &'static str {
        match self {
            VoidReason::Unsettleable => "unsettleable",
            VoidReason::BadSignature => "bad_signature",
            VoidReason::OrderRefused => "order_refused",
            VoidReason::TradeRefused => "trade_refused",
            VoidReason::InsufficientVaultBalance => "insufficient_vault_balance",
            VoidReason::OrderExpired => "order_expired",
            VoidReason::NonceInvalidated => "nonce_invalidated",
            VoidReason::GaveUp => "gave_up",
        }
    }

    pub fn from_code(code: &str) -> Option<VoidReason> {
        VoidReason::ALL.iter().copied().find(|r| r.code() == code)
    }

    pub fn halts(self) -> bool {
        !matches!(self, VoidReason::OrderExpired | VoidReason::NonceInvalidated)
    }
}

/// A trade waiting for a batch, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub trade: QueuedTrade,
    pub queued_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorEvent {
    /// A trade taken from the settlement queue.
    TradeQueued { trade: QueuedTrade, queued_at_ms: u64 },
    /// These pending trades form batch `batch` (operator-local ids 1, 2, ...).
    BatchOpened { batch: u64, trades: Vec<TradeKey> },
    /// The wallet's nonces: a transaction signed, a nonce final, the chain seen ahead.
    Nonce(NonceEvent),
    /// The contract's next batch index, as read from the chain.
    ChainIndexSynced { next: u64 },
    /// The open batch failed once more (a timeout, a refusal, a revert nobody is blamed for).
    AttemptFailed { batch: u64, reason: String },
    /// The batch settled on-chain as the contract's batch `chain_index`, deep enough.
    SettlementConfirmed { batch: u64, chain_index: u64, tx: super::chain::TxHash, block: u64, trades: Vec<TradeKey> },
    /// A compensation: the trade will never settle; both parties get their funds back.
    /// `order` is the order at fault, when one is.
    TradeVoided {
        trade: Trade,
        key: TradeKey,
        reason: VoidReason,
        detail: String,
        batch: Option<u64>,
        order: Option<OrderId>,
    },
    /// The batch is given up (every trade in it was voided first).
    SettlementFailed { batch: u64, reason: String },
    /// A user's signed withdrawal taken from the settlement queue.
    WithdrawalQueued { withdrawal: QueuedWithdrawal },
    /// The vault paid the withdrawal out, deep enough.
    WithdrawalCompleted { key: WithdrawalKey, tx: super::chain::TxHash, block: u64 },
    /// The chain refused the withdrawal (its funds go back to the user).
    WithdrawalFailed { key: WithdrawalKey, reason: String },
}

/// What goes out next, as the open batches and their transactions stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextSend {
    /// Every open batch is out, in order: a new batch may follow as the contract's
    /// `chain_index` (if fewer than `max_in_flight` are open).
    Open { chain_index: u64 },
    /// Open batch `batch` has no transaction that can still be mined: it goes out (again) at
    /// the next nonce as the contract's `chain_index`.
    Resend { batch: u64, chain_index: u64 },
    /// A transaction that may still be mined, or that will revert behind a failed one, decides
    /// what comes next: wait for its fate.
    Wait,
}

/// A batch being settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenBatch {
    pub id: u64,
    /// In batch order: the contract's trade indices index this.
    pub trades: Vec<TradeKey>,
    pub failures: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("trade {0} is already held")]
    DuplicateTrade(TradeKey),
    #[error("trade {0} is not waiting for a batch")]
    NotPending(TradeKey),
    #[error("trade {key} is not in batch {batch}")]
    NotInBatch { key: TradeKey, batch: u64 },
    #[error("batch {0} is not open")]
    NotOpen(u64),
    #[error("batch ids are consecutive: expected {expected}, got {got}")]
    BatchId { expected: u64, got: u64 },
    #[error("batch {0} still holds trades")]
    NotEmpty(u64),
    #[error("batch {0} confirmed with other trades than it holds")]
    OtherTrades(u64),
    #[error("a batch needs at least one trade")]
    EmptyBatch,
    #[error(transparent)]
    Nonce(#[from] NonceError),
    #[error(transparent)]
    Withdrawal(#[from] WithdrawalsError),
}

/// What applying an event released, for the records it implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    /// The trades a confirmed batch settled.
    Settled(Vec<QueuedTrade>),
}

/// Counts since the stream began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperatorStats {
    pub settled_batches: u64,
    pub settled_trades: u64,
    pub voided_trades: u64,
    pub failed_batches: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorState {
    trades: HashMap<TradeKey, Pending>,
    /// Trades not in a batch, oldest first.
    pending: VecDeque<TradeKey>,
    /// The batches being settled, by id (so in the order they go on-chain).
    batches: BTreeMap<u64, OpenBatch>,
    nonces: NonceManager,
    next_chain_index: u64,
    next_batch: u64,
    stats: OperatorStats,
    withdrawals: Withdrawals,
}

impl Default for OperatorState {
    fn default() -> OperatorState {
        OperatorState {
            trades: HashMap::new(),
            pending: VecDeque::new(),
            batches: BTreeMap::new(),
            nonces: NonceManager::default(),
            next_chain_index: 0,
            next_batch: 1,
            stats: OperatorStats::default(),
            withdrawals: Withdrawals::default(),
        }
    }
}

impl OperatorState {
    pub fn nonces(&self) -> &NonceManager {
        &self.nonces
    }

    /// The open batches, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &OpenBatch> + '_ {
        self.batches.values()
    }

    pub fn batch(&self, id: u64) -> Option<&OpenBatch> {
        self.batches.get(&id)
    }

    /// Trades held and not settled or voided (pending and in open batches).
    pub fn unsettled(&self) -> usize {
        self.trades.len()
    }

    pub fn pending(&self) -> impl Iterator<Item = &Pending> + '_ {
        self.pending.iter().filter_map(|k| self.trades.get(k))
    }

    pub fn trade(&self, key: &TradeKey) -> Option<&QueuedTrade> {
        self.trades.get(key).map(|p| &p.trade)
    }

    /// An open batch's trades, in batch order.
    pub fn batch_trades(&self, id: u64) -> Vec<&QueuedTrade> {
        self.batches.get(&id).iter().flat_map(|b| b.trades.iter()).filter_map(|k| self.trade(k)).collect()
    }

    pub fn withdrawals(&self) -> &Withdrawals {
        &self.withdrawals
    }

    /// Held withdrawals no transaction could execute (none sent yet, or every nonce that
    /// carried one ended otherwise): these are sent at a fresh nonce.
    pub fn unsent_withdrawals(&self) -> Vec<&QueuedWithdrawal> {
        self.withdrawals
            .held()
            .filter(|w| !self.nonces.slots().any(|s| s.carries_withdrawal(w.user, w.nonce)))
            .collect()
    }

    pub fn next_chain_index(&self) -> u64 {
        self.next_chain_index
    }

    pub fn stats(&self) -> OperatorStats {
        self.stats
    }

    /// Whether a transaction meant to settle `batch` is the newest at some nonce.
    pub fn live(&self, batch: u64) -> bool {
        self.nonces.slots().any(|s| matches!(s.latest().purpose, TxPurpose::Batch { batch: b, .. } if b == batch))
    }

    /// Whether any transaction that would settle `batch` could still be mined: until none
    /// can, the batch can neither be given up nor its trades voided.
    pub fn possible(&self, batch: u64) -> bool {
        self.nonces.slots().any(|s| s.carries(batch))
    }

    /// Whether a transaction of any open batch could still be mined.
    pub fn any_possible(&self) -> bool {
        self.batches.keys().any(|b| self.possible(*b))
    }

    /// The newest transaction meant to settle `batch`, if one is the newest at its nonce:
    /// (nonce, the contract's batch index it carries). The highest such nonce, should there
    /// be two.
    pub fn live_tx(&self, batch: u64) -> Option<(u64, u64)> {
        self.nonces
            .slots()
            .filter_map(|s| match s.latest().purpose {
                TxPurpose::Batch { batch: b, chain_index } if b == batch => Some((s.nonce, chain_index)),
                _ => None,
            })
            .last()
    }

    /// What goes out next. The open batches are walked in id order, each expected out as the
    /// index after the one before it and at a higher nonce (the first as the contract's next
    /// index): a batch out that way is sound; the first one that is not decides. Out at
    /// another index or a lower nonce, it will revert (or already did and is not final yet):
    /// wait for it. Not out (its nonce consumed by a self-transfer, its transaction reverted):
    /// it goes out now at a fresh nonce, as the index that follows the sound ones; if a
    /// replaced transaction of it may still be mined, only as that same index, so at most one
    /// of the two can settle (at another index it waits for that transaction's fate). A later
    /// batch out behind it at a lower nonce is then unsound in turn, and is sent again once
    /// its revert is final. A batch whose trades were all voided is skipped (it is failed,
    /// not sent).
    pub fn next_send(&self) -> NextSend {
        let mut expected = self.next_chain_index;
        let mut after: Option<u64> = None;
        for b in self.batches.values() {
            match self.live_tx(b.id) {
                Some((nonce, index)) if index == expected && after.is_none_or(|a| nonce > a) => {
                    expected += 1;
                    after = Some(nonce);
                }
                Some(_) => return NextSend::Wait,
                None => {
                    let possible = self.possible(b.id);
                    if b.trades.is_empty() && !possible {
                        continue;
                    }
                    if b.trades.is_empty() || (possible && !self.only_as(b.id, expected)) {
                        return NextSend::Wait;
                    }
                    return NextSend::Resend { batch: b.id, chain_index: expected };
                }
            }
        }
        NextSend::Open { chain_index: expected }
    }

    /// Whether every transaction of `batch` that may still be mined settles it as the
    /// contract's `chain_index`.
    fn only_as(&self, batch: u64, chain_index: u64) -> bool {
        self.nonces.slots().flat_map(|s| s.attempts.iter()).all(|a| match a.purpose {
            TxPurpose::Batch { batch: b, chain_index: c } => b != batch || c == chain_index,
            _ => true,
        })
    }

    /// The event for a trade taken from the queue; None if it is already held (a repeat
    /// from another source would be a bug upstream, and must not settle twice).
    pub fn queue(&self, trade: QueuedTrade, now_ms: u64) -> Option<OperatorEvent> {
        (!self.trades.contains_key(&trade.key())).then_some(OperatorEvent::TradeQueued { trade, queued_at_ms: now_ms })
    }

    /// The next batch, if one is due (see `BatchPolicy::plan`), fewer than `max_in_flight`
    /// are open, and every open one is out in order (`next_send` says `Open`).
    pub fn open_batch(&self, policy: &BatchPolicy, max_in_flight: usize, now_ms: u64) -> Option<OperatorEvent> {
        if self.batches.len() >= max_in_flight.max(1) || !matches!(self.next_send(), NextSend::Open { .. }) {
            return None;
        }
        let mut keys = Vec::new();
        let mut candidates = Vec::new();
        for p in self.pending().take(policy.max_trades.max(1) + 1) {
            // Pending trades passed `to_settle` when queued, so their orders read.
            let orders = p.trade.order_keys()?;
            keys.push(p.trade.key());
            candidates.push(Candidate::<OrderKey> { queued_at_ms: p.queued_at_ms, orders });
        }
        let take = policy.plan(&candidates, now_ms)?;
        keys.truncate(take);
        Some(OperatorEvent::BatchOpened { batch: self.next_batch, trades: keys })
    }

    /// The compensation for a held trade (pending or in an open batch).
    pub fn void(
        &self,
        key: &TradeKey,
        reason: VoidReason,
        detail: impl Into<String>,
        order: Option<OrderId>,
    ) -> Option<OperatorEvent> {
        let held = self.trades.get(key)?;
        let batch = self.batches.values().find(|b| b.trades.contains(key)).map(|b| b.id);
        Some(OperatorEvent::TradeVoided {
            trade: held.trade.trade,
            key: *key,
            reason,
            detail: detail.into(),
            batch,
            order,
        })
    }

    /// Roll forward: every trade of open batch `id` voided, then the batch failed. Only once
    /// no transaction of it can be mined any more (`possible` is false). Later batches are
    /// not touched: they go out again after it (`next_send`).
    pub fn give_up(&self, id: u64, reason: &str) -> Vec<OperatorEvent> {
        let Some(batch) = self.batches.get(&id) else { return Vec::new() };
        let mut events: Vec<OperatorEvent> =
            batch.trades.iter().filter_map(|k| self.void(k, VoidReason::GaveUp, reason, None)).collect();
        events.push(OperatorEvent::SettlementFailed { batch: batch.id, reason: reason.to_owned() });
        events
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &OperatorEvent) -> Result<Applied, StateError> {
        match event {
            OperatorEvent::TradeQueued { trade, queued_at_ms } => {
                let key = trade.key();
                if self.trades.contains_key(&key) {
                    return Err(StateError::DuplicateTrade(key));
                }
                self.trades.insert(key, Pending { trade: trade.clone(), queued_at_ms: *queued_at_ms });
                self.pending.push_back(key);
            }
            OperatorEvent::BatchOpened { batch, trades } => {
                if *batch != self.next_batch {
                    return Err(StateError::BatchId { expected: self.next_batch, got: *batch });
                }
                if trades.is_empty() {
                    return Err(StateError::EmptyBatch);
                }
                if let Some(missing) = trades.iter().find(|k| !self.pending.contains(k)) {
                    return Err(StateError::NotPending(*missing));
                }
                self.pending.retain(|k| !trades.contains(k));
                self.batches.insert(*batch, OpenBatch { id: *batch, trades: trades.clone(), failures: 0 });
                self.next_batch += 1;
            }
            OperatorEvent::Nonce(e) => {
                if let NonceEvent::Signed { attempt, .. } = e {
                    if let TxPurpose::Batch { batch, .. } = attempt.purpose {
                        self.open(batch)?;
                    }
                }
                self.nonces.apply(e)?;
            }
            OperatorEvent::ChainIndexSynced { next } => self.next_chain_index = *next,
            OperatorEvent::AttemptFailed { batch, .. } => self.open(*batch)?.failures += 1,
            OperatorEvent::SettlementConfirmed { batch, chain_index, trades, .. } => {
                if self.open(*batch)?.trades != *trades {
                    return Err(StateError::OtherTrades(*batch));
                }
                let settled: Vec<QueuedTrade> =
                    trades.iter().filter_map(|k| self.trades.remove(k)).map(|p| p.trade).collect();
                self.batches.remove(batch);
                self.next_chain_index = chain_index + 1;
                self.stats.settled_batches += 1;
                self.stats.settled_trades += settled.len() as u64;
                return Ok(Applied::Settled(settled));
            }
            OperatorEvent::TradeVoided { key, batch, .. } => {
                match batch {
                    Some(b) => {
                        let open = self.open(*b)?;
                        let before = open.trades.len();
                        open.trades.retain(|k| k != key);
                        if open.trades.len() == before {
                            return Err(StateError::NotInBatch { key: *key, batch: *b });
                        }
                    }
                    None => {
                        let before = self.pending.len();
                        self.pending.retain(|k| k != key);
                        if self.pending.len() == before {
                            return Err(StateError::NotPending(*key));
                        }
                    }
                }
                self.trades.remove(key);
                self.stats.voided_trades += 1;
            }
            OperatorEvent::SettlementFailed { batch, .. } => {
                if !self.open(*batch)?.trades.is_empty() {
                    return Err(StateError::NotEmpty(*batch));
                }
                self.batches.remove(batch);
                self.stats.failed_batches += 1;
            }
            OperatorEvent::WithdrawalQueued { withdrawal } => self.withdrawals.queue(withdrawal)?,
            OperatorEvent::WithdrawalCompleted { key, .. } => {
                self.withdrawals.end(key, true)?;
            }
            OperatorEvent::WithdrawalFailed { key, .. } => {
                self.withdrawals.end(key, false)?;
            }
        }
        Ok(Applied::Nothing)
    }

    fn open(&mut self, batch: u64) -> Result<&mut OpenBatch, StateError> {
        self.batches.get_mut(&batch).ok_or(StateError::NotOpen(batch))
    }
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/state.rs"]
mod tests;
