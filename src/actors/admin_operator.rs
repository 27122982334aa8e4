//! `AdminOperatorActor`: the only sender of the exchange's admin transactions and the only
//! writer of `admin-operator:{0xaddr}`. It consumes the admin queue (commands an operator or
//! `hob serve`'s start-up issued through the `admin` stream, see `AdminDesk`), carries each
//! out on-chain, and records what it did as one event per command.
//!
//! Every command is idempotent against the chain, so the queue's at-least-once delivery is
//! safe: a market already registered with the same parameters is success (a different one is
//! a `MarketConflict` and an alert, never a second registration), and pausing a paused
//! contract sends nothing. The outcome's append carries the record's source as its
//! idempotency key, so a redelivered command is recorded once.

mod records;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::Address;
use tokio::sync::watch;
use uuid::Uuid;

pub use self::records::{decode_command, AdminCommand, AdminOutcome, GridRecord, COMMAND_ISSUED};
use super::deps::{idempotency_key, ActorDeps, ActorError};
use super::settlement::EngineParts;
use super::singleton::{Placement, SingletonLease};
use crate::chain::admin::{AdminChainError, ContractAdmin};
use crate::domain::UserId;
use crate::events::{AppendRequest, EventStore, NewEvent, OutboxRecord, StoreError, StreamId};
use crate::queue::relay::ConsumeTracker;
use crate::queue::{MessageSource, Queue, ADMIN_GROUP, ADMIN_QUEUE};

/// Outcomes kept in memory for the operator API.
const RECENT: usize = 64;
/// A command the chain could not take is retried after this.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The node did not answer: the command stays queued and is retried.
    #[error(transparent)]
    Chain(AdminChainError),
    #[error(transparent)]
    Record(#[from] records::RecordError),
    #[error(transparent)]
    Actor(#[from] ActorError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        AdminError::Actor(ActorError::Store(e))
    }
}

/// Carry out one queued command.
#[derive(Message)]
#[rtype(result = "Result<AdminOutcome, AdminError>")]
struct Execute {
    source: MessageSource,
    command: AdminCommand,
}

/// A read of what the operator did lately.
#[derive(Message)]
#[rtype(result = "AdminView")]
pub struct InspectAdmin;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminView {
    pub address: Address,
    pub stream: StreamId,
    pub version: u64,
    /// The latest outcomes, oldest first, with their stream versions.
    pub recent: Vec<(u64, AdminOutcome)>,
}

pub struct AdminOperatorActor<S: EventStore + 'static> {
    deps: Arc<ActorDeps<S>>,
    admin: ContractAdmin,
    stream: StreamId,
    version: u64,
    recent: VecDeque<(u64, AdminOutcome)>,
    alerts: Arc<AtomicU64>,
}

impl<S: EventStore + 'static> Actor for AdminOperatorActor<S> {
    type Context = Context<Self>;
}

impl<S: EventStore + 'static> Handler<InspectAdmin> for AdminOperatorActor<S> {
    type Result = MessageResult<InspectAdmin>;

    fn handle(&mut self, _: InspectAdmin, _: &mut Self::Context) -> Self::Result {
        MessageResult(AdminView {
            address: self.admin.admin(),
            stream: self.stream.clone(),
            version: self.version,
            recent: self.recent.iter().cloned().collect(),
        })
    }
}

impl<S: EventStore + 'static> Handler<Execute> for AdminOperatorActor<S> {
    type Result = AtomicResponse<Self, Result<AdminOutcome, AdminError>>;

    fn handle(&mut self, msg: Execute, _: &mut Self::Context) -> Self::Result {
        let (admin, deps, stream, expected) =
            (self.admin.clone(), self.deps.clone(), self.stream.clone(), self.version);
        let work = async move {
            let outcome = perform(&admin, &msg.command).await?;
            let correlation = Uuid::now_v7();
            let payload = serde_json::to_value(&outcome).map_err(|e| records::RecordError(e.to_string()))?;
            let event = NewEvent::new(
                deps.clock.as_ref(),
                correlation,
                correlation,
                outcome.event_type(),
                records::SCHEMA_VERSION,
                payload,
            );
            let appended = deps
                .store
                .append(AppendRequest {
                    stream: stream.clone(),
                    expected_version: expected,
                    events: vec![event],
                    outbox: Vec::new(),
                    idempotency_key: Some(idempotency_key(&stream, &msg.source)),
                })
                .await?;
            Ok::<_, AdminError>((outcome, appended))
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|result, act, ctx| match result {
            Ok((outcome, appended)) => {
                if !appended.deduplicated {
                    act.version = appended.last_version;
                    if !outcome.succeeded() {
                        act.alerts.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(?outcome, "ALERT: admin command not carried out");
                    }
                    act.recent.push_back((appended.last_version, outcome.clone()));
                    while act.recent.len() > RECENT {
                        act.recent.pop_front();
                    }
                }
                Ok(outcome)
            }
            Err(AdminError::Actor(e)) => {
                // A failed append leaves our version unknown: stop; the consumer rebuilds us
                // from the stream.
                ctx.stop();
                Err(AdminError::Actor(e))
            }
            Err(e) => Err(e),
        })))
    }
}

/// Carries `command` out on-chain, reading first so a repeat sends nothing.
async fn perform(admin: &ContractAdmin, command: &AdminCommand) -> Result<AdminOutcome, AdminError> {
    let refused = |reason: String| AdminOutcome::Refused { command: command.name().to_owned(), reason };
    match command {
        AdminCommand::RegisterMarket { market, chain_market_id, base_token, quote_token, base_lot, quote_tick } => {
            let requested = records::requested_grid(*base_token, *quote_token, base_lot, quote_tick)?;
            let (market, id) = (market.clone(), *chain_market_id);
            match admin.market(id).await.map_err(AdminError::Chain)? {
                Some(on_chain) if on_chain == requested => {
                    Ok(AdminOutcome::MarketAlreadyRegistered { market, chain_market_id: id })
                }
                Some(on_chain) => Ok(AdminOutcome::MarketConflict {
                    market,
                    chain_market_id: id,
                    requested: requested.into(),
                    on_chain: on_chain.into(),
                }),
                None => match admin.register_market(id, requested).await {
                    Ok(tx) => Ok(AdminOutcome::MarketRegistered { market, chain_market_id: id, tx }),
                    Err(AdminChainError::Unavailable(e)) => Err(AdminError::Chain(AdminChainError::Unavailable(e))),
                    Err(e) => Ok(refused(e.to_string())),
                },
            }
        }
        AdminCommand::Pause | AdminCommand::Unpause => {
            let pause = matches!(command, AdminCommand::Pause);
            let done = |tx| if pause { AdminOutcome::Paused { tx } } else { AdminOutcome::Unpaused { tx } };
            if admin.paused().await.map_err(AdminError::Chain)? == pause {
                return Ok(done(None));
            }
            match admin.set_paused(pause).await {
                Ok(tx) => Ok(done(Some(tx))),
                Err(AdminChainError::Unavailable(e)) => Err(AdminError::Chain(AdminChainError::Unavailable(e))),
                Err(e) => Ok(refused(e.to_string())),
            }
        }
    }
}

/// Issues admin commands: appends each to the `admin` stream with its admin-queue record, so
/// a command is durable before anything acts on it. One at a time: the stream has one tail.
pub struct AdminDesk<S: EventStore + 'static> {
    deps: Arc<ActorDeps<S>>,
    lock: tokio::sync::Mutex<()>,
}

impl<S: EventStore + 'static> AdminDesk<S> {
    /// Stores `command`; returns the `admin` stream's version that holds it.
    pub async fn issue(&self, command: &AdminCommand) -> Result<u64, AdminError> {
        let _one_at_a_time = self.lock.lock().await;
        let stream = StreamId::admin();
        let body = serde_json::to_value(command).map_err(|e| records::RecordError(e.to_string()))?;
        let correlation = Uuid::now_v7();
        let expected = self.deps.store.stream_version(&stream).await?;
        let event = NewEvent::new(
            self.deps.clock.as_ref(),
            correlation,
            correlation,
            COMMAND_ISSUED,
            records::SCHEMA_VERSION,
            body.clone(),
        );
        let outbox = OutboxRecord { destination: ADMIN_QUEUE.to_owned(), group: ADMIN_GROUP.to_owned(), payload: body };
        let request = AppendRequest {
            stream,
            expected_version: expected,
            events: vec![event],
            outbox: vec![outbox],
            idempotency_key: None,
        };
        let appended = self.deps.store.append(request).await?;
        self.deps.outbox_wake.notify_one();
        Ok(appended.last_version)
    }
}

/// The running actor's address; `None` while this node stands by (another node holds the
/// admin operator's lease) or until a failed actor is rebuilt.
type Current<S> = Arc<Mutex<Option<Addr<AdminOperatorActor<S>>>>>;

fn current<S: EventStore + 'static>(addr: &Current<S>) -> Option<Addr<AdminOperatorActor<S>>> {
    // The lock only guards a swap of the address; a panic cannot leave it half-written.
    addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

fn set_current<S: EventStore + 'static>(addr: &Current<S>, actor: Option<Addr<AdminOperatorActor<S>>>) {
    *addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = actor;
}

/// The running admin operator. Among several nodes, the actor runs only on the holder of its
/// stream's lease; any node issues commands (they go through the `admin` stream and queue).
pub struct AdminOperatorHandle<S: EventStore + 'static> {
    addr: Current<S>,
    desk: AdminDesk<S>,
    lease: Arc<SingletonLease<S>>,
    /// The admin wallet.
    pub address: Address,
    /// Commands not carried out (conflicts, refusals) since start.
    pub alerts: Arc<AtomicU64>,
}

impl<S: EventStore + 'static> AdminOperatorHandle<S> {
    /// Issues `command` through the admin queue; it is carried out asynchronously.
    pub async fn issue(&self, command: &AdminCommand) -> Result<u64, AdminError> {
        self.desk.issue(command).await
    }

    /// What the operator did lately; `HostedElsewhere` naming the node that runs it when
    /// this node stands by.
    pub async fn inspect(&self) -> Result<AdminView, ActorError> {
        let Some(addr) = current(&self.addr) else { return Err(self.lease.not_running("admin operator").await) };
        addr.send(InspectAdmin).await.map_err(|e| ActorError::Mailbox(e.to_string()))
    }

    /// Whether this node runs the admin operator, or stands by for the node that does.
    pub async fn placement(&self) -> Placement {
        match current(&self.addr) {
            Some(_) => Placement::Here,
            None => self.lease.placement().await,
        }
    }
}

/// Starts the admin operator of `admin`'s wallet on the current arbiter, consuming the admin
/// queue until the engine shuts down. Among several nodes (leases) it runs only while this
/// node holds the lease of its stream.
pub async fn start<S: EventStore + 'static, Q: Queue + 'static>(
    parts: EngineParts<S, Q>,
    admin: ContractAdmin,
) -> Result<AdminOperatorHandle<S>, ActorError> {
    let alerts = Arc::new(AtomicU64::new(0));
    let address = admin.admin();
    let lease = Arc::new(SingletonLease::new(parts.leases.clone(), StreamId::admin_operator(UserId(address.0 .0))));
    // One node: the actor starts now, so a stream that does not load fails the start.
    let actor = match lease.is_leased() {
        true => None,
        false => Some(launch(&parts.deps, &admin, &alerts).await?),
    };
    let addr = Arc::new(Mutex::new(actor));
    if let Some(tracker) = &parts.tracker {
        tracker.consume_in_process(ADMIN_QUEUE);
    }
    let rebuild = Rebuild { deps: parts.deps.clone(), admin, alerts: alerts.clone() };
    let hosting = Hosting { addr: addr.clone(), rebuild, lease: lease.clone() };
    actix_rt::spawn(consume(parts.queue, hosting, parts.tracker, parts.shutdown));
    let desk = AdminDesk { deps: parts.deps, lock: tokio::sync::Mutex::new(()) };
    Ok(AdminOperatorHandle { addr, desk, lease, address, alerts })
}

/// Builds the actor from its stream.
async fn launch<S: EventStore + 'static>(
    deps: &Arc<ActorDeps<S>>,
    admin: &ContractAdmin,
    alerts: &Arc<AtomicU64>,
) -> Result<Addr<AdminOperatorActor<S>>, ActorError> {
    let stream = StreamId::admin_operator(UserId(admin.admin().0 .0));
    let events = deps.store.read_stream(&stream, 1).await?;
    let version = events.last().map_or(0, |e| e.version);
    let mut recent = VecDeque::new();
    for e in events.iter().rev().take(RECENT).rev() {
        // Outcomes are read back for display only; one that does not decode is skipped.
        if let Ok(outcome) = serde_json::from_value::<AdminOutcome>(e.payload.clone()) {
            recent.push_back((e.version, outcome));
        }
    }
    Ok(AdminOperatorActor { deps: deps.clone(), admin: admin.clone(), stream, version, recent, alerts: alerts.clone() }
        .start())
}

struct Rebuild<S: EventStore + 'static> {
    deps: Arc<ActorDeps<S>>,
    admin: ContractAdmin,
    alerts: Arc<AtomicU64>,
}

/// The actor this node runs (if any), how to build it again, and the lease it runs under.
struct Hosting<S: EventStore + 'static> {
    addr: Current<S>,
    rebuild: Rebuild<S>,
    lease: Arc<SingletonLease<S>>,
}

impl<S: EventStore + 'static> Hosting<S> {
    /// Makes sure the actor runs here: stands by until this node holds the lease (at once
    /// without leases), then rebuilds it from its stream if it is not running. False if the
    /// engine stopped meanwhile or the actor does not rebuild (retried by the caller).
    async fn ensure(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        if !self.lease.holds() {
            // Lost (or never held): whatever this node had in memory may be stale.
            set_current(&self.addr, None);
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return false,
                _ = self.lease.until_held() => {}
            }
        }
        if current(&self.addr).is_some_and(|a| a.connected()) {
            return true;
        }
        let Rebuild { deps, admin, alerts } = &self.rebuild;
        match launch(deps, admin, alerts).await {
            Ok(fresh) => {
                set_current(&self.addr, Some(fresh));
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "admin operator does not rebuild; retrying");
                false
            }
        }
    }
}

/// Receives admin-queue records and has the actor carry them out, one at a time, in queue
/// order. A command the chain could not take (or that does not read) goes back to the queue
/// with everything after it, and is retried; one that never reads ends as a dead letter.
///
/// A node that does not hold the lease does not receive at all, rather than receive and
/// hand every record back: the queue has one group (`admin`), so every record is the
/// holder's, and each needless receive would count towards the dead-letter limit.
async fn consume<Q: Queue + 'static, S: EventStore + 'static>(
    queue: Arc<Q>,
    hosting: Hosting<S>,
    tracker: Option<Arc<ConsumeTracker>>,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        if !hosting.ensure(&mut shutdown).await {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = actix_rt::time::sleep(RETRY_AFTER) => {}
            }
            continue;
        }
        let received = tokio::select! {
            _ = shutdown.changed() => return,
            received = queue.receive(ADMIN_QUEUE, 16, Duration::from_millis(200)) => received,
        };
        let deliveries = match received {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "admin queue unavailable; retrying");
                actix_rt::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        let mut failed = false;
        for delivery in deliveries {
            let source = delivery.message.source.clone();
            // A lease lost mid-receive: the rest go back for the new holder, in order.
            let done = if failed || !hosting.lease.holds() {
                false
            } else {
                let result = match (decode_command(&delivery.message.body), current(&hosting.addr)) {
                    (Ok(command), Some(actor)) => match actor.send(Execute { source: source.clone(), command }).await {
                        Ok(result) => result,
                        Err(e) => Err(AdminError::Actor(ActorError::Mailbox(e.to_string()))),
                    },
                    (Ok(_), None) => Err(AdminError::Actor(ActorError::Mailbox("the admin operator stopped".into()))),
                    (Err(e), _) => Err(AdminError::Record(e)),
                };
                match result {
                    Ok(outcome) => {
                        tracing::info!(%source, ?outcome, "admin command carried out");
                        true
                    }
                    Err(e) => {
                        // A stopped actor is rebuilt from its stream before the next receive.
                        tracing::warn!(%source, error = %e, "admin command not carried out; retrying");
                        false
                    }
                }
            };
            // An expired receipt means the record comes back and is deduplicated then.
            if done {
                if let Some(tracker) = &tracker {
                    tracker.confirm(&source);
                }
                let _ = queue.ack(ADMIN_QUEUE, &delivery.receipt).await;
            } else {
                let after = if failed { Duration::ZERO } else { RETRY_AFTER };
                failed = true;
                let _ = queue.nack(ADMIN_QUEUE, &delivery.receipt, after).await;
            }
        }
    }
}
