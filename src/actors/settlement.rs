//! `SettlementOperatorActor`: one per operator wallet, the only writer of
//! `operator:{address}`. It consumes the settlement queue (the trades markets matched),
//! batches them, and settles each batch on-chain with the users' signed orders and its own
//! signature, assigning the wallet's nonces itself (see `settlement::state` for what it holds
//! and `operator.rs` for one step of its work). Confirmed batches make the users' settling
//! funds available; failed ones are rolled forward with compensations, never edited.
//!
//! The actor runs a step every `poll_interval`, and takes deliveries between steps. Both
//! await the chain or the store while holding the actor (`AtomicResponse`), so the state is
//! only ever touched by one of them at a time.

mod operator;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::Address;
use tokio::sync::{oneshot, watch};

use self::operator::Operator;
pub use self::operator::{OperatorCounters, Settle};
use super::deps::{ActorDeps, ActorError};
use super::leases::Leases;
use super::singleton::{Placement, SingletonLease};
use crate::domain::{MarketId, MarketSpec, UserId};
use crate::events::{EventStore, StreamId};
use crate::queue::relay::ConsumeTracker;
use crate::queue::{operator_group, Delivery, MessageSource, Queue, SETTLEMENT_QUEUE};
use crate::settlement::alert::Alerts;
use crate::settlement::chain::{Chain, ChainError};
use crate::settlement::config::{ConfigError, SettlementConfig};
use crate::settlement::nonce::TxPurpose;
use crate::settlement::records::decode_trade_record;
use crate::settlement::state::OperatorStats;
use crate::settlement::withdrawals::decode_withdrawal_record;

#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the settlement queue's group is {group:?}, but this operator's is {expected:?}")]
    GroupMismatch { group: String, expected: String },
    #[error("the node is on chain {actual}, the configuration says {expected}")]
    WrongChain { expected: u64, actual: u64 },
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Actor(#[from] ActorError),
}

/// Runs one step (see `operator.rs`), then schedules the next.
#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

/// Settlement-queue records, decoded, in queue order. Answers whether they were taken (false:
/// the operator is full, the records stay queued).
#[derive(Message)]
#[rtype(result = "Result<bool, ActorError>")]
struct Deliveries {
    items: Vec<(MessageSource, Settle)>,
}

/// A read of the live state.
#[derive(Message)]
#[rtype(result = "Option<OperatorView>")]
pub struct InspectOperator;

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

/// One nonce in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlightView {
    pub nonce: u64,
    /// Transactions signed for it, oldest first: (gas price, what it does).
    pub attempts: Vec<(u128, TxPurpose)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorView {
    pub address: Address,
    pub stream: StreamId,
    pub version: u64,
    pub next_nonce: u64,
    pub in_flight: Vec<InFlightView>,
    pub pending_trades: usize,
    /// Withdrawals held until the chain answers.
    pub pending_withdrawals: usize,
    /// The oldest open batch: (id, trades, failures).
    pub batch: Option<(u64, usize, u32)>,
    /// Batches open (in flight or waiting to go out again).
    pub open_batches: usize,
    pub next_chain_index: u64,
    pub stats: OperatorStats,
}

pub struct SettlementOperatorActor<S: EventStore + 'static, C: Chain + 'static> {
    /// Taken out while a step or a delivery is being handled (the handler holds the actor,
    /// so no other message sees it missing).
    operator: Option<Operator<S, C>>,
    poll: Duration,
    /// Tells the supervisor the actor stopped.
    stopped: Option<oneshot::Sender<()>>,
}

impl<S: EventStore + 'static, C: Chain + 'static> Actor for SettlementOperatorActor<S, C> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(Tick);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(tell) = self.stopped.take() {
            let _ = tell.send(());
        }
    }
}

impl<S: EventStore + 'static, C: Chain + 'static> Handler<Tick> for SettlementOperatorActor<S, C> {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Tick, _: &mut Self::Context) -> Self::Result {
        let work = with_operator(|mut operator| async move {
            let result = operator.step().await;
            (operator, result)
        })
        .map(|outcome, act, ctx| match outcome {
            Some((operator, Ok(()))) => {
                act.operator = Some(operator);
                ctx.notify_later(Tick, act.poll);
            }
            Some((operator, Err(e))) => {
                // Memory may have run ahead of the store: rebuild from the stream.
                tracing::error!(stream = %operator.stream, error = %e, "settlement operator stopped");
                ctx.stop();
            }
            None => {}
        });
        AtomicResponse::new(Box::pin(work))
    }
}

impl<S: EventStore + 'static, C: Chain + 'static> Handler<Deliveries> for SettlementOperatorActor<S, C> {
    type Result = AtomicResponse<Self, Result<bool, ActorError>>;

    fn handle(&mut self, msg: Deliveries, _: &mut Self::Context) -> Self::Result {
        let work = with_operator(|mut operator| async move {
            let result = operator.take(msg.items).await;
            (operator, result)
        })
        .map(|outcome, act, ctx| match outcome {
            Some((operator, Ok(taken))) => {
                act.operator = Some(operator);
                Ok(taken)
            }
            Some((_, Err(e))) => {
                ctx.stop();
                Err(e)
            }
            None => Err(ActorError::Mailbox("the operator stopped".into())),
        });
        AtomicResponse::new(Box::pin(work))
    }
}

/// Runs `work` with the operator taken out of the actor, inside the handler's held future:
/// taken when that future first runs, not when the message arrives, since actix may start
/// another message's handler before this one's future runs (the futures themselves never
/// interleave). None if the actor already gave the operator up (it is stopping).
fn with_operator<S, C, F, Fut, T>(work: F) -> impl ActorFuture<SettlementOperatorActor<S, C>, Output = Option<T>>
where
    S: EventStore + 'static,
    C: Chain + 'static,
    F: FnOnce(Operator<S, C>) -> Fut + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: 'static,
{
    fut::ready(()).then(move |(), act: &mut SettlementOperatorActor<S, C>, _| {
        let operator = act.operator.take();
        async move {
            match operator {
                Some(operator) => Some(work(operator).await),
                None => None,
            }
        }
        .into_actor(act)
    })
}

impl<S: EventStore + 'static, C: Chain + 'static> Handler<InspectOperator> for SettlementOperatorActor<S, C> {
    type Result = MessageResult<InspectOperator>;

    fn handle(&mut self, _: InspectOperator, _: &mut Self::Context) -> Self::Result {
        // Handlers that take the operator out hold the actor until they put it back, so it
        // is missing only once a failed handler stopped the actor.
        let Some(op) = &self.operator else { return MessageResult(None) };
        let state = &op.state;
        MessageResult(Some(OperatorView {
            address: op.address,
            stream: op.stream.clone(),
            version: op.version,
            next_nonce: state.nonces().next(),
            in_flight: state
                .nonces()
                .slots()
                .map(|s| InFlightView {
                    nonce: s.nonce,
                    attempts: s.attempts.iter().map(|a| (a.gas_price, a.purpose)).collect(),
                })
                .collect(),
            pending_trades: state.pending().count(),
            pending_withdrawals: state.withdrawals().len(),
            batch: state.batches().next().map(|b| (b.id, b.trades.len(), b.failures)),
            open_batches: state.batches().count(),
            next_chain_index: state.next_chain_index(),
            stats: state.stats(),
        }))
    }
}

impl<S: EventStore + 'static, C: Chain + 'static> Handler<Stop> for SettlementOperatorActor<S, C> {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The running actor's address; `None` while this node stands by (another node holds the
/// operator's lease) or between losing the lease and taking it again.
type Current<S, C> = Arc<std::sync::Mutex<Option<Addr<SettlementOperatorActor<S, C>>>>>;

fn current<S: EventStore + 'static, C: Chain + 'static>(
    shared: &Current<S, C>,
) -> Option<Addr<SettlementOperatorActor<S, C>>> {
    // A poisoned lock only means a panic while swapping an address in; the address is whole.
    shared.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn set_current<S: EventStore + 'static, C: Chain + 'static>(
    shared: &Current<S, C>,
    addr: Option<Addr<SettlementOperatorActor<S, C>>>,
) {
    *shared.lock().unwrap_or_else(|e| e.into_inner()) = addr;
}

/// A running operator: its actor (restarted by a supervisor if it stops) and its consumer.
/// Among several nodes, the actor runs only on the holder of the operator's lease.
pub struct SettlementHandle<S: EventStore + 'static, C: Chain + 'static> {
    addr: Current<S, C>,
    stop: watch::Sender<bool>,
    lease: Arc<SingletonLease<S>>,
    pub address: Address,
    pub alerts: Arc<Alerts>,
    pub counters: Arc<OperatorCounters>,
}

impl<S: EventStore + 'static, C: Chain + 'static> SettlementHandle<S, C> {
    /// The live state; `HostedElsewhere` naming the node that runs the operator when this
    /// node stands by.
    pub async fn inspect(&self) -> Result<OperatorView, ActorError> {
        let Some(addr) = current(&self.addr) else { return Err(self.lease.not_running("settlement operator").await) };
        let view = addr.send(InspectOperator).await.map_err(|e| ActorError::Mailbox(e.to_string()))?;
        view.ok_or_else(|| ActorError::Mailbox("the operator stopped".into()))
    }

    /// Whether the actor is running on this node now (between a failure and its restart, or
    /// while another node holds the lease, it is not).
    pub fn running(&self) -> bool {
        current(&self.addr).is_some_and(|a| a.connected())
    }

    /// Whether this node runs the operator, or stands by for the node that does.
    pub async fn placement(&self) -> Placement {
        match current(&self.addr) {
            Some(_) => Placement::Here,
            None => self.lease.placement().await,
        }
    }

    /// Stops the supervisor, the consumer and the actor (as a crash would, between two
    /// messages); the stream stays, and a new `start` continues from it. Among several nodes
    /// the lease is given up once the actor stopped, so another node takes over at once.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(addr) = current(&self.addr) {
            addr.do_send(Stop);
        }
    }
}

impl<S: EventStore + 'static, C: Chain + 'static> Drop for SettlementHandle<S, C> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What `start` needs from the engine.
pub struct EngineParts<S: EventStore + 'static, Q: Queue + 'static> {
    pub deps: Arc<ActorDeps<S>>,
    pub specs: Arc<BTreeMap<MarketId, MarketSpec>>,
    pub queue: Arc<Q>,
    /// Set with a non-durable queue: told about every delivery the operator took.
    pub tracker: Option<Arc<ConsumeTracker>>,
    /// The engine's shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Set when several nodes share the store: the operator runs only under its lease.
    pub leases: Option<Arc<Leases<S>>>,
}

/// Starts the operator for `config.key`'s wallet on the current arbiter: checks the
/// configuration and the chain, rebuilds the operator from its stream, and consumes the
/// settlement queue until stopped. Among several nodes (leases) the operator is rebuilt
/// and run only while this node holds the lease of its stream; until then it stands by.
pub async fn start<S: EventStore + 'static, Q: Queue + 'static, C: Chain + 'static>(
    parts: EngineParts<S, Q>,
    config: SettlementConfig,
    chain: Arc<C>,
) -> Result<SettlementHandle<S, C>, SettlementError> {
    config.validate()?;
    let address = config.key.address();
    let expected = operator_group(UserId(address.0 .0));
    if parts.deps.settlement_group != expected {
        return Err(SettlementError::GroupMismatch { group: parts.deps.settlement_group.clone(), expected });
    }
    let actual = chain.chain_id().await?;
    if actual != config.chain_id {
        return Err(SettlementError::WrongChain { expected: config.chain_id, actual });
    }
    if let Some(tracker) = &parts.tracker {
        tracker.consume_in_process(SETTLEMENT_QUEUE);
    }
    let alerts = Arc::new(Alerts::new(config.alert_webhook.clone()));
    let counters = Arc::new(OperatorCounters::default());
    let lease = Arc::new(SingletonLease::new(parts.leases, StreamId::operator(UserId(address.0 .0))));
    let recipe = Recipe {
        config,
        chain_id: actual,
        deps: parts.deps,
        specs: parts.specs,
        chain,
        alerts: alerts.clone(),
        counters: counters.clone(),
    };
    let addr: Current<S, C> = Arc::new(std::sync::Mutex::new(None));
    // One node: the operator starts now, so a stream that does not load fails the start.
    let first = match lease.is_leased() {
        true => None,
        false => {
            let (started, stopped) = recipe.launch().await?;
            set_current(&addr, Some(started));
            Some(stopped)
        }
    };
    let (stop, own_stop) = watch::channel(false);
    actix_rt::spawn(consume(parts.queue, addr.clone(), parts.tracker, parts.shutdown.clone(), own_stop.clone()));
    let stops = Stops { shutdown: parts.shutdown, stop: own_stop };
    actix_rt::spawn(host(recipe, addr.clone(), first, lease.clone(), stops));
    Ok(SettlementHandle { addr, stop, lease, address, alerts, counters })
}

/// Everything an operator is built from, kept to build it again after it stopped.
struct Recipe<S: EventStore + 'static, C: Chain + 'static> {
    config: SettlementConfig,
    chain_id: u64,
    deps: Arc<ActorDeps<S>>,
    specs: Arc<BTreeMap<MarketId, MarketSpec>>,
    chain: Arc<C>,
    alerts: Arc<Alerts>,
    counters: Arc<OperatorCounters>,
}

impl<S: EventStore + 'static, C: Chain + 'static> Recipe<S, C> {
    /// Rebuilds the operator from its stream and starts its actor.
    async fn launch(&self) -> Result<(Addr<SettlementOperatorActor<S, C>>, oneshot::Receiver<()>), ActorError> {
        let operator = Operator::load(
            self.config.clone(),
            self.chain_id,
            self.deps.clone(),
            self.specs.clone(),
            self.chain.clone(),
            self.alerts.clone(),
            self.counters.clone(),
        )
        .await?;
        tracing::info!(stream = %operator.stream, version = operator.version, "settlement operator started");
        let (tell, stopped) = oneshot::channel();
        let actor =
            SettlementOperatorActor { operator: Some(operator), poll: self.config.poll_interval, stopped: Some(tell) };
        Ok((actor.start(), stopped))
    }
}

/// The engine's shutdown and the handle's own stop.
struct Stops {
    shutdown: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
}

impl Stops {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || *self.stop.borrow()
    }

    /// Resolves once either is set.
    async fn until_stopping(&mut self) {
        let (shutdown, stop) = (&mut self.shutdown, &mut self.stop);
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

/// Why a supervised run of the operator ended.
enum RunEnded {
    /// The engine or the handle stopped it.
    Stopped,
    /// Another node has the lease now (or this node could not renew it in time).
    LeaseLost,
}

/// Runs the operator on this node while it holds the lease (always, without leases):
/// stands by until the lease is held, rebuilds the operator from its stream, supervises it,
/// and stops it when the lease is lost, then stands by again. `first` is an actor already
/// started (one node).
async fn host<S: EventStore + 'static, C: Chain + 'static>(
    recipe: Recipe<S, C>,
    addr: Current<S, C>,
    mut first: Option<oneshot::Receiver<()>>,
    lease: Arc<SingletonLease<S>>,
    mut stops: Stops,
) {
    loop {
        let stopped = match first.take() {
            Some(stopped) => stopped,
            None => {
                tokio::select! {
                    _ = stops.until_stopping() => return,
                    _ = lease.until_held() => {}
                }
                match relaunch(&recipe, &addr, &lease, &mut stops).await {
                    Some(stopped) => stopped,
                    None if stops.stopping() => return,
                    None => continue,
                }
            }
        };
        let (ended, stopped) = supervise(&recipe, &addr, stopped, &lease, &mut stops).await;
        // The actor finishes the step it is in (its handlers hold it until their store and
        // chain calls are done) and stops before the next one: nothing is left half-sent,
        // and the next holder rebuilds every transaction in flight from the stream.
        if let Some(actor) = current(&addr) {
            actor.do_send(Stop);
        }
        if let Some(stopped) = stopped {
            let _ = actix_rt::time::timeout(STOP_WAIT, stopped).await;
        }
        if lease.is_leased() {
            set_current(&addr, None);
        }
        match ended {
            RunEnded::Stopped => {
                lease.release().await;
                return;
            }
            RunEnded::LeaseLost => tracing::warn!("settlement operator stopped here: another node holds its lease"),
        }
    }
}

/// How long a stopping operator may take to finish its step before the lease is given up
/// anyway (the append's expected version still refuses a late write).
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Rebuilds and starts the actor once this node holds the lease, retrying with backoff
/// while the stream does not load; `None` if stopped or the lease was lost meanwhile.
async fn relaunch<S: EventStore + 'static, C: Chain + 'static>(
    recipe: &Recipe<S, C>,
    addr: &Current<S, C>,
    lease: &SingletonLease<S>,
    stops: &mut Stops,
) -> Option<oneshot::Receiver<()>> {
    let mut failures = 0u32;
    loop {
        if stops.stopping() || !lease.holds() {
            return None;
        }
        match recipe.launch().await {
            Ok((started, stopped)) => {
                set_current(addr, Some(started));
                return Some(stopped);
            }
            Err(e) => tracing::error!(error = %e, "settlement operator does not rebuild; retrying"),
        }
        failures = failures.saturating_add(1);
        let pause = Duration::from_millis(recipe.config.backoff.delay_ms(failures, 0));
        tokio::select! {
            _ = stops.until_stopping() => return None,
            _ = actix_rt::time::sleep(pause) => {}
        }
    }
}

/// Restarts the actor whenever it stops on its own (a failed append: another writer, a
/// store error), rebuilding it from its stream, until the engine or the handle stops it or
/// the lease is lost. Hands back the running actor's stop signal, if there is one.
async fn supervise<S: EventStore + 'static, C: Chain + 'static>(
    recipe: &Recipe<S, C>,
    addr: &Current<S, C>,
    mut stopped: oneshot::Receiver<()>,
    lease: &SingletonLease<S>,
    stops: &mut Stops,
) -> (RunEnded, Option<oneshot::Receiver<()>>) {
    let mut restarts = 0u32;
    loop {
        tokio::select! {
            _ = stops.until_stopping() => return (RunEnded::Stopped, Some(stopped)),
            _ = lease.until_lost() => return (RunEnded::LeaseLost, Some(stopped)),
            _ = &mut stopped => {}
        }
        set_current(addr, None);
        restarts = restarts.saturating_add(1);
        crate::actors::Counters::bump(&recipe.deps.counters.restarts);
        let pause = Duration::from_millis(recipe.config.backoff.delay_ms(restarts, 0));
        tokio::select! {
            _ = stops.until_stopping() => return (RunEnded::Stopped, None),
            _ = actix_rt::time::sleep(pause) => {}
        }
        match relaunch(recipe, addr, lease, stops).await {
            Some(fresh) => stopped = fresh,
            None if stops.stopping() => return (RunEnded::Stopped, None),
            None => return (RunEnded::LeaseLost, None),
        }
    }
}

/// Receives settlement-queue records and hands them to the operator in queue order, until
/// the engine or the handle stops it. A record that does not read is retried, then
/// dead-lettered; the ones after it wait, keeping the queue's order.
async fn consume<Q: Queue + 'static, S: EventStore + 'static, C: Chain + 'static>(
    queue: Arc<Q>,
    addr: Current<S, C>,
    tracker: Option<Arc<ConsumeTracker>>,
    mut shutdown: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    const MAX_RECEIVE: usize = 256;
    const RETRY_AFTER: Duration = Duration::from_millis(200);
    // A node that does not run the operator does not receive at all, rather than receive
    // and hand every record back: the queue has one group (the operator wallet), so every
    // record is the lease holder's, and each needless receive would count towards the
    // dead-letter limit and hold the group away from the holder for a moment.
    const STANDBY_PAUSE: Duration = Duration::from_millis(100);
    while !*shutdown.borrow() && !*stop.borrow() {
        let Some(actor) = current(&addr) else {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = stop.changed() => return,
                _ = actix_rt::time::sleep(STANDBY_PAUSE) => {}
            }
            continue;
        };
        let received = tokio::select! {
            _ = shutdown.changed() => return,
            _ = stop.changed() => return,
            received = queue.receive(SETTLEMENT_QUEUE, MAX_RECEIVE, Duration::from_millis(50)) => received,
        };
        let deliveries = match received {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "settlement queue unavailable; retrying");
                actix_rt::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        let (items, bad) = decode(&deliveries);
        let taken = if items.is_empty() {
            Ok(true)
        } else {
            match actor.send(Deliveries { items }).await {
                Ok(result) => result,
                Err(e) => Err(ActorError::Mailbox(e.to_string())),
            }
        };
        let good = bad.unwrap_or(deliveries.len());
        for (i, delivery) in deliveries.iter().enumerate() {
            let applied = i < good && matches!(taken, Ok(true));
            let result = if applied {
                if let Some(tracker) = &tracker {
                    tracker.confirm(&delivery.message.source);
                }
                queue.ack(SETTLEMENT_QUEUE, &delivery.receipt).await
            } else {
                let after = if i == good || taken.is_err() { RETRY_AFTER } else { Duration::ZERO };
                queue.nack(SETTLEMENT_QUEUE, &delivery.receipt, after).await
            };
            // An expired receipt means the record comes back and is deduplicated then.
            let _ = result;
        }
        match taken {
            Ok(false) => actix_rt::time::sleep(RETRY_AFTER).await,
            Err(e) => {
                tracing::warn!(error = %e, "settlement records not taken; retrying");
                actix_rt::time::sleep(RETRY_AFTER).await;
            }
            Ok(true) => {}
        }
    }
}

/// Decodes deliveries up to the first that does not read (its index is returned).
fn decode(deliveries: &[Delivery]) -> (Vec<(MessageSource, Settle)>, Option<usize>) {
    let mut items = Vec::with_capacity(deliveries.len());
    for (i, d) in deliveries.iter().enumerate() {
        let decoded = match decode_withdrawal_record(&d.message.body) {
            Some(w) => w.map(Settle::Withdrawal),
            None => decode_trade_record(&d.message.body).map(Settle::Trade).map_err(|e| e.to_string()),
        };
        match decoded {
            Ok(item) => items.push((d.message.source.clone(), item)),
            Err(e) => {
                tracing::warn!(source = %d.message.source, error = %e, "unreadable settlement record");
                return (items, Some(i));
            }
        }
    }
    (items, None)
}
