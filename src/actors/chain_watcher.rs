//! `ChainWatcherActor`: one per chain, the only writer of `chain:{chain_id}`. It follows the
//! exchange's `Deposited` logs from a start block and credits each deposit to its user once
//! the deposit is `confirmations` blocks deep (see `chain::deposits` for why a shallow
//! deposit is never read, so a reorg before that depth leaves nothing to undo).
//!
//! Crash safety is the engine's outbox pattern: a credit is stored in the watcher's stream
//! together with the user-queue record that carries it, in one append. If the process dies
//! before the user applied it, the relay sends the record again after the restart, and the
//! user applies it once (its consumed position for the watcher's stream, and the deposit id it
//! remembers). If it dies before the watcher's append, the range is read again, and nothing
//! was credited yet. So a deposit is neither lost nor doubled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::Address;
use tokio::sync::watch;
use uuid::Uuid;

use super::deps::{replay_stream, settle_append, ActorDeps, ActorError};
use super::leases::Leases;
use super::singleton::{Placement, SingletonLease};
use crate::chain::deposit_logs::DepositLogs;
use crate::chain::deposits::{
    decode_watcher_event, encode_transfer_record, encode_watcher_event, TransferRecord, WatcherEvent, WatcherState,
};
use crate::domain::AssetId;
use crate::events::{AppendRequest, EventStore, NewEvent, OutboxRecord, StreamId};
use crate::queue::{user_group, USER_QUEUE};
use crate::settlement::ChainError;

/// What the watcher follows and how.
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    pub chain_id: u64,
    pub exchange: Address,
    /// The first block to read when the stream is new (the exchange's deployment block).
    pub start_block: u64,
    /// How deep a deposit's block must be to credit it (1 = the head itself).
    pub confirmations: u64,
    pub poll_interval: Duration,
    /// The tokens the exchange trades; a deposit of another token is recorded as ignored.
    pub tokens: BTreeMap<Address, AssetId>,
    /// The most blocks one poll reads (a node caps `eth_getLogs` ranges).
    pub max_blocks_per_poll: u64,
    /// With no deposit in them, at most this many blocks are read between two stored cursors:
    /// an idle chain costs one event per this many blocks, and a restart re-reads at most these.
    pub cursor_every_blocks: u64,
}

impl WatcherConfig {
    pub fn new(chain_id: u64, exchange: Address, tokens: BTreeMap<Address, AssetId>) -> WatcherConfig {
        WatcherConfig {
            chain_id,
            exchange,
            start_block: 0,
            confirmations: 12,
            poll_interval: Duration::from_secs(1),
            tokens,
            max_blocks_per_poll: 2_000,
            cursor_every_blocks: 1_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatcherError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Actor(#[from] ActorError),
}

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// The last block read, if the poll read any.
    pub through: Option<u64>,
    pub credited: usize,
    pub ignored: usize,
}

/// The watcher's live state, for the operator API and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherView {
    pub stream: StreamId,
    pub version: u64,
    /// The first block not yet read.
    pub next_block: u64,
    /// The first block not yet stored as read (a restart reads again from here).
    pub stored_next_block: u64,
    pub credited: u64,
}

/// The watcher without its actor shell: what a poll needs, owned, so a poll can run as one
/// future and hand it back.
struct Watcher<S: EventStore + 'static, L: DepositLogs + 'static> {
    state: WatcherState,
    /// Read ahead of the stored cursor on stretches without deposits (see
    /// `cursor_every_blocks`).
    next_block: u64,
    version: u64,
    stream: StreamId,
    deps: Arc<ActorDeps<S>>,
    logs: Arc<L>,
    config: Arc<WatcherConfig>,
}

impl<S: EventStore + 'static, L: DepositLogs + 'static> Watcher<S, L> {
    async fn load(deps: Arc<ActorDeps<S>>, logs: Arc<L>, config: Arc<WatcherConfig>) -> Result<Self, ActorError> {
        let stream = StreamId::chain(config.chain_id);
        let mut state = WatcherState::new(config.start_block);
        let (_, version) = replay_stream(deps.store.as_ref(), &stream, 0, |stored| {
            let replay =
                |reason: String| ActorError::Replay { stream: stream.clone(), version: stored.version, reason };
            let event = decode_watcher_event(&stored.event_type, stored.value().map_err(replay)?)
                .map_err(|e| replay(e.to_string()))?;
            state.apply(&event).map_err(|e| replay(e.to_string()))
        })
        .await?;
        let next_block = state.next_block();
        Ok(Watcher { state, next_block, version, stream, deps, logs, config })
    }

    async fn poll(&mut self) -> Result<PollReport, WatcherError> {
        let head = self.logs.head().await?;
        let Some(safe) = WatcherState::safe_block(head, self.config.confirmations) else {
            return Ok(PollReport::default());
        };
        if safe < self.next_block {
            return Ok(PollReport::default());
        }
        let through = safe.min(self.next_block.saturating_add(self.config.max_blocks_per_poll.max(1) - 1));
        let logs = self.logs.deposits(self.config.exchange, self.next_block, through).await?;
        // Decided against the stored state: logs between the stored cursor and `next_block`
        // had no deposit, so reading from `next_block` decides the same.
        let events = self.state.decide(&logs, through, &self.config.tokens);
        let mut report = PollReport { through: Some(through), ..PollReport::default() };
        for e in &events {
            match e {
                WatcherEvent::DepositCredited { .. } => report.credited += 1,
                WatcherEvent::DepositIgnored { .. } => report.ignored += 1,
                WatcherEvent::Scanned { .. } => {}
            }
        }
        let quiet = report.credited + report.ignored == 0;
        if quiet && through + 1 - self.state.next_block() < self.config.cursor_every_blocks.max(1) {
            self.next_block = through + 1;
            return Ok(report);
        }
        self.commit(events).await?;
        self.next_block = self.state.next_block();
        Ok(report)
    }

    /// Stores `events` with the user-queue records they imply, then folds them in.
    async fn commit(&mut self, events: Vec<WatcherEvent>) -> Result<(), ActorError> {
        let correlation = Uuid::now_v7();
        let clock = self.deps.clock.as_ref();
        let mut stored = Vec::with_capacity(events.len());
        let mut outbox = Vec::new();
        for event in &events {
            if let WatcherEvent::DepositCredited { deposit, user, asset, amount, .. } = event {
                let record = TransferRecord::Deposit { deposit: *deposit, asset: *asset, amount: *amount };
                outbox.push(OutboxRecord {
                    destination: USER_QUEUE.into(),
                    group: user_group(*user),
                    payload: encode_transfer_record(&record),
                });
            }
            let (event_type, schema_version, payload) = encode_watcher_event(event);
            stored.push(NewEvent::new(clock, correlation, correlation, event_type, schema_version, payload));
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
        for event in &events {
            if let Err(e) = self.state.apply(event) {
                // Decided against this very state: a failure is a bug, and the stream (not
                // memory) is the truth, so the caller reloads.
                let reason = e.to_string();
                return Err(ActorError::Replay { stream: self.stream.clone(), version: appended.last_version, reason });
            }
        }
        self.version = appended.last_version;
        Ok(())
    }

    fn view(&self) -> WatcherView {
        WatcherView {
            stream: self.stream.clone(),
            version: self.version,
            next_block: self.next_block,
            stored_next_block: self.state.next_block(),
            credited: self.state.credited(),
        }
    }
}

pub struct ChainWatcherActor<S: EventStore + 'static, L: DepositLogs + 'static> {
    /// Taken while a poll runs (the handler is atomic, so no other message sees it missing).
    watcher: Option<Watcher<S, L>>,
}

impl<S: EventStore + 'static, L: DepositLogs + 'static> Actor for ChainWatcherActor<S, L> {
    type Context = Context<Self>;
}

/// Read the chain once now.
#[derive(Message)]
#[rtype(result = "Result<PollReport, WatcherError>")]
pub struct Poll;

#[derive(Message)]
#[rtype(result = "Option<WatcherView>")]
pub struct InspectWatcher;

impl<S: EventStore + 'static, L: DepositLogs + 'static> Handler<Poll> for ChainWatcherActor<S, L> {
    type Result = AtomicResponse<Self, Result<PollReport, WatcherError>>;

    fn handle(&mut self, _: Poll, _: &mut Self::Context) -> Self::Result {
        let Some(mut watcher) = self.watcher.take() else {
            return AtomicResponse::new(Box::pin(fut::ready(
                Err(ActorError::Mailbox("watcher missing".into()).into()),
            )));
        };
        let work = async move {
            let result = watcher.poll().await;
            let watcher = match &result {
                // Memory may have run ahead of the store: rebuild from the stream.
                Err(WatcherError::Actor(_)) => {
                    match Watcher::load(watcher.deps.clone(), watcher.logs.clone(), watcher.config.clone()).await {
                        Ok(fresh) => fresh,
                        Err(e) => {
                            tracing::error!(error = %e, "chain watcher cannot reload its stream");
                            watcher
                        }
                    }
                }
                _ => watcher,
            };
            (watcher, result)
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|(watcher, result), act, _| {
            act.watcher = Some(watcher);
            result
        })))
    }
}

impl<S: EventStore + 'static, L: DepositLogs + 'static> Handler<InspectWatcher> for ChainWatcherActor<S, L> {
    type Result = Option<WatcherView>;

    fn handle(&mut self, _: InspectWatcher, _: &mut Self::Context) -> Self::Result {
        self.watcher.as_ref().map(Watcher::view)
    }
}

/// The running actor's address; `None` while this node stands by (another node holds the
/// watcher's lease).
type Current<S, L> = Arc<std::sync::Mutex<Option<Addr<ChainWatcherActor<S, L>>>>>;

fn current<S: EventStore + 'static, L: DepositLogs + 'static>(
    addr: &Current<S, L>,
) -> Option<Addr<ChainWatcherActor<S, L>>> {
    // The lock only guards a swap of the address; a panic cannot leave it half-written.
    addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

fn set_current<S: EventStore + 'static, L: DepositLogs + 'static>(
    addr: &Current<S, L>,
    actor: Option<Addr<ChainWatcherActor<S, L>>>,
) {
    *addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = actor;
}

/// A running watcher: poll it, inspect it, stop it (dropping the handle stops it too).
/// Among several nodes, it runs only on the holder of its stream's lease.
pub struct ChainWatcherHandle<S: EventStore + 'static, L: DepositLogs + 'static> {
    addr: Current<S, L>,
    lease: Arc<SingletonLease<S>>,
    stop: watch::Sender<bool>,
}

impl<S: EventStore + 'static, L: DepositLogs + 'static> ChainWatcherHandle<S, L> {
    /// Reads the chain once now; `HostedElsewhere` when another node runs the watcher.
    pub async fn poll_now(&self) -> Result<PollReport, WatcherError> {
        let Some(addr) = current(&self.addr) else { return Err(self.lease.not_running("chain watcher").await.into()) };
        addr.send(Poll).await.map_err(|e| ActorError::Mailbox(e.to_string()))?
    }

    pub async fn inspect(&self) -> Result<Option<WatcherView>, ActorError> {
        let Some(addr) = current(&self.addr) else { return Err(self.lease.not_running("chain watcher").await) };
        addr.send(InspectWatcher).await.map_err(|e| ActorError::Mailbox(e.to_string()))
    }

    /// Whether this node runs the watcher, or stands by for the node that does.
    pub async fn placement(&self) -> Placement {
        match current(&self.addr) {
            Some(_) => Placement::Here,
            None => self.lease.placement().await,
        }
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl<S: EventStore + 'static, L: DepositLogs + 'static> Drop for ChainWatcherHandle<S, L> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Loads the watcher from its stream and polls every `poll_interval` until the handle is
/// stopped or `shutdown` is set. A failed poll is logged and tried again next period. Among
/// several nodes (`leases`) it is loaded and polls only while this node holds the lease of
/// its stream, and is dropped when the lease is lost (the next holder reloads the stream).
pub async fn start<S: EventStore + 'static, L: DepositLogs + 'static>(
    deps: Arc<ActorDeps<S>>,
    logs: Arc<L>,
    config: WatcherConfig,
    leases: Option<Arc<Leases<S>>>,
    shutdown: watch::Receiver<bool>,
) -> Result<ChainWatcherHandle<S, L>, ActorError> {
    let config = Arc::new(config);
    let lease = Arc::new(SingletonLease::new(leases, StreamId::chain(config.chain_id)));
    // One node: the watcher loads now, so a stream that does not load fails the start.
    let first = match lease.is_leased() {
        true => None,
        false => Some(
            ChainWatcherActor { watcher: Some(Watcher::load(deps.clone(), logs.clone(), config.clone()).await?) }
                .start(),
        ),
    };
    let addr: Current<S, L> = Arc::new(std::sync::Mutex::new(first));
    let (stop, stopped) = watch::channel(false);
    let ticking = Ticking { addr: addr.clone(), lease: lease.clone(), deps, logs, config };
    actix_rt::spawn(ticking.run(shutdown, stopped));
    Ok(ChainWatcherHandle { addr, lease, stop })
}

/// The poll loop of one node and what it needs to load the watcher when it takes over.
struct Ticking<S: EventStore + 'static, L: DepositLogs + 'static> {
    addr: Current<S, L>,
    lease: Arc<SingletonLease<S>>,
    deps: Arc<ActorDeps<S>>,
    logs: Arc<L>,
    config: Arc<WatcherConfig>,
}

impl<S: EventStore + 'static, L: DepositLogs + 'static> Ticking<S, L> {
    async fn run(self, mut shutdown: watch::Receiver<bool>, mut stopped: watch::Receiver<bool>) {
        let every = self.config.poll_interval;
        loop {
            if !self.lease.holds() {
                // Lost (or never held): the cursor in memory may be behind the stream.
                set_current(&self.addr, None);
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => break,
                    _ = stopped.wait_for(|s| *s) => break,
                    _ = self.lease.until_held() => {}
                }
            }
            if current(&self.addr).is_none() {
                match Watcher::load(self.deps.clone(), self.logs.clone(), self.config.clone()).await {
                    Ok(watcher) => set_current(&self.addr, Some(ChainWatcherActor { watcher: Some(watcher) }.start())),
                    Err(e) => tracing::error!(error = %e, "chain watcher does not load its stream; retrying"),
                }
            }
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                _ = stopped.wait_for(|s| *s) => break,
                _ = actix_rt::time::sleep(every) => {}
            }
            // Between two polls: a lease lost during the pause stops the watcher here.
            let Some(ticker) = current(&self.addr).filter(|_| self.lease.holds()) else { continue };
            match ticker.send(Poll).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "chain watcher poll failed; retrying"),
                Err(_) => set_current(&self.addr, None),
            }
        }
        // One node: the handle keeps the actor for reads, as before. Several: it stops here,
        // and if the handle (not the engine) stopped it, the next holder takes over at once.
        if self.lease.is_leased() {
            set_current(&self.addr, None);
            if !*shutdown.borrow() {
                self.lease.release().await;
            }
        }
    }
}
