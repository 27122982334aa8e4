//! Submitting: opening the next batch behind those in flight, checking it with the node,
//! signing and sending it, sending an open batch again after a failure (its own, or one
//! before it that broke the window: `OperatorState::next_send`), and rolling a batch forward
//! when it failed too often.

use alloy::primitives::Bytes;
use alloy::sol_types::SolInterface;

use super::{bump, Operator, StepError};
use crate::actors::deps::ActorError;
use crate::chain::batch::{encode_batch, BatchError, EncodedBatch, OrderKey};
use crate::chain::contract::HobExchangeErrors;
use crate::domain::MarketSpec;
use crate::events::EventStore;
use crate::settlement::chain::{CallRequest, Chain, ChainError, Sent};
use crate::settlement::nonce::{Attempt, TxPurpose};
use crate::settlement::policy::{gas_limit, gas_price};
use crate::settlement::state::{NextSend, OperatorEvent, VoidReason};
use crate::settlement::trades::QueuedTrade;
use crate::settlement::tx::{self, settle_batch_call, SignedTx, TxPlan};
use crate::settlement::verdict::{verdict, Verdict, Void};

/// Why trades do not encode as one batch.
enum Unencodable {
    /// These trades can be in no batch.
    Void(Vec<Void>),
    /// Too many orders or trades for the layout: fewer trades will do.
    TooBig,
}

/// What checking a batch with the node gave.
enum Prepare {
    Ready(Prepared),
    /// Every trade was voided.
    Empty,
    /// The node refused the open batch while an earlier transaction of it may still be
    /// mined (or is mined and not yet final): nothing may be voided or re-indexed until that
    /// transaction's fate is known, or the batch could settle twice. Or the contract's index
    /// moved: the next step decides again from the new one.
    Wait,
    /// The node refused the batch as a whole (a failure of the batch).
    Refused {
        trades: Vec<QueuedTrade>,
        reason: String,
    },
}

/// A batch ready to sign: its trades (in batch order), calldata and gas limit.
struct Prepared {
    trades: Vec<QueuedTrade>,
    data: Bytes,
    gas_limit: u64,
    chain_index: u64,
}

/// At most this many times in one step the batch is checked again after the node blamed
/// part of it, so a step always ends.
const MAX_PREPARE_ROUNDS: usize = 64;

impl<S: EventStore + 'static, C: Chain + 'static> Operator<S, C> {
    pub(super) async fn submit(&mut self, now: u64) -> Result<(), StepError> {
        let worn: Vec<u64> =
            self.state.batches().filter(|b| b.failures >= self.config.max_failures).map(|b| b.id).collect();
        for batch in &worn {
            self.roll_forward(*batch, now).await?;
        }
        if !worn.is_empty() {
            // Nothing goes out until the worn batches are given up: a resend would only be
            // consumed again.
            return Ok(());
        }
        let emptied: Vec<OperatorEvent> = self
            .state
            .batches()
            .filter(|b| b.trades.is_empty() && !self.state.possible(b.id))
            .map(|b| OperatorEvent::SettlementFailed { batch: b.id, reason: "every trade was voided".into() })
            .collect();
        self.commit(emptied, &[]).await?;
        // Each round sends one batch; a window's worth per step at most, so a step ends.
        for _ in 0..self.config.max_in_flight.max(1) {
            if now < self.retry_at_ms {
                return Ok(());
            }
            match self.state.next_send() {
                NextSend::Wait => return Ok(()),
                NextSend::Resend { batch, chain_index } => {
                    let trades: Vec<QueuedTrade> = self.state.batch_trades(batch).into_iter().cloned().collect();
                    match self.prepare(trades, Some(batch), chain_index).await? {
                        Prepare::Ready(prepared) => self.sign_batch(batch, prepared, now, None).await?,
                        Prepare::Empty | Prepare::Wait => return Ok(()),
                        Prepare::Refused { reason, .. } => return Err(self.failed(Some(batch), reason).await),
                    }
                }
                NextSend::Open { chain_index } => {
                    if !self.open_next(now, chain_index).await? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens the next batch if one is due: checked with the node first, so trades it blames
    /// are voided before the batch exists and it is sized to what fits. True if a batch was
    /// opened and sent.
    async fn open_next(&mut self, now: u64, chain_index: u64) -> Result<bool, StepError> {
        let Some(OperatorEvent::BatchOpened { batch, trades }) =
            self.state.open_batch(&self.config.batch, self.config.max_in_flight, now)
        else {
            return Ok(false);
        };
        let candidates: Vec<QueuedTrade> = trades.iter().filter_map(|k| self.state.trade(k)).cloned().collect();
        match self.prepare(candidates, None, chain_index).await? {
            Prepare::Ready(prepared) => {
                let keys = prepared.trades.iter().map(QueuedTrade::key).collect();
                let opened = OperatorEvent::BatchOpened { batch, trades: keys };
                self.sign_batch(batch, prepared, now, Some(opened)).await?;
                Ok(true)
            }
            Prepare::Empty | Prepare::Wait => Ok(false),
            Prepare::Refused { trades, reason } => {
                // The batch exists from its first failure on, so its failures count toward
                // giving it up.
                let keys = trades.iter().map(QueuedTrade::key).collect();
                self.commit(vec![OperatorEvent::BatchOpened { batch, trades: keys }], &[]).await?;
                Err(self.failed(Some(batch), reason).await)
            }
        }
    }

    /// Encodes `trades` as the contract's batch `chain_index` and asks the node to estimate
    /// the settlement: trades it blames are voided and the rest tried again; a moved batch
    /// index is taken up; a new batch (`open` None) too big for the gas limit is halved, while
    /// an open batch keeps its trades (they are what its confirmation will settle).
    ///
    /// With other batches in flight, the node's state does not have them yet, so the estimate
    /// runs at the index the contract expects now: it checks the signatures, balances and gas
    /// as the chain stands, and the transaction is signed with `chain_index`, the index after
    /// those in flight. (A batch whose trades depend on an earlier batch's balance changes is
    /// not estimated with them; the gas limit's margin covers the difference, and a shortfall
    /// reverts and is diagnosed like any revert.)
    async fn prepare(
        &mut self,
        mut trades: Vec<QueuedTrade>,
        open: Option<u64>,
        chain_index: u64,
    ) -> Result<Prepare, StepError> {
        let may_shrink = open.is_none();
        let others_out = self.state.batches().any(|b| Some(b.id) != open && self.state.possible(b.id));
        let estimate_index = if others_out { self.read_chain_index().await? } else { chain_index };
        for _ in 0..MAX_PREPARE_ROUNDS {
            if trades.is_empty() {
                return Ok(Prepare::Empty);
            }
            let settle = match self.encode(&trades) {
                Ok(settle) => settle,
                Err(Unencodable::Void(voids)) => {
                    self.commit_voids(voids).await?;
                    trades.retain(|q| self.state.trade(&q.key()).is_some());
                    continue;
                }
                Err(Unencodable::TooBig) if may_shrink => {
                    trades.truncate(trades.len().div_ceil(2));
                    continue;
                }
                Err(Unencodable::TooBig) => {
                    return Ok(Prepare::Refused { trades, reason: "the batch no longer encodes".into() });
                }
            };
            let call = self.settle_call(estimate_index, settle.data.clone());
            match self.chain.estimate_gas(&call).await {
                Ok(estimate) => match gas_limit(estimate, self.config.batch.max_gas) {
                    Some(limit) => {
                        let data = self.settle_call(chain_index, settle.data).data;
                        return Ok(Prepare::Ready(Prepared { trades, data, gas_limit: limit, chain_index }));
                    }
                    None if may_shrink && trades.len() > 1 => trades.truncate(trades.len() / 2),
                    None if !may_shrink => {
                        let reason = format!("the batch now needs {estimate} gas, above the limit");
                        return Ok(Prepare::Refused { trades, reason });
                    }
                    None => {
                        let key = trades[0].key();
                        let detail = format!("needs {estimate} gas alone, above the limit");
                        let void = Void { key, reason: VoidReason::Unsettleable, detail, order: None };
                        self.commit_voids(vec![void]).await?;
                        trades.clear();
                    }
                },
                Err(ChainError::Reverted { .. }) if open.is_some_and(|b| self.state.possible(b)) => {
                    tracing::info!(operator = %self.address, "batch refused while an earlier transaction of it is out; waiting for it");
                    return Ok(Prepare::Wait);
                }
                Err(ChainError::Reverted { data }) => {
                    let Ok(error) = HobExchangeErrors::abi_decode(&data) else {
                        let reason = format!("reverted with unknown data 0x{}", alloy::hex::encode(&data));
                        return Ok(Prepare::Refused { trades, reason });
                    };
                    let refs: Vec<&QueuedTrade> = trades.iter().collect();
                    match verdict(&error, &settle, &refs) {
                        Verdict::Void(voids) if !voids.is_empty() => {
                            self.commit_voids(voids).await?;
                            trades.retain(|q| self.state.trade(&q.key()).is_some());
                        }
                        Verdict::Reindex { .. } if others_out => {
                            // Our own batches in flight move the index as they are mined: read
                            // it again next step.
                            return Ok(Prepare::Wait);
                        }
                        Verdict::Reindex { expected } if expected != chain_index => {
                            tracing::warn!(operator = %self.address, expected, "the contract's batch index moved; re-indexing");
                            self.commit(vec![OperatorEvent::ChainIndexSynced { next: expected }], &[]).await?;
                            return Ok(Prepare::Wait);
                        }
                        Verdict::Retry(reason) => return Ok(Prepare::Refused { trades, reason }),
                        other => return Ok(Prepare::Refused { trades, reason: format!("{other:?}") }),
                    }
                }
                Err(e) => return Err(StepError::Chain(e)),
            }
        }
        Err(StepError::Chain(ChainError::Refused("the batch kept changing; trying again next step".into())))
    }

    /// A failure of `batch` (else of the first open batch, if there is one) recorded; always
    /// a reason to back off.
    pub(super) async fn failed(&mut self, batch: Option<u64>, reason: String) -> StepError {
        if let Some(batch) = batch.or_else(|| self.state.batches().next().map(|b| b.id)) {
            if let Err(e) = self.commit(vec![OperatorEvent::AttemptFailed { batch, reason: reason.clone() }], &[]).await
            {
                return StepError::Actor(e);
            }
        }
        StepError::Chain(ChainError::Refused(reason))
    }

    /// The batch as the contract takes it, or why not.
    fn encode(&self, trades: &[QueuedTrade]) -> Result<EncodedBatch, Unencodable> {
        let unsettleable = |q: &QueuedTrade, detail: String| Void {
            key: q.key(),
            reason: VoidReason::Unsettleable,
            detail,
            order: None,
        };
        let mut settle = Vec::with_capacity(trades.len());
        let mut voids = Vec::new();
        for q in trades {
            match self
                .spec_of(q)
                .ok_or_else(|| format!("market {} is not configured", q.market))
                .and_then(|s| q.to_settle(s).map_err(|e| e.to_string()))
            {
                Ok(t) => settle.push(t),
                Err(why) => voids.push(unsettleable(q, why)),
            }
        }
        if !voids.is_empty() {
            return Err(Unencodable::Void(voids));
        }
        let voids: Vec<Void> = match encode_batch(&settle) {
            Ok(encoded) => return Ok(encoded),
            Err(BatchError::ConflictingOrders(key)) => {
                // Two different orders signed with one nonce: keep the first trade using it.
                let later = trades.iter().filter(|q| uses(q, &key)).skip(1);
                later.map(|q| unsettleable(q, "an order nonce signed twice".into())).collect()
            }
            Err(BatchError::SameOrder { trade }) => {
                trades.get(trade).map(|q| unsettleable(q, "maker and taker are one order".into())).into_iter().collect()
            }
            Err(BatchError::Unencodable { key, source }) => {
                trades.iter().filter(|q| uses(q, &key)).map(|q| unsettleable(q, source.to_string())).collect()
            }
            Err(BatchError::Empty | BatchError::TooMany { .. }) => return Err(Unencodable::TooBig),
        };
        Err(Unencodable::Void(voids))
    }

    pub(super) fn spec_of(&self, q: &QueuedTrade) -> Option<&MarketSpec> {
        self.specs.get(&q.market)
    }

    pub(super) fn settle_call(&self, chain_index: u64, data: Bytes) -> CallRequest {
        CallRequest { from: self.address, to: self.config.exchange, data: settle_batch_call(chain_index, data) }
    }

    /// Signs the batch at the next nonce and sends it; `opened` (a new batch) is stored in
    /// the same append as the transaction.
    async fn sign_batch(
        &mut self,
        batch: u64,
        prepared: Prepared,
        now: u64,
        opened: Option<OperatorEvent>,
    ) -> Result<(), StepError> {
        let nonce = self.state.nonces().next();
        let plan = TxPlan {
            nonce,
            gas_price: 0,
            gas_limit: prepared.gas_limit,
            to: self.config.exchange,
            data: prepared.data,
        };
        let purpose = TxPurpose::Batch { batch, chain_index: prepared.chain_index };
        if let Some(opened) = opened {
            self.commit(vec![opened], &[]).await?;
        }
        tracing::info!(operator = %self.address, batch, nonce, trades = prepared.trades.len(), "sending a settlement batch");
        self.sign_and_send(plan, purpose, now).await
    }

    pub(super) async fn sign_filler(&mut self, nonce: u64, now: u64) -> Result<(), StepError> {
        bump(&self.counters.self_transfers);
        self.sign_and_send(tx::self_transfer(self.address, nonce, 0), TxPurpose::Filler, now).await
    }

    /// Prices `plan` (the node's quote, at least the bump over what the nonce already
    /// holds), signs it, stores it, then sends it.
    pub(super) async fn sign_and_send(
        &mut self,
        mut plan: TxPlan,
        purpose: TxPurpose,
        now: u64,
    ) -> Result<(), StepError> {
        let quote = self.chain.gas_price().await?;
        let floor = self.state.nonces().replacement_floor(plan.nonce);
        let batch = match purpose {
            TxPurpose::Batch { batch, .. } => Some(batch),
            _ => None,
        };
        plan.gas_price = match gas_price(quote, floor, self.config.max_gas_price_wei) {
            Ok(price) => price,
            Err(capped) => return Err(self.failed(batch, capped.to_string()).await),
        };
        let SignedTx { hash, raw } = tx::sign(&self.config.key, self.chain_id, &plan)
            .map_err(|e| StepError::Chain(ChainError::Refused(e.to_string())))?;
        let attempt = Attempt {
            hash,
            gas_price: plan.gas_price,
            gas_limit: plan.gas_limit,
            purpose,
            raw: raw.clone(),
            signed_at_ms: now,
        };
        let signed = self.state.nonces().sign(plan.nonce, attempt).map_err(|e| {
            StepError::Actor(ActorError::Replay {
                stream: self.stream.clone(),
                version: self.version,
                reason: e.to_string(),
            })
        })?;
        self.commit(vec![OperatorEvent::Nonce(signed)], &[]).await?;
        bump(&self.counters.transactions_sent);
        if !self.send(&raw).await? {
            // Stored and not taken: tracking sends it again, and replaces it once overdue.
            let _ = self.failed(batch, "the node refused the transaction".into()).await;
        }
        Ok(())
    }

    /// Sends signed bytes. True if the node has them now (accepted, or it already had a
    /// transaction at that nonce: receipts will tell which was mined); false if it refused
    /// them (then the operator backs off).
    pub(super) async fn send(&mut self, raw: &Bytes) -> Result<bool, StepError> {
        match self.chain.send_raw(raw.clone()).await {
            Ok(Sent::Accepted) => Ok(true),
            Ok(Sent::AlreadySubmitted(kind)) => {
                tracing::debug!(operator = %self.address, ?kind, "already submitted; resolved by receipt");
                Ok(true)
            }
            Err(ChainError::Refused(reason)) => {
                tracing::warn!(operator = %self.address, %reason, "the node refused a transaction");
                self.back_off(self.now_ms());
                Ok(false)
            }
            Err(e) => Err(StepError::Chain(e)),
        }
    }

    /// Roll forward: the batch failed `max_failures` times. Every nonce that could still
    /// settle it gets a self-transfer first; once none can, its trades are voided (both
    /// parties' funds restored), the batch fails, its markets halt, an alert goes out.
    async fn roll_forward(&mut self, batch: u64, now: u64) -> Result<(), StepError> {
        let live: Vec<u64> = self
            .state
            .nonces()
            .slots()
            .filter(|s| matches!(s.latest().purpose, TxPurpose::Batch { batch: b, .. } if b == batch))
            .map(|s| s.nonce)
            .collect();
        for nonce in live {
            self.sign_filler(nonce, now).await?;
        }
        if self.state.possible(batch) {
            return Ok(());
        }
        let reason = format!("failed {} times", self.config.max_failures);
        let events = self.state.give_up(batch, &reason);
        self.commit(events, &[]).await?;
        Ok(())
    }
}

/// Whether `q` uses the signed order `key`.
fn uses(q: &QueuedTrade, key: &OrderKey) -> bool {
    q.order_keys().is_some_and(|keys| keys.contains(key))
}
