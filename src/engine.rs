//! The engine facade: what the API (and tests) call. It owns the registry of actors, the
//! outbox relay and the queue consumers, all on the current actix arbiter.
//!
//! An order's path: `place` -> the user's actor checks nonce, idempotency and balance, locks
//! funds and appends `OrderPlaced` + a market-queue record -> the relay delivers it -> the
//! market consumer hands it to the market's actor, which matches and appends its events +
//! user-queue and settlement-queue records -> the user consumer hands each outcome to the
//! user's actor, which applies fills and releases. Every hop is at least once; every
//! consumer's append carries the record's source as its idempotency key, so each takes effect
//! once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::{join_all, LocalBoxFuture};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::actors::admin_operator::AdminOperatorHandle;
use crate::actors::chain_watcher::{ChainWatcherHandle, WatcherConfig};
use crate::actors::leases::{LeaseConfig, Leases};
use crate::actors::market::{InspectMarket, MarketBatch, MarketRequest, MarketView};
use crate::actors::settlement::{EngineParts, SettlementError, SettlementHandle};
use crate::actors::user::{InspectUser, UserBatch, UserError, UserOp, UserReply, UserRequest, UserView};
use crate::actors::{settlement_wait, ActorDeps, ActorError, Counters, Registry};
use crate::chain::admin::ContractAdmin;
use crate::chain::deposit_logs::DepositLogs;
use crate::chain::deposits::{decode_transfer_record, TransferRecord};
use crate::domain::user::{OpenOrder, OrderRequest, UserReject};
use crate::domain::{
    AmendAuth, Amount, AssetId, ClientOrderId, MarketCommand, MarketId, MarketSpec, NewOrder, OrderAuth, OrderId,
    OrderType, PriceTicks, QtyLots, Side, StpMode, TimeInForce, UserId,
};
use crate::domain::{DepositId, WithdrawalAuth};
use crate::events::market_command::decode_market_record;
use crate::events::{decode_market_event, Clock, EventStore};
use crate::projections::{Projector, ViewStore};
use crate::queue::relay::{ConsumeTracker, OutboxRelay, PublishMode};
use crate::queue::{Delivery, MessageSource, Queue, Receipt, MARKET_QUEUE, USER_QUEUE};
use crate::settlement::records::{decode_user_record, UserSettlement};
use crate::settlement::{Chain, SettlementConfig};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub markets: Vec<MarketSpec>,
    /// The settlement queue's group: the operator wallet's address.
    pub settlement_group: String,
    pub snapshot_every: u64,
    /// How often the relay polls for records a crash left unpublished.
    pub relay_poll: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rejected: {0}")]
    Rejected(UserReject),
    #[error("unknown market {0}")]
    UnknownMarket(MarketId),
    #[error(transparent)]
    Actor(#[from] ActorError),
    #[error("actor mailbox: {0}")]
    Mailbox(#[from] MailboxError),
    /// A queued record that cannot be read; it is retried and ends in the dead-letter queue.
    #[error("bad queue record: {0}")]
    BadRecord(String),
}

impl From<UserError> for EngineError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Rejected(r) => EngineError::Rejected(r),
            UserError::UnknownMarket(m) => EngineError::UnknownMarket(m),
            UserError::Actor(a) => EngineError::Actor(a),
        }
    }
}

/// An order named by the exchange's id or by the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderRef {
    Id(OrderId),
    Client(ClientOrderId),
}

/// What the projection loop has done, for the operator API and tests.
#[derive(Debug, Default)]
pub struct ProjectionStats {
    pub passes: AtomicU64,
    pub events_folded: AtomicU64,
    pub errors: AtomicU64,
}

/// A new order as a trading client states it (already authenticated as `user`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    pub market: MarketId,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: QtyLots,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub stp: StpMode,
    pub client_order_id: Option<ClientOrderId>,
    pub nonce: u64,
    /// The user's signed order (the API verified it); required wherever trades settle on-chain.
    pub auth: Option<OrderAuth>,
}

/// Order ids: unique and increasing for the life of the engine's data. Seeded from the clock
/// (milliseconds shifted left by 20 bits) so ids keep growing across restarts, and at least
/// one more than the last id handed out.
///
/// With several nodes (leases), each node also holds an order-id slot (`0..256`, a lease) and
/// its ids are `(sequence << 8) | slot`, the sequence seeded the same way from the clock
/// (milliseconds shifted left by 12): two nodes placing in the same millisecond then differ in
/// the low bits. A slot moves to another node only after its lease expired (at least a lease
/// ttl after this node last used it), when the clock-seeded sequence has moved past it.
pub struct OrderIds {
    last: AtomicU64,
}

/// The low bits of a slotted id: `actors::leases::ORDER_ID_SLOTS` = 2^8.
const SLOT_BITS: u32 = 8;

impl OrderIds {
    fn new() -> OrderIds {
        OrderIds { last: AtomicU64::new(0) }
    }

    fn next(&self, now_ms: u64, slot: Option<u16>) -> OrderId {
        let shift = if slot.is_some() { 20 - SLOT_BITS } else { 20 };
        let floor = now_ms << shift;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last + 1);
            match self.last.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    return match slot {
                        Some(slot) => OrderId((next << SLOT_BITS) | u64::from(slot)),
                        None => OrderId(next),
                    }
                }
                Err(seen) => last = seen,
            }
        }
    }
}

pub struct Engine<S: EventStore + 'static, Q: Queue + 'static> {
    registry: Arc<Registry<S>>,
    store: Arc<S>,
    queue: Arc<Q>,
    ids: OrderIds,
    shutdown: watch::Sender<bool>,
    /// The relay's consumption tracker (non-durable queues), for consumers started later.
    tracker: Option<Arc<ConsumeTracker>>,
}

impl<S: EventStore + 'static, Q: Queue + 'static> Engine<S, Q> {
    /// Starts the relay and the consumers on the current arbiter.
    pub fn start(config: EngineConfig, store: Arc<S>, queue: Arc<Q>, clock: Arc<dyn Clock>) -> Engine<S, Q> {
        Engine::start_leased(config, store, queue, clock, None)
    }

    /// [`Engine::start`] as one node of several sharing `store` and `queue`: with `leases`,
    /// an actor runs here only while this node holds its stream's lease (renewed in the
    /// background, released on shutdown), and queued records for actors hosted elsewhere are
    /// handed back to the queue for their host.
    pub fn start_leased(
        config: EngineConfig,
        store: Arc<S>,
        queue: Arc<Q>,
        clock: Arc<dyn Clock>,
        leases: Option<LeaseConfig>,
    ) -> Engine<S, Q> {
        let wake = Arc::new(Notify::new());
        let lease_clock = clock.clone();
        let deps = Arc::new(ActorDeps {
            store: store.clone(),
            clock,
            outbox_wake: wake.clone(),
            settlement_group: config.settlement_group.clone(),
            snapshot_every: config.snapshot_every,
            counters: Arc::new(Counters::default()),
        });
        let specs: BTreeMap<MarketId, MarketSpec> = config.markets.iter().map(|s| (s.id, s.clone())).collect();
        let mut registry = Registry::new(deps, Arc::new(specs));
        if let Some(leases) = leases {
            registry = registry.with_leases(Leases::new(store.clone(), lease_clock, leases));
        }
        let registry = Arc::new(registry);
        let (shutdown, stop) = watch::channel(false);
        actix_rt::spawn(registry.clone().run_lease_renewal(stop.clone()));

        // Crash safety: with a queue that lives in memory, an outbox record may only count as
        // published once its consumer applied it, or a crash between the send and the
        // consumer's append would lose it (marked published, queue gone). The engine's own
        // consumers (market and user queues) confirm to the tracker; after a restart every
        // append not fully confirmed is unpublished and is sent again, and the consumers'
        // source-keyed idempotency makes the repeat a no-op. A durable queue keeps the
        // cheaper mark-on-send.
        let tracker =
            (!queue.durable()).then(|| Arc::new(ConsumeTracker::new([MARKET_QUEUE, USER_QUEUE], wake.clone())));
        let mode = tracker.clone().map_or(PublishMode::OnSend, PublishMode::OnConsume);
        match registry.leases().cloned() {
            None => {
                let relay = OutboxRelay::new(store.clone(), queue.clone()).with_mode(mode);
                let mut relay_stop = stop.clone();
                actix_rt::spawn(relay.run(wake, config.relay_poll, async move {
                    let _ = relay_stop.wait_for(|s| *s).await;
                }));
            }
            Some(leases) => {
                let relay =
                    LeasedRelay { store: store.clone(), queue: queue.clone(), mode, wake, poll: config.relay_poll };
                actix_rt::spawn(relay.run(leases, stop.clone()));
            }
        }
        actix_rt::spawn(consume_loop(
            queue.clone(),
            Consumer { destination: MARKET_QUEUE, route: route_market, tracker: tracker.clone() },
            stop.clone(),
            registry.clone(),
        ));
        actix_rt::spawn(consume_loop(
            queue.clone(),
            Consumer { destination: USER_QUEUE, route: route_user, tracker: tracker.clone() },
            stop,
            registry.clone(),
        ));
        Engine { registry, store, queue, ids: OrderIds::new(), shutdown, tracker }
    }

    /// Starts the settlement operator of `config.key`'s wallet on the current arbiter: it
    /// consumes the settlement queue (its group must be this wallet: `settlement_group`) and
    /// settles the trades on `chain`. Start it before trading, so no trade record is sent
    /// before its consumer is known to the relay. Among several nodes (leases) every node
    /// starts it, and it runs on the one holding its stream's lease (`actors::singleton`).
    pub async fn start_settlement<C: Chain + 'static>(
        &self,
        config: SettlementConfig,
        chain: Arc<C>,
    ) -> Result<SettlementHandle<S, C>, SettlementError> {
        let parts = EngineParts {
            deps: self.registry.deps().clone(),
            specs: self.registry.specs().clone(),
            queue: self.queue.clone(),
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.subscribe(),
            leases: self.registry.leases().cloned(),
        };
        crate::actors::settlement::start(parts, config, chain).await
    }

    /// Starts the chain watcher of `config.chain_id` on the current arbiter: it credits the
    /// exchange's confirmed deposits to their users through the user queue.
    pub async fn start_chain_watcher<L: DepositLogs + 'static>(
        &self,
        config: WatcherConfig,
        logs: Arc<L>,
    ) -> Result<ChainWatcherHandle<S, L>, ActorError> {
        let deps = self.registry.deps().clone();
        let leases = self.registry.leases().cloned();
        crate::actors::chain_watcher::start(deps, logs, config, leases, self.shutdown.subscribe()).await
    }

    /// Starts the admin operator of `admin`'s wallet on the current arbiter: it consumes the
    /// admin queue and carries the commands out on-chain. Start it before issuing commands.
    pub async fn start_admin_operator(&self, admin: ContractAdmin) -> Result<AdminOperatorHandle<S>, ActorError> {
        let parts = EngineParts {
            deps: self.registry.deps().clone(),
            specs: self.registry.specs().clone(),
            queue: self.queue.clone(),
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.subscribe(),
            leases: self.registry.leases().cloned(),
        };
        crate::actors::admin_operator::start(parts, admin).await
    }

    /// Puts `market` in `confirm-before-commit` mode (or back in the default): its commands
    /// are taken one at a time, and each waits for the previous one's trades to settle
    /// on-chain, as the original system did. For comparison; the default never waits.
    pub fn set_confirm_before_commit(&self, market: MarketId, on: bool) {
        self.registry.set_confirm_before_commit(market, on);
    }

    pub fn registry(&self) -> &Arc<Registry<S>> {
        &self.registry
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn queue(&self) -> &Arc<Q> {
        &self.queue
    }

    async fn user_op(&self, user: UserId, op: UserOp) -> Result<UserReply, EngineError> {
        let request = UserRequest { op, source: None, correlation_id: Uuid::now_v7() };
        let sent = self.registry.send_user(user, request).await;
        Ok(self.claim_if_elsewhere(sent).await??)
    }

    /// A user's request (API, WebSocket) reached this node while another hosts the user: ask
    /// for the user's lease, so the retry the refusal invites is served here. Clients are
    /// routed by user (a sticky load balancer), so the account follows its client; a user's
    /// actor may have been placed elsewhere by queue traffic (a fill, a deposit) or by an
    /// earlier route. Queue consumers never ask: records follow the account, not the reverse.
    async fn claim_if_elsewhere<T>(&self, sent: Result<T, ActorError>) -> Result<T, ActorError> {
        if let Err(ActorError::HostedElsewhere { stream, .. }) = &sent {
            self.registry.request_lease(stream).await;
        }
        sent
    }

    pub async fn deposit(&self, user: UserId, asset: AssetId, amount: Amount) -> Result<UserReply, EngineError> {
        self.user_op(user, UserOp::Deposit { asset, amount }).await
    }

    /// Credits a deposit the chain logged, once: a deposit id already credited changes
    /// nothing (the reply has no events). The chain watcher's path is the user queue; this is
    /// the same command for tools and tests.
    pub async fn credit_deposit(
        &self,
        user: UserId,
        deposit: DepositId,
        asset: AssetId,
        amount: Amount,
    ) -> Result<UserReply, EngineError> {
        self.user_op(user, UserOp::CreditDeposit { deposit, asset, amount }).await
    }

    /// Asks for an on-chain withdrawal the user signed (`auth`, checked by the caller: the
    /// wallet's own signature, never an agent's): `amount` leaves available for withdrawing
    /// and the settlement operator executes it; its outcome comes back as
    /// `WithdrawalCompleted`, or `WithdrawalFailed` with the funds restored.
    pub async fn request_withdrawal(
        &self,
        user: UserId,
        nonce: u64,
        asset: AssetId,
        amount: Amount,
        auth: WithdrawalAuth,
    ) -> Result<UserReply, EngineError> {
        self.user_op(user, UserOp::RequestWithdrawal { nonce, asset, amount, auth }).await
    }

    /// Debits available funds off-chain only (the dev faucet's undo); on-chain withdrawals go
    /// through [`Engine::request_withdrawal`].
    pub async fn withdraw(&self, user: UserId, asset: AssetId, amount: Amount) -> Result<UserReply, EngineError> {
        self.user_op(user, UserOp::Withdraw { asset, amount }).await
    }

    /// Places an order; returns its id once funds are locked and the order is durably on its
    /// way to the market. A repeated client order id returns the original order's id.
    pub async fn place(&self, user: UserId, order: PlaceOrder) -> Result<OrderId, EngineError> {
        let now = self.registry.deps().now_ms();
        let slot = self.registry.order_id_slot().await?;
        let id = self.ids.next(now.0, slot);
        let request = OrderRequest {
            market: order.market,
            order: NewOrder {
                id,
                user,
                side: order.side,
                order_type: order.order_type,
                qty: order.qty,
                tif: order.tif,
                post_only: order.post_only,
                stp: order.stp,
            },
            client_order_id: order.client_order_id,
            nonce: order.nonce,
            auth: order.auth,
        };
        match self.user_op(user, UserOp::Place(request)).await {
            Ok(_) => Ok(id),
            Err(EngineError::Rejected(UserReject::DuplicateClientOrderId { existing })) => Ok(existing),
            Err(e) => Err(e),
        }
    }

    pub async fn cancel(&self, user: UserId, market: MarketId, order: OrderId) -> Result<UserReply, EngineError> {
        self.user_op(user, UserOp::Cancel { market, order }).await
    }

    /// Asks to cancel every open order of the user (in one market or all); returns the orders
    /// a cancel was sent for. Orders already being cancelled are skipped.
    pub async fn cancel_all(&self, user: UserId, market: Option<MarketId>) -> Result<Vec<OrderId>, EngineError> {
        let view = self.user(user).await?;
        let mut sent = Vec::new();
        for (id, open) in view.state.open_orders() {
            if market.is_some_and(|m| m != open.market) {
                continue;
            }
            match self.cancel(user, open.market, id).await {
                Ok(_) => sent.push(id),
                Err(EngineError::Rejected(UserReject::CancelPending | UserReject::UnknownOrder)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    pub async fn amend(
        &self,
        user: UserId,
        market: MarketId,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
    ) -> Result<UserReply, EngineError> {
        self.user_op(user, UserOp::Amend { market, order, price, qty, signed: None }).await
    }

    /// An amend carrying the user's new signed order for the new terms (signed mode): trades
    /// after it settle under `signed`, and its nonce is used once like a placement's.
    pub async fn amend_signed(
        &self,
        user: UserId,
        market: MarketId,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
        signed: AmendAuth,
    ) -> Result<UserReply, EngineError> {
        self.user_op(user, UserOp::Amend { market, order, price, qty, signed: Some(signed) }).await
    }

    /// The user's live state: balances, open orders, nonces.
    pub async fn user(&self, user: UserId) -> Result<UserView, EngineError> {
        let sent = self.registry.send_user(user, InspectUser).await;
        Ok(self.claim_if_elsewhere(sent).await?)
    }

    /// [`Engine::user`] for an operator looking on: a user hosted on another node is refused
    /// without asking for its lease (an inspection must not move an account).
    pub async fn inspect_user(&self, user: UserId) -> Result<UserView, EngineError> {
        Ok(self.registry.send_user(user, InspectUser).await?)
    }

    /// The order a client order id names (open, or among the recently closed).
    pub async fn order_by_client_id(&self, user: UserId, id: &ClientOrderId) -> Result<Option<OrderId>, EngineError> {
        Ok(self.user(user).await?.state.order_by_client_id(id))
    }

    /// An open order of the user, by id or client order id, as the user's actor knows it:
    /// terms, remaining quantity, whether the market has acknowledged it, requests in flight.
    /// Closed orders are in the `orders` view (`start_projections`).
    pub async fn open_order(&self, user: UserId, order: OrderRef) -> Result<Option<OpenOrder>, EngineError> {
        let view = self.user(user).await?;
        let id = match order {
            OrderRef::Id(id) => Some(id),
            OrderRef::Client(client) => view.state.order_by_client_id(&client),
        };
        Ok(id.and_then(|id| view.state.open_order(id).cloned()))
    }

    pub async fn market(
        &self,
        market: MarketId,
        depth: usize,
        order: Option<OrderId>,
    ) -> Result<MarketView, EngineError> {
        Ok(self.registry.send_market(market, InspectMarket { depth, order }).await?)
    }

    /// Halts or resumes a market (an operator command; cancels stay allowed while halted).
    pub async fn set_halted(&self, market: MarketId, halted: bool) -> Result<(), EngineError> {
        let command = if halted { MarketCommand::Halt } else { MarketCommand::Resume };
        let request = MarketRequest { command, auth: None, source: None, correlation_id: Uuid::now_v7() };
        self.registry.send_market(market, request).await??;
        Ok(())
    }

    /// Keeps the read models in `views` up to date: a projection loop folds every new event
    /// into them every `every` (and once at start), until shutdown. Views lag the streams by at
    /// most one period; `hob replay --views` rebuilds them from the events alone.
    pub fn start_projections<V: ViewStore + 'static>(&self, views: Arc<V>, every: Duration) -> Arc<ProjectionStats> {
        let stats = Arc::new(ProjectionStats::default());
        let (store, mut stop, out) = (self.store.clone(), self.shutdown.subscribe(), stats.clone());
        let leases = self.registry.leases().cloned();
        actix_rt::spawn(async move {
            let projector = Projector::new();
            while !*stop.borrow() {
                // Among several nodes, only the holder of the projector lease folds.
                let mine = match &leases {
                    Some(leases) => leases.acquire_named(crate::actors::leases::PROJECTOR_LEASE).await.unwrap_or(false),
                    None => true,
                };
                let pass = async {
                    match mine {
                        true => projector.catch_up(store.as_ref(), views.as_ref()).await.map(Some),
                        false => Ok(None),
                    }
                };
                match pass.await {
                    Ok(None) => {}
                    Ok(Some(report)) => {
                        out.passes.fetch_add(1, Ordering::Relaxed);
                        out.events_folded.fetch_add(report.events_folded, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // Counted and retried next period; `hob replay --views` names the event.
                        tracing::warn!(error = %e, "projection pass failed; retrying");
                        out.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = actix_rt::time::sleep(every) => {}
                }
            }
        });
        stats
    }

    /// Graceful stop of a leased node: its actors stop and their leases are given up, so
    /// another node takes its streams over at once rather than after the lease ttl.
    pub async fn release_leases(&self) {
        self.registry.release_leases().await;
    }

    /// Stops the relay and consumers; actors stop when the engine is dropped.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl<S: EventStore + 'static, Q: Queue + 'static> Drop for Engine<S, Q> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The outbox relay of a node among several: it runs only while this node holds the relay
/// lease (`actors::leases::RELAY_LEASE`), and a standby node takes it over after the holder
/// dies. Records appended on other nodes wait for its poll (`relay_poll`), not a doorbell.
struct LeasedRelay<S, Q> {
    store: Arc<S>,
    queue: Arc<Q>,
    mode: PublishMode,
    wake: Arc<Notify>,
    poll: Duration,
}

impl<S: EventStore + 'static, Q: Queue + 'static> LeasedRelay<S, Q> {
    async fn run(self, leases: Arc<Leases<S>>, mut stop: watch::Receiver<bool>) {
        use crate::actors::leases::RELAY_LEASE;
        let every = leases.config().renew_every();
        while !*stop.borrow() {
            match leases.acquire_named(RELAY_LEASE).await {
                Ok(true) => {
                    tracing::info!("this node runs the outbox relay");
                    let relay = OutboxRelay::new(self.store.clone(), self.queue.clone()).with_mode(self.mode.clone());
                    let (mut stopping, held) = (stop.clone(), leases.clone());
                    // Stops at shutdown, or once the renewal loop finds the lease lost.
                    relay
                        .run(self.wake.clone(), self.poll, async move {
                            while !*stopping.borrow() && held.holds(RELAY_LEASE) {
                                tokio::select! {
                                    _ = stopping.changed() => {}
                                    _ = actix_rt::time::sleep(Duration::from_millis(100)) => {}
                                }
                            }
                        })
                        .await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "the relay lease could not be asked for; retrying"),
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = actix_rt::time::sleep(every) => {}
            }
        }
    }
}

/// Hands one group's deliveries (in queue order) to its actor as one batch; answers how many
/// of them, from the front, took effect.
type Route<S> = fn(Arc<Registry<S>>, Vec<Delivery>) -> LocalBoxFuture<'static, GroupOutcome>;

/// The first `done` deliveries of a group took effect; if `error` is set, the next one failed
/// (it is retried after a pause) and the rest were not tried (they come back at once).
struct GroupOutcome {
    done: usize,
    error: Option<EngineError>,
}

/// One of the engine's consumers.
struct Consumer<S: EventStore + 'static> {
    destination: &'static str,
    route: Route<S>,
    /// Set with a non-durable queue: told about every delivery that took effect, so the
    /// relay marks its outbox record published only then.
    tracker: Option<Arc<ConsumeTracker>>,
}

/// Receives from the consumer's destination until shutdown. Each receive's deliveries are
/// split by message group (one group = one actor, in order) and every group goes to its actor
/// as one batch, all groups at once: the actors' appends then share the store's group
/// commits, and one actor commits its whole batch with one append. Redeliveries are absorbed
/// by the actors' consumed positions, which they store atomically with the effects.
async fn consume_loop<S: EventStore + 'static, Q: Queue + 'static>(
    queue: Arc<Q>,
    consumer: Consumer<S>,
    mut stop: watch::Receiver<bool>,
    registry: Arc<Registry<S>>,
) {
    const MAX_RECEIVE: usize = 512;
    const RETRY_AFTER: Duration = Duration::from_millis(20);
    // After a receive that held only records of actors hosted on other nodes, this node
    // waits before receiving again, so their hosts get the records rather than this node
    // taking them back at once (each receive counts towards the dead-letter limit).
    const ELSEWHERE_PAUSE: Duration = Duration::from_millis(100);
    let Consumer { destination, route, tracker } = consumer;
    while !*stop.borrow() {
        let received = tokio::select! {
            _ = stop.changed() => return,
            received = queue.receive(destination, MAX_RECEIVE, Duration::from_millis(50)) => received,
        };
        let deliveries = match received {
            Ok(deliveries) => deliveries,
            Err(_) => {
                // The queue is unavailable: back off, the records stay queued.
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut groups: Vec<(String, Vec<Delivery>)> = Vec::new();
        for delivery in deliveries {
            match groups.iter_mut().find(|(g, _)| *g == delivery.message.group) {
                Some((_, list)) => list.push(delivery),
                None => groups.push((delivery.message.group.clone(), vec![delivery])),
            }
        }
        // The routes take the deliveries (their bodies are decoded, not copied); what the
        // acks need is kept aside.
        let receipts: Vec<Vec<(Receipt, MessageSource)>> = groups
            .iter()
            .map(|(_, list)| list.iter().map(|d| (d.receipt.clone(), d.message.source.clone())).collect())
            .collect();
        let outcomes = join_all(groups.into_iter().map(|(_, list)| route(registry.clone(), list))).await;
        let (mut applied, mut elsewhere) = (false, false);
        for (group, outcome) in receipts.iter().zip(outcomes) {
            // Hosted on another node: not a failure. Every record of the group goes back at
            // once, in order (FIFO keeps the group's order), for the host to receive.
            let hosted_elsewhere =
                matches!(outcome.error, Some(EngineError::Actor(ActorError::HostedElsewhere { .. })));
            elsewhere |= hosted_elsewhere;
            applied |= outcome.done > 0;
            match (&outcome.error, group.get(outcome.done)) {
                (Some(error), Some((_, source))) if hosted_elsewhere => {
                    tracing::debug!(destination, source = %source, %error, "record for another node; handed back")
                }
                (Some(error), Some((_, source))) => {
                    tracing::warn!(destination, source = %source, %error, "record not applied; retried, then dead-lettered")
                }
                _ => {}
            }
            for (i, (receipt, source)) in group.iter().enumerate() {
                let result = if i < outcome.done {
                    if let Some(tracker) = &tracker {
                        tracker.confirm(source);
                    }
                    queue.ack(destination, receipt).await
                } else {
                    let retry = i == outcome.done && outcome.error.is_some() && !hosted_elsewhere;
                    let after = if retry { RETRY_AFTER } else { Duration::ZERO };
                    queue.nack(destination, receipt, after).await
                };
                // An expired receipt means the record comes back and is deduplicated then.
                let _ = result;
            }
        }
        if elsewhere && !applied {
            tokio::select! {
                _ = stop.changed() => return,
                _ = actix_rt::time::sleep(ELSEWHERE_PAUSE) => {}
            }
        }
    }
}

fn route_market<S: EventStore + 'static>(
    registry: Arc<Registry<S>>,
    list: Vec<Delivery>,
) -> LocalBoxFuture<'static, GroupOutcome> {
    Box::pin(async move {
        let group = list.first().map(|d| d.message.group.clone()).unwrap_or_default();
        let (items, error) = decode_prefix(list, |delivery| {
            let (command, auth) =
                decode_market_record(&delivery.message.body).map_err(|e| EngineError::BadRecord(e.to_string()))?;
            Ok(MarketRequest {
                command,
                auth,
                source: Some(delivery.message.source.clone()),
                correlation_id: Uuid::now_v7(),
            })
        });
        let market = match market_of_group(&group) {
            Ok(market) => market,
            Err(e) => return GroupOutcome { done: 0, error: Some(e) },
        };
        if registry.confirms_before_commit(market) {
            return route_confirming(&registry, market, items, error).await;
        }
        let done = items.len();
        let sent = async {
            if !items.is_empty() {
                registry.send_market(market, MarketBatch { items }).await??;
            }
            Ok(())
        };
        GroupOutcome::of(done, error, sent.await)
    })
}

/// A market in `confirm-before-commit` mode: its group's commands one at a time, in queue
/// order, each sent only once the previous one's trades settled on-chain. All of them are
/// taken from this one receive. Handing all but the first back to the queue after each
/// command would count one more delivery against every command still waiting, so with more
/// than the queue's `max_receives` commands queued, the ones at the back became dead letters:
/// never applied, their outbox records never confirmed, the market starved.
///
/// A group that takes longer than the queue's visibility timeout sees its later receipts
/// expire: those commands are still applied here, in order, and their redelivery is a
/// duplicate the market's consumed positions absorb.
async fn route_confirming<S: EventStore + 'static>(
    registry: &Registry<S>,
    market: MarketId,
    items: Vec<MarketRequest>,
    decode_error: Option<EngineError>,
) -> GroupOutcome {
    let mut done = 0;
    for item in items {
        let settled = async {
            let from = settlement_wait::position(registry.deps()).await?;
            let replies = registry.send_market(market, MarketBatch { items: vec![item] }).await??;
            let trades = settlement_wait::trades_of(market, &replies);
            settlement_wait::until_settled(registry.deps(), from, trades).await?;
            Ok::<(), EngineError>(())
        };
        if let Err(e) = settled.await {
            return GroupOutcome { done, error: Some(e) };
        }
        done += 1;
    }
    GroupOutcome { done, error: decode_error }
}

fn route_user<S: EventStore + 'static>(
    registry: Arc<Registry<S>>,
    list: Vec<Delivery>,
) -> LocalBoxFuture<'static, GroupOutcome> {
    Box::pin(async move {
        let group = list.first().map(|d| d.message.group.clone()).unwrap_or_default();
        let (items, error) = decode_prefix(list, |mut delivery| {
            let op = decode_outcome(&mut delivery.message.body)?;
            Ok(UserRequest { op, source: Some(delivery.message.source.clone()), correlation_id: Uuid::now_v7() })
        });
        let done = items.len();
        let sent = async {
            let user = user_of_group(&group)?;
            if !items.is_empty() {
                // Refusals of single items are answers, not failures: the record is consumed.
                registry.send_user(user, UserBatch { items }).await??;
            }
            Ok(())
        };
        GroupOutcome::of(done, error, sent.await)
    })
}

/// Decodes a group's deliveries up to the first that cannot be read: a bad record must not
/// hold back the good ones before it, and the ones after it wait to keep the group's order.
fn decode_prefix<T>(
    list: Vec<Delivery>,
    decode: impl Fn(Delivery) -> Result<T, EngineError>,
) -> (Vec<T>, Option<EngineError>) {
    let mut items = Vec::with_capacity(list.len());
    for delivery in list {
        match decode(delivery) {
            Ok(item) => items.push(item),
            Err(e) => return (items, Some(e)),
        }
    }
    (items, None)
}

impl GroupOutcome {
    /// `done` items were sent; `decode_error` stopped the rest; `sent` is the actor's answer.
    fn of(done: usize, decode_error: Option<EngineError>, sent: Result<(), EngineError>) -> GroupOutcome {
        match sent {
            Ok(()) => GroupOutcome { done, error: decode_error },
            Err(e) => GroupOutcome { done: 0, error: Some(e) },
        }
    }
}

/// A user-queue record: one market event about one of the user's orders, a settlement
/// outcome (a trade's funds final, or a trade voided), or a transfer (a deposit credited).
fn decode_outcome(body: &mut serde_json::Value) -> Result<UserOp, EngineError> {
    if let Some(record) = decode_transfer_record(body) {
        return match record.map_err(|e| EngineError::BadRecord(e.to_string()))? {
            TransferRecord::Deposit { deposit, asset, amount } => Ok(UserOp::CreditDeposit { deposit, asset, amount }),
            TransferRecord::WithdrawalCompleted { nonce } => Ok(UserOp::CompleteWithdrawal { nonce }),
            TransferRecord::WithdrawalFailed { nonce, reason } => Ok(UserOp::FailWithdrawal { nonce, reason }),
        };
    }
    if let Some(record) = decode_user_record(body) {
        return match record.map_err(|e| EngineError::BadRecord(e.to_string()))? {
            UserSettlement::Confirm { asset, amount } => Ok(UserOp::ConfirmSettlement { asset, amount }),
            UserSettlement::Void { market, order, trade } => Ok(UserOp::VoidTrade { market, order, trade }),
        };
    }
    let bad = |what: &str| EngineError::BadRecord(format!("user-queue record: {what}"));
    let market = body["market"].as_str().and_then(|m| MarketId::new(m).ok()).ok_or_else(|| bad("market"))?;
    let version = body["schema_version"].as_u64().and_then(|v| u16::try_from(v).ok()).ok_or_else(|| bad("v"))?;
    let payload = body["event"].take();
    let event_type = body["event_type"].as_str().ok_or_else(|| bad("event_type"))?;
    let event = decode_market_event(event_type, version, payload).map_err(|e| bad(&e.to_string()))?;
    Ok(UserOp::ApplyMarket { market, event })
}

fn market_of_group(group: &str) -> Result<MarketId, EngineError> {
    let id = group.strip_prefix("market:").ok_or_else(|| EngineError::BadRecord(format!("group {group:?}")))?;
    MarketId::new(id).map_err(|e| EngineError::BadRecord(e.to_string()))
}

fn user_of_group(group: &str) -> Result<UserId, EngineError> {
    let hex = group.strip_prefix("user:").ok_or_else(|| EngineError::BadRecord(format!("group {group:?}")))?;
    UserId::from_hex(hex).map_err(|e| EngineError::BadRecord(e.to_string()))
}
