//! The settlement operator's work, one step at a time: the I/O shell around the pure state
//! (`settlement::state`). Each step reads the chain, decides with the state's deciders and
//! policies, commits the resulting events (with the outbox records they imply) in one append
//! to `operator:{address}`, and only then acts on the chain: a transaction is stored, signed
//! bytes and all, before it is sent, so a crash can never hand out a nonce twice.
//!
//! A step: (1) once after start, reconcile the wallet's nonces and the batch index with the
//! chain; (2) track every transaction in flight (`track.rs`): final once buried
//! `confirmations` deep, sent again if the node lost it, replaced with a higher fee when
//! overdue, its nonce consumed by a self-transfer when stuck; (3) submit (`submit.rs`): open
//! the next batch behind those in flight when due, or send an open batch again after a
//! failure (re-numbered behind the batches still sound), or roll one forward once it failed
//! too often. This file holds the state, committing and taking trades.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alloy::primitives::Address;
use uuid::Uuid;

use crate::actors::consumed::{Consumed, CONSUMED};
use crate::actors::deps::{replay_stream, settle_append, ActorDeps, ActorError};
use crate::chain::deposits::{encode_transfer_record, TransferRecord};
use crate::domain::{Amount, AssetId, MarketCommand, MarketId, MarketSpec, UserId};
use crate::events::market_command::encode_market_record;
use crate::events::{AppendRequest, EventStore, NewEvent, OutboxRecord, StreamId};
use crate::queue::{market_group, user_group, MessageSource, MARKET_QUEUE, USER_QUEUE};
use crate::settlement::alert::{Alert, Alerts};
use crate::settlement::chain::{Chain, ChainError};
use crate::settlement::config::SettlementConfig;
use crate::settlement::payload::{decode_operator_event, encode_operator_event};
use crate::settlement::records::{encode_user_record, UserSettlement};
use crate::settlement::state::{Applied, OperatorEvent, OperatorState, VoidReason, MAX_UNSETTLED_TRADES};
use crate::settlement::trades::QueuedTrade;
use crate::settlement::withdrawals::{QueuedWithdrawal, WithdrawalKey};

/// A settlement-queue record: a trade a market matched, or a user's withdrawal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    Trade(QueuedTrade),
    Withdrawal(QueuedWithdrawal),
}

fn seen_withdrawal(events: &[OperatorEvent], w: &QueuedWithdrawal) -> bool {
    events.iter().any(|e| matches!(e, OperatorEvent::WithdrawalQueued { withdrawal } if withdrawal.key() == w.key()))
}

fn to_user_transfer(user: UserId, record: TransferRecord) -> OutboxRecord {
    OutboxRecord { destination: USER_QUEUE.into(), group: user_group(user), payload: encode_transfer_record(&record) }
}

mod submit;
mod track;
mod withdraw;

/// Counters of one operator, readable while it runs.
#[derive(Debug, Default)]
pub struct OperatorCounters {
    pub steps: AtomicU64,
    pub transactions_sent: AtomicU64,
    pub fee_bumps: AtomicU64,
    pub self_transfers: AtomicU64,
    pub resends: AtomicU64,
    pub attempts_failed: AtomicU64,
    pub chain_errors: AtomicU64,
    pub batches_confirmed: AtomicU64,
    pub trades_voided: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Why a step stopped early.
#[derive(Debug)]
pub(crate) enum StepError {
    /// The node failed or refused: try again after a backoff; nothing stored is wrong.
    Chain(ChainError),
    /// The stream or the store failed: the actor stops and is rebuilt from its stream.
    Actor(ActorError),
}

impl From<ChainError> for StepError {
    fn from(e: ChainError) -> StepError {
        StepError::Chain(e)
    }
}

impl From<ActorError> for StepError {
    fn from(e: ActorError) -> StepError {
        StepError::Actor(e)
    }
}

pub(crate) struct Operator<S: EventStore + 'static, C: Chain + 'static> {
    pub(crate) state: OperatorState,
    pub(crate) consumed: Consumed,
    pub(crate) stream: StreamId,
    pub(crate) version: u64,
    pub(crate) address: Address,
    pub(crate) chain_id: u64,
    pub(crate) deps: Arc<ActorDeps<S>>,
    pub(crate) specs: Arc<BTreeMap<MarketId, MarketSpec>>,
    pub(crate) chain: Arc<C>,
    pub(crate) config: SettlementConfig,
    pub(crate) alerts: Arc<Alerts>,
    pub(crate) counters: Arc<OperatorCounters>,
    /// Reconciled with the chain since start.
    reconciled: bool,
    /// No batch is formed or sent before this (a backoff after a failure).
    retry_at_ms: u64,
    /// Failures in a row without progress, for the backoff.
    streak: u32,
    /// xorshift64 state for the backoff's jitter.
    rng: u64,
    /// Nonces the chain counts as used with none of their transactions' receipts found, and
    /// since when.
    unexplained: BTreeMap<u64, u64>,
    /// Withdrawals an operator must look at (see `withdraw.rs`); not sent again until restart.
    withdrawals_on_hold: BTreeSet<WithdrawalKey>,
}

impl<S: EventStore + 'static, C: Chain + 'static> Operator<S, C> {
    /// Rebuilds the operator from its stream.
    pub(crate) async fn load(
        config: SettlementConfig,
        chain_id: u64,
        deps: Arc<ActorDeps<S>>,
        specs: Arc<BTreeMap<MarketId, MarketSpec>>,
        chain: Arc<C>,
        alerts: Arc<Alerts>,
        counters: Arc<OperatorCounters>,
    ) -> Result<Operator<S, C>, ActorError> {
        let address = config.key.address();
        let stream = StreamId::operator(UserId(address.0 .0));
        let (mut state, mut consumed) = (OperatorState::default(), Consumed::default());
        let (_, version) = replay_stream(deps.store.as_ref(), &stream, 0, |stored| {
            let replay =
                |reason: String| ActorError::Replay { stream: stream.clone(), version: stored.version, reason };
            let payload = stored.value().map_err(replay)?;
            if stored.event_type == CONSUMED {
                return consumed.apply(&payload).map_err(replay);
            }
            let event = decode_operator_event(&stored.event_type, stored.schema_version, payload)
                .map_err(|e| replay(e.to_string()))?;
            state.apply(&event).map(|_| ()).map_err(|e| replay(e.to_string()))
        })
        .await?;
        // Seeded from the wallet so two operators' jitters differ, and from the stream's
        // length so a restart does not repeat the last run's draws.
        let rng = u64::from_be_bytes(address.0 .0[..8].try_into().unwrap_or([1; 8])) ^ version.rotate_left(32) | 1;
        Ok(Operator {
            state,
            consumed,
            stream,
            version,
            address,
            chain_id,
            deps,
            specs,
            chain,
            config,
            alerts,
            counters,
            reconciled: false,
            retry_at_ms: 0,
            streak: 0,
            rng,
            unexplained: BTreeMap::new(),
            withdrawals_on_hold: BTreeSet::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.deps.now_ms().0
    }

    fn jitter(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Waits before the next try: after a failure the waits grow, with jitter.
    fn back_off(&mut self, now: u64) {
        self.streak = self.streak.saturating_add(1);
        let jitter = self.jitter();
        self.retry_at_ms = now + self.config.backoff.delay_ms(self.streak, jitter);
    }

    // -----------------------------------------------------------------------------------
    // Committing

    /// Applies `events` in memory, then stores them with their outbox records (and the
    /// consumed positions, if any) in one append; raises their alerts once stored. A failed
    /// append means memory ran ahead of the store: the caller stops the actor.
    pub(crate) async fn commit(
        &mut self,
        events: Vec<OperatorEvent>,
        sources: &[MessageSource],
    ) -> Result<(), ActorError> {
        if events.is_empty() && sources.is_empty() {
            return Ok(());
        }
        let correlation = Uuid::now_v7();
        let clock = self.deps.clock.clone();
        let mut stored = Vec::with_capacity(events.len() + 1);
        let mut outbox = Vec::new();
        let mut halted = BTreeSet::new();
        for event in &events {
            let applied = self.state.apply(event).map_err(|e| ActorError::Replay {
                stream: self.stream.clone(),
                version: self.version,
                reason: e.to_string(),
            })?;
            outbox.extend(self.outbox(event, &applied, &mut halted));
            let e = encode_operator_event(event);
            stored.push(NewEvent::new(
                clock.as_ref(),
                correlation,
                correlation,
                e.event_type,
                e.schema_version,
                e.payload,
            ));
        }
        for source in sources {
            self.consumed.advance(source);
        }
        if !sources.is_empty() {
            stored.push(Consumed::event(clock.as_ref(), correlation, sources));
        }
        let request = AppendRequest {
            stream: self.stream.clone(),
            expected_version: self.version,
            events: stored,
            outbox,
            idempotency_key: None,
        };
        let result = self.deps.store.append(request).await;
        let appended = settle_append(&self.deps, &self.stream, result)?;
        self.version = appended.last_version;
        self.after_commit(&events, &halted);
        Ok(())
    }

    /// What an event tells others: users their final or voided amounts, markets to halt or
    /// to cancel an order that can never settle.
    fn outbox(&self, event: &OperatorEvent, applied: &Applied, halted: &mut BTreeSet<MarketId>) -> Vec<OutboxRecord> {
        let to_user = |user: UserId, record: UserSettlement| OutboxRecord {
            destination: USER_QUEUE.into(),
            group: user_group(user),
            payload: encode_user_record(&record),
        };
        let to_market = |market: MarketId, command: MarketCommand| OutboxRecord {
            destination: MARKET_QUEUE.into(),
            group: market_group(market),
            payload: encode_market_record(&command, None),
        };
        let mut records = Vec::new();
        match (event, applied) {
            (OperatorEvent::SettlementConfirmed { .. }, Applied::Settled(trades)) => {
                // One record per user and asset for the whole batch.
                let mut credits: BTreeMap<(UserId, AssetId), Amount> = BTreeMap::new();
                for q in trades {
                    let Some(spec) = self.specs.get(&q.market) else {
                        tracing::error!(market = %q.market, "settled trade of an unconfigured market");
                        continue;
                    };
                    for party in q.parties(spec) {
                        let (asset, amount) = party.receives;
                        let credit = credits.entry((party.user, asset)).or_default();
                        *credit = credit.checked_add(amount).unwrap_or(*credit);
                    }
                }
                for ((user, asset), amount) in credits.into_iter().filter(|(_, a)| !a.is_zero()) {
                    records.push(to_user(user, UserSettlement::Confirm { asset, amount }));
                }
            }
            (OperatorEvent::TradeVoided { trade, key, reason, order, .. }, _) => {
                for (user, party_order) in
                    [(trade.maker_user, trade.maker_order), (trade.taker_user, trade.taker_order)]
                {
                    let void = UserSettlement::Void { market: key.market, order: party_order, trade: *trade };
                    records.push(to_user(user, void));
                }
                if reason.halts() && halted.insert(key.market) {
                    records.push(to_market(key.market, MarketCommand::Halt));
                }
                if let (VoidReason::NonceInvalidated, Some(order)) = (reason, order) {
                    let user = if *order == trade.maker_order { trade.maker_user } else { trade.taker_user };
                    records.push(to_market(key.market, MarketCommand::Cancel { order: *order, user }));
                }
            }
            (OperatorEvent::WithdrawalCompleted { key, .. }, _) => {
                records.push(to_user_transfer(key.user, TransferRecord::WithdrawalCompleted { nonce: key.nonce }));
            }
            (OperatorEvent::WithdrawalFailed { key, reason }, _) => {
                let failed = TransferRecord::WithdrawalFailed { nonce: key.nonce, reason: reason.clone() };
                records.push(to_user_transfer(key.user, failed));
            }
            _ => {}
        }
        records
    }

    fn after_commit(&self, events: &[OperatorEvent], halted: &BTreeSet<MarketId>) {
        let now = self.now_ms();
        let alert = |kind: &'static str, market: Option<String>, message: String| {
            self.alerts.raise(Alert { kind, operator: self.address.to_string(), market, message, at_ms: now });
        };
        for event in events {
            match event {
                OperatorEvent::SettlementConfirmed { trades, chain_index, tx, .. } => {
                    bump(&self.counters.batches_confirmed);
                    tracing::info!(operator = %self.address, chain_index, %tx, trades = trades.len(), "batch settled");
                }
                OperatorEvent::TradeVoided { key, reason, detail, .. } => {
                    bump(&self.counters.trades_voided);
                    if reason.halts() {
                        let message = format!("trade {key} voided ({}): {detail}", reason.code());
                        alert("trade_voided", Some(key.market.to_string()), message);
                    } else {
                        tracing::warn!(trade = %key, reason = reason.code(), %detail, "trade voided");
                    }
                }
                OperatorEvent::SettlementFailed { batch, reason } => {
                    alert("settlement_failed", None, format!("batch {batch} given up: {reason}"));
                }
                OperatorEvent::AttemptFailed { batch, reason } => {
                    bump(&self.counters.attempts_failed);
                    tracing::warn!(operator = %self.address, batch, %reason, "settlement attempt failed");
                }
                _ => {}
            }
        }
        for market in halted {
            alert("market_halted", Some(market.to_string()), format!("market {market} halted by settlement"));
        }
    }

    // -----------------------------------------------------------------------------------
    // Taking trades

    /// Takes decoded settlement-queue records (already past the consumed positions) in one
    /// append. Returns false, taking nothing, when the operator holds as many unsettled
    /// trades or withdrawals as it may: the records stay queued.
    pub(crate) async fn take(&mut self, items: Vec<(MessageSource, Settle)>) -> Result<bool, ActorError> {
        let held = self.state.unsettled() + self.state.withdrawals().len();
        if held + items.len() > MAX_UNSETTLED_TRADES {
            return Ok(false);
        }
        let now = self.now_ms();
        let mut events = Vec::new();
        let mut sources = Vec::new();
        let mut seen = BTreeSet::new();
        let mut trades = Vec::with_capacity(items.len());
        for (source, item) in items {
            match item {
                Settle::Trade(trade) => trades.push((source, trade)),
                Settle::Withdrawal(w) => {
                    if !self.consumed.is_new(&source) {
                        continue;
                    }
                    sources.push(source);
                    let held = self.state.withdrawals().get(&w.key()).is_some();
                    if !held && seen_withdrawal(&events, &w) {
                        continue;
                    }
                    if !held {
                        events.push(OperatorEvent::WithdrawalQueued { withdrawal: w });
                    }
                }
            }
        }
        for (source, trade) in trades {
            if !self.consumed.is_new(&source) {
                continue;
            }
            sources.push(source);
            let key = trade.key();
            if !seen.insert(key) {
                continue;
            }
            let checked = match self.specs.get(&trade.market) {
                Some(spec) => trade.to_settle(spec).map(|_| ()).map_err(|e| e.to_string()),
                None => Err(format!("market {} is not configured", trade.market)),
            };
            let inner = trade.trade;
            let Some(queued) = self.state.queue(trade, now) else { continue };
            events.push(queued);
            if let Err(detail) = checked {
                // Voided at once, in the same append: it could only ever fail.
                let reason = VoidReason::Unsettleable;
                events.push(OperatorEvent::TradeVoided { trade: inner, key, reason, detail, batch: None, order: None });
            }
        }
        self.commit(events, &sources).await?;
        Ok(true)
    }

    // -----------------------------------------------------------------------------------
    // One step

    pub(crate) async fn step(&mut self) -> Result<(), ActorError> {
        bump(&self.counters.steps);
        let now = self.now_ms();
        let result = async {
            if !self.reconciled {
                self.reconcile(now).await?;
                self.reconciled = true;
            }
            self.track(now).await?;
            self.submit_withdrawals(now).await?;
            self.submit(now).await
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(StepError::Chain(e)) => {
                bump(&self.counters.chain_errors);
                tracing::warn!(operator = %self.address, error = %e, "chain unavailable; backing off");
                self.back_off(now);
                Ok(())
            }
            Err(StepError::Actor(e)) => Err(e),
        }
    }
}
