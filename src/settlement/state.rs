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
mod tests {
    // Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
    use super::*;
    use crate::settlement::nonce::{Attempt, Resolution};
    use crate::settlement::trades::tests::queued;
    use alloy::primitives::{Bytes, B256};

    fn queued_at(id: u64, at: u64) -> OperatorEvent {
        OperatorEvent::TradeQueued { trade: queued(id, 1, 2), queued_at_ms: at }
    }

    fn key(id: u64) -> TradeKey {
        queued(id, 1, 2).key()
    }

    fn signed(nonce: u64, tag: u8, purpose: TxPurpose) -> OperatorEvent {
        let attempt = Attempt {
            hash: B256::repeat_byte(tag),
            gas_price: 10 * tag as u128,
            gas_limit: 1,
            purpose,
            raw: Bytes::new(),
            signed_at_ms: 0,
        };
        OperatorEvent::Nonce(NonceEvent::Signed { nonce, attempt })
    }

    fn given(events: &[OperatorEvent]) -> OperatorState {
        let mut s = OperatorState::default();
        for e in events {
            s.apply(e).unwrap_or_else(|err| panic!("given {e:?} refused: {err}"));
        }
        s
    }

    /// Given events, when a decider runs, then exactly these events, which also apply.
    fn check(
        given_events: &[OperatorEvent],
        when: impl Fn(&OperatorState) -> Vec<OperatorEvent>,
        then: &[OperatorEvent],
    ) {
        let s = given(given_events);
        let decided = when(&s);
        assert_eq!(decided, then);
        let mut after = s;
        for e in &decided {
            after.apply(e).unwrap_or_else(|err| panic!("decided {e:?} does not apply: {err}"));
        }
    }

    fn policy(window_ms: u64) -> BatchPolicy {
        BatchPolicy { window_ms, max_trades: 2, ..BatchPolicy::default() }
    }

    #[test]
    fn a_trade_is_queued_once() {
        check(&[], |s| s.queue(queued(1, 1, 2), 5).into_iter().collect(), &[queued_at(1, 5)]);
        check(&[queued_at(1, 5)], |s| s.queue(queued(1, 1, 2), 6).into_iter().collect(), &[]);
        let mut s = given(&[queued_at(1, 5)]);
        assert_eq!(s.apply(&queued_at(1, 6)), Err(StateError::DuplicateTrade(key(1))));
    }

    #[test]
    fn a_batch_opens_when_due_with_the_oldest_trades_and_only_behind_batches_already_out() {
        let three = [queued_at(1, 0), queued_at(2, 0), queued_at(3, 0)];
        check(&three[..1], |s| s.open_batch(&policy(100), 4, 99).into_iter().collect(), &[]);
        check(
            &three[..1],
            |s| s.open_batch(&policy(100), 4, 100).into_iter().collect(),
            &[OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1)] }],
        );
        // Full by count: goes at once.
        check(
            &three,
            |s| s.open_batch(&policy(100), 4, 0).into_iter().collect(),
            &[OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1), key(2)] }],
        );
        // Batch 1 is open but not sent yet: nothing may follow it, whatever the limit.
        let open = [&three[..], &[OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1), key(2)] }]].concat();
        check(&open, |s| s.open_batch(&policy(0), 4, 1_000).into_iter().collect(), &[]);
        let s = given(&open);
        assert_eq!(s.pending().map(|p| p.trade.key()).collect::<Vec<_>>(), vec![key(3)]);
        assert_eq!(s.batch_trades(1).len(), 2);
        // Once it is out, the next may follow, unless one in flight is the limit.
        let out = [&open[..], &[signed(0, 1, TxPurpose::Batch { batch: 1, chain_index: 0 })]].concat();
        check(&out, |s| s.open_batch(&policy(0), 1, 1_000).into_iter().collect(), &[]);
        check(
            &out,
            |s| s.open_batch(&policy(0), 2, 1_000).into_iter().collect(),
            &[OperatorEvent::BatchOpened { batch: 2, trades: vec![key(3)] }],
        );
    }

    #[test]
    fn a_confirmed_batch_releases_its_trades_and_moves_the_chain_index() {
        let given_events = [
            queued_at(1, 0),
            queued_at(2, 0),
            OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1), key(2)] },
            signed(0, 1, TxPurpose::Batch { batch: 1, chain_index: 4 }),
        ];
        let mut s = given(&given_events);
        assert!(s.live(1) && s.possible(1));
        let confirmed = OperatorEvent::SettlementConfirmed {
            batch: 1,
            chain_index: 4,
            tx: B256::repeat_byte(1),
            block: 9,
            trades: vec![key(1), key(2)],
        };
        let final_ = OperatorEvent::Nonce(NonceEvent::Final {
            nonce: 0,
            resolution: Resolution::Mined { hash: B256::repeat_byte(1), block: 9, success: true, gas_used: 5 },
        });
        assert_eq!(s.apply(&final_), Ok(Applied::Nothing));
        assert_eq!(s.apply(&confirmed), Ok(Applied::Settled(vec![queued(1, 1, 2), queued(2, 1, 2)])));
        assert_eq!((s.next_chain_index(), s.batches().count(), s.unsettled()), (5, 0, 0));
        assert_eq!(s.stats(), OperatorStats { settled_batches: 1, settled_trades: 2, ..OperatorStats::default() });
    }

    #[test]
    fn voiding_takes_a_trade_out_of_the_queue_or_out_of_the_open_batch() {
        let given_events =
            [queued_at(1, 0), queued_at(2, 0), OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1)] }];
        let voided = |id: u64, batch: Option<u64>| OperatorEvent::TradeVoided {
            trade: queued(id, 1, 2).trade,
            key: key(id),
            reason: VoidReason::BadSignature,
            detail: "order 0".into(),
            batch,
            order: Some(OrderId(10 + id)),
        };
        check(
            &given_events,
            |s| s.void(&key(1), VoidReason::BadSignature, "order 0", Some(OrderId(11))).into_iter().collect(),
            &[voided(1, Some(1))],
        );
        check(
            &given_events,
            |s| s.void(&key(2), VoidReason::BadSignature, "order 0", Some(OrderId(12))).into_iter().collect(),
            &[voided(2, None)],
        );
        check(&given_events, |s| s.void(&key(9), VoidReason::GaveUp, "", None).into_iter().collect(), &[]);
    }

    #[test]
    fn giving_up_voids_every_trade_of_the_batch_then_fails_it() {
        let given_events = [
            queued_at(1, 0),
            queued_at(2, 0),
            OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1), key(2)] },
            OperatorEvent::AttemptFailed { batch: 1, reason: "timeout".into() },
        ];
        let void = |id: u64| OperatorEvent::TradeVoided {
            trade: queued(id, 1, 2).trade,
            key: key(id),
            reason: VoidReason::GaveUp,
            detail: "timeout".into(),
            batch: Some(1),
            order: None,
        };
        check(
            &given_events,
            |s| s.give_up(1, "timeout"),
            &[void(1), void(2), OperatorEvent::SettlementFailed { batch: 1, reason: "timeout".into() }],
        );
        let mut s = given(&given_events);
        assert_eq!(s.batch(1).map(|b| b.failures), Some(1));
        let fail = OperatorEvent::SettlementFailed { batch: 1, reason: "x".into() };
        assert_eq!(s.apply(&fail), Err(StateError::NotEmpty(1)), "a batch fails only once it is empty");
    }

    #[test]
    fn a_transaction_is_signed_only_for_an_open_batch() {
        let given_events = [queued_at(1, 0), OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1)] }];
        let mut s = given(&given_events);
        let wrong = signed(0, 1, TxPurpose::Batch { batch: 2, chain_index: 0 });
        assert_eq!(s.apply(&wrong), Err(StateError::NotOpen(2)));
        s.apply(&signed(0, 1, TxPurpose::Batch { batch: 1, chain_index: 0 })).unwrap();
        s.apply(&signed(0, 2, TxPurpose::Filler)).unwrap();
        assert!(!s.live(1) && s.possible(1), "replaced by a filler, yet the batch transaction may still be mined");
    }

    #[test]
    fn every_void_reason_has_a_stable_code_and_only_user_doings_do_not_halt() {
        for r in VoidReason::ALL {
            assert_eq!(VoidReason::from_code(r.code()), Some(*r));
        }
        let quiet: Vec<_> = VoidReason::ALL.iter().filter(|r| !r.halts()).collect();
        assert_eq!(quiet, vec![&VoidReason::OrderExpired, &VoidReason::NonceInvalidated]);
    }

    // ---------------------------------------------------------------------------------
    // The pipeline: several batches in flight

    fn batch_tx(batch: u64, chain_index: u64) -> TxPurpose {
        TxPurpose::Batch { batch, chain_index }
    }

    fn final_(nonce: u64, tag: u8, success: bool) -> OperatorEvent {
        let resolution = Resolution::Mined { hash: B256::repeat_byte(tag), block: 9, success, gas_used: 5 };
        OperatorEvent::Nonce(NonceEvent::Final { nonce, resolution })
    }

    fn opened(batch: u64, ids: &[u64]) -> OperatorEvent {
        OperatorEvent::BatchOpened { batch, trades: ids.iter().map(|i| key(*i)).collect() }
    }

    fn confirmed(batch: u64, chain_index: u64, ids: &[u64]) -> OperatorEvent {
        OperatorEvent::SettlementConfirmed {
            batch,
            chain_index,
            tx: B256::repeat_byte(0xCC),
            block: 9,
            trades: ids.iter().map(|i| key(*i)).collect(),
        }
    }

    /// Three trades, three batches of one, out at nonces 0, 1, 2 as the contract's 4, 5, 6.
    fn three_in_flight() -> Vec<OperatorEvent> {
        vec![
            OperatorEvent::ChainIndexSynced { next: 4 },
            queued_at(1, 0),
            queued_at(2, 0),
            queued_at(3, 0),
            opened(1, &[1]),
            signed(0, 1, batch_tx(1, 4)),
            opened(2, &[2]),
            signed(1, 2, batch_tx(2, 5)),
            opened(3, &[3]),
            signed(2, 3, batch_tx(3, 6)),
        ]
    }

    fn next_send(events: &[OperatorEvent]) -> NextSend {
        given(events).next_send()
    }

    #[test]
    fn batches_out_at_rising_nonces_and_consecutive_indices_let_the_next_follow_them() {
        // given three batches in flight in order
        let events = three_in_flight();
        // then a fourth may follow as the contract's batch 7, within a limit of four
        assert_eq!(next_send(&events), NextSend::Open { chain_index: 7 });
        assert!(given(&events).open_batch(&policy(0), 3, 0).is_none(), "three in flight is the limit of three");
        // and when the first confirms, the window moves on without a resend
        let moved = [&events[..], &[final_(0, 1, true), confirmed(1, 4, &[1])]].concat();
        assert_eq!(next_send(&moved), NextSend::Open { chain_index: 7 });
        assert_eq!(given(&moved).next_chain_index(), 5);
    }

    #[test]
    fn a_batch_reverting_in_the_middle_goes_out_again_and_the_later_one_follows_it_renumbered() {
        // given batch 1 confirmed and batch 2's transaction reverted, final; batch 3 still out
        let events =
            [&three_in_flight()[..], &[final_(0, 1, true), confirmed(1, 4, &[1]), final_(1, 2, false)]].concat();
        // then batch 2 goes out again at the next nonce as index 5
        assert_eq!(next_send(&events), NextSend::Resend { batch: 2, chain_index: 5 });
        // when it is signed at nonce 3, batch 3 (nonce 2, index 6) is behind it: it will revert
        let resent = [&events[..], &[signed(3, 4, batch_tx(2, 5))]].concat();
        assert_eq!(next_send(&resent), NextSend::Wait);
        // and once batch 3's revert is final it goes out after batch 2, as index 6 at nonce 4
        let reverted = [&resent[..], &[final_(2, 3, false)]].concat();
        assert_eq!(next_send(&reverted), NextSend::Resend { batch: 3, chain_index: 6 });
        let s = given(&reverted);
        assert_eq!(s.nonces().next(), 4, "no nonce reused or skipped");
        assert_eq!(s.batch(3).map(|b| b.failures), Some(0), "a batch reverting behind another is not at fault");
    }

    #[test]
    fn a_stuck_first_nonce_is_resent_as_the_same_index_and_the_batches_behind_it_follow_once_reverted() {
        // given batch 1's nonce consumed by a self-transfer, batches 2 and 3 out behind it
        let events = [&three_in_flight()[..], &[signed(0, 9, TxPurpose::Filler)]].concat();
        // then batch 1 goes out again at a fresh nonce as the same index 4, so its old
        // transaction and the new one cannot both settle
        assert_eq!(next_send(&events), NextSend::Resend { batch: 1, chain_index: 4 });
        // but under another index it waits for the old transaction's fate
        let moved = [&events[..], &[OperatorEvent::ChainIndexSynced { next: 9 }]].concat();
        assert_eq!(next_send(&moved), NextSend::Wait);
        // when it is sent at nonce 3, batches 2 and 3 are behind it: they will revert
        let resent = [&events[..], &[signed(3, 4, batch_tx(1, 4))]].concat();
        assert_eq!(next_send(&resent), NextSend::Wait);
        // and once the self-transfer is mined and their reverts are final, they follow it
        let reverted = [&resent[..], &[final_(0, 9, true), final_(1, 2, false), final_(2, 3, false)]].concat();
        assert_eq!(next_send(&reverted), NextSend::Resend { batch: 2, chain_index: 5 });
        let two = [&reverted[..], &[signed(4, 5, batch_tx(2, 5))]].concat();
        assert_eq!(next_send(&two), NextSend::Resend { batch: 3, chain_index: 6 });
        let three = [&two[..], &[signed(5, 6, batch_tx(3, 6))]].concat();
        assert_eq!(next_send(&three), NextSend::Open { chain_index: 7 });
        // no trade was voided on the way
        assert_eq!(given(&three).stats().voided_trades, 0);
    }

    #[test]
    fn a_batch_whose_trades_were_all_voided_is_skipped_and_the_next_takes_its_index() {
        // given batch 1 reverted and its only trade voided; batch 2 reverted behind it
        let void = OperatorEvent::TradeVoided {
            trade: queued(1, 1, 2).trade,
            key: key(1),
            reason: VoidReason::BadSignature,
            detail: "order 0".into(),
            batch: Some(1),
            order: None,
        };
        let events = [&three_in_flight()[..], &[final_(0, 1, false), void, final_(1, 2, false)]].concat();
        // then batch 2 goes out as the contract's 4, the index batch 1 never took
        assert_eq!(next_send(&events), NextSend::Resend { batch: 2, chain_index: 4 });
    }

    #[test]
    fn giving_up_one_batch_leaves_the_later_ones_to_go_out_again() {
        // given batch 2 failed too often and none of its transactions can be mined
        let events = [
            &three_in_flight()[..],
            &[
                final_(0, 1, true),
                confirmed(1, 4, &[1]),
                final_(1, 2, false),
                OperatorEvent::AttemptFailed { batch: 2, reason: "x".into() },
                final_(2, 3, false),
            ],
        ]
        .concat();
        // when it is given up, only its trade is voided
        let s = given(&events);
        let given_up = s.give_up(2, "x");
        assert_eq!(given_up.len(), 2);
        assert!(matches!(&given_up[0], OperatorEvent::TradeVoided { key: k, batch: Some(2), .. } if *k == key(2)));
        let after = [&events[..], &given_up[..]].concat();
        // then batch 3 goes out as the index batch 2 did not take
        assert_eq!(next_send(&after), NextSend::Resend { batch: 3, chain_index: 5 });
        assert_eq!(given(&after).batch(3).map(|b| b.trades.len()), Some(1));
    }
}
