//! The registry: finds an actor by its stream, spawning it on demand by replaying its stream
//! (market actors for configured markets, user actors for any address). An actor that stopped
//! (a version conflict, a panic, a broken replay) is rebuilt from its stream on the next
//! message; restarts are counted.
//!
//! With leases (several nodes on one store, `actors::leases`), an actor is spawned only after
//! its stream's lease is taken, and one renewal loop per node keeps every held lease alive;
//! a lease that is lost forgets its actor, so its next message acquires again or is refused
//! with `HostedElsewhere`. Without leases (one node on SQLite) nothing of this runs: a single
//! process owns its file, and taking a lease per actor would cost a store write per spawn and
//! per renewal for nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::Mutex;

use super::deps::{ActorDeps, ActorError, Counters};
use super::leases::{leased_stream, Leases};
use super::market::MarketActor;
use super::user::UserActor;
use crate::domain::{MarketId, MarketSpec, UserId};
use crate::events::{EventStore, StreamId};

pub struct Registry<S: EventStore + 'static> {
    deps: Arc<ActorDeps<S>>,
    specs: Arc<BTreeMap<MarketId, MarketSpec>>,
    markets: Mutex<HashMap<MarketId, Addr<MarketActor<S>>>>,
    users: Mutex<HashMap<UserId, Addr<UserActor<S>>>>,
    /// Messages sent to each actor and not yet answered (waiting in the mailbox or being
    /// handled): actix does not expose its mailbox length, so senders count. Kept across
    /// restarts of the same stream.
    depths: std::sync::Mutex<HashMap<String, Arc<AtomicUsize>>>,
    /// Markets in `confirm-before-commit` mode: each command waits for its trades' settlement.
    confirming: std::sync::RwLock<std::collections::BTreeSet<MarketId>>,
    /// Set when several nodes share the store: the leases this node holds.
    leases: Option<Arc<Leases<S>>>,
    /// The order-id slot this node holds (with leases), taken on first use.
    slot: Mutex<Option<(u16, String)>>,
}

/// Decrements a mailbox gauge when the reply (or an error) comes back, even on cancellation.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: EventStore + 'static> Registry<S> {
    pub fn new(deps: Arc<ActorDeps<S>>, specs: Arc<BTreeMap<MarketId, MarketSpec>>) -> Registry<S> {
        Registry {
            deps,
            specs,
            markets: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            depths: std::sync::Mutex::new(HashMap::new()),
            confirming: std::sync::RwLock::new(std::collections::BTreeSet::new()),
            leases: None,
            slot: Mutex::new(None),
        }
    }

    /// Hosts an actor only while this node holds its stream's lease.
    pub fn with_leases(mut self, leases: Leases<S>) -> Registry<S> {
        self.leases = Some(Arc::new(leases));
        self
    }

    pub fn leases(&self) -> Option<&Arc<Leases<S>>> {
        self.leases.as_ref()
    }

    /// Takes the stream's lease before its actor is spawned (no-op without leases).
    async fn host(&self, stream: StreamId) -> Result<(), ActorError> {
        match &self.leases {
            Some(leases) => leases.acquire(&stream).await,
            None => Ok(()),
        }
    }

    /// Drops the actor of `stream` (its lease is gone): its memory may be stale, and the
    /// next message rebuilds it from the stream if the lease can be taken again.
    pub async fn forget(&self, stream: &StreamId) {
        let name = stream.as_str();
        if let Some(id) = name.strip_prefix("market:").and_then(|m| MarketId::new(m).ok()) {
            self.markets.lock().await.remove(&id);
        } else if let Some(user) = name.strip_prefix("user:").and_then(|u| UserId::from_hex(u).ok()) {
            self.users.lock().await.remove(&user);
        }
    }

    /// One renewal pass: renews every held lease and forgets the actors whose lease is lost
    /// (and the order-id slot, if its lease is). Returns the names of the lost leases.
    /// Asks for the lease of a stream hosted on another node (see [`Leases::request`]); a
    /// no-op without leases. A failure only means the ask is not recorded: the caller's own
    /// refusal stands either way, so it is logged, not returned.
    pub async fn request_lease(&self, stream: &StreamId) {
        let Some(leases) = &self.leases else { return };
        if let Err(e) = leases.request(stream).await {
            tracing::warn!(%stream, error = %e, "could not ask for the lease of a stream hosted elsewhere");
        }
    }

    pub async fn renew_leases(&self) -> Vec<String> {
        let Some(leases) = &self.leases else { return Vec::new() };
        let lost = leases.renew_all().await;
        for lease in &lost {
            match leased_stream(lease) {
                Some(stream) => self.forget(&stream).await,
                None => {
                    let mut slot = self.slot.lock().await;
                    if slot.as_ref().is_some_and(|(_, name)| name == lease) {
                        *slot = None;
                    }
                }
            }
        }
        lost
    }

    /// This node's order-id slot (see `engine::OrderIds`): `None` without leases (one node,
    /// so ids need no node bits); with leases, the slot lease held, taken on first use.
    pub async fn order_id_slot(&self) -> Result<Option<u16>, ActorError> {
        let Some(leases) = &self.leases else { return Ok(None) };
        let mut slot = self.slot.lock().await;
        if let Some((taken, _)) = slot.as_ref() {
            return Ok(Some(*taken));
        }
        let taken = leases.acquire_slot().await?.ok_or(ActorError::NoOrderIdSlot)?;
        *slot = Some((taken, super::leases::slot_lease_name(taken)));
        Ok(Some(taken))
    }

    /// Renews this node's leases every third of their ttl until `stop`, then stops every
    /// actor and releases the leases, so another node takes over at once.
    pub async fn run_lease_renewal(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(every) = self.leases.as_ref().map(|l| l.config().renew_every()) else { return };
        while !*stop.borrow() {
            tokio::select! {
                _ = stop.changed() => break,
                _ = actix_rt::time::sleep(every) => {}
            }
            self.renew_leases().await;
        }
        self.release_leases().await;
    }

    /// Graceful shutdown: stops every actor, then gives their leases (and the order-id
    /// slot) up.
    pub async fn release_leases(&self) {
        if let Some(leases) = &self.leases {
            self.stop_all().await;
            *self.slot.lock().await = None;
            leases.release_all().await;
        }
    }

    /// Puts `market` in (or out of) `confirm-before-commit` mode.
    pub fn set_confirm_before_commit(&self, market: MarketId, on: bool) {
        // A poisoned lock means a panic mid-insert of one id; the set is still a set.
        let mut confirming = self.confirming.write().unwrap_or_else(|e| e.into_inner());
        if on {
            confirming.insert(market);
        } else {
            confirming.remove(&market);
        }
    }

    pub fn confirms_before_commit(&self, market: MarketId) -> bool {
        self.confirming.read().unwrap_or_else(|e| e.into_inner()).contains(&market)
    }

    pub fn specs(&self) -> &Arc<BTreeMap<MarketId, MarketSpec>> {
        &self.specs
    }

    pub fn deps(&self) -> &Arc<ActorDeps<S>> {
        &self.deps
    }

    /// The live actor of a configured market, rebuilt from its stream if it is not running.
    /// Must be called on an actix arbiter (the actor is started on the current one).
    pub async fn market(&self, id: MarketId) -> Result<Addr<MarketActor<S>>, ActorError> {
        let spec = self.specs.get(&id).ok_or_else(|| ActorError::UnknownMarket(id.to_string()))?.clone();
        let mut markets = self.markets.lock().await;
        if let Some(addr) = markets.get(&id) {
            if addr.connected() {
                return Ok(addr.clone());
            }
            Counters::bump(&self.deps.counters.restarts);
        }
        self.host(StreamId::market(id)).await?;
        let addr = MarketActor::load(spec, self.deps.clone()).await?.start();
        markets.insert(id, addr.clone());
        Ok(addr)
    }

    /// The live actor of a user, created on first use.
    pub async fn user(&self, user: UserId) -> Result<Addr<UserActor<S>>, ActorError> {
        let mut users = self.users.lock().await;
        if let Some(addr) = users.get(&user) {
            if addr.connected() {
                return Ok(addr.clone());
            }
            Counters::bump(&self.deps.counters.restarts);
        }
        self.host(StreamId::user(user)).await?;
        let addr = UserActor::load(user, self.specs.clone(), self.deps.clone()).await?.start();
        users.insert(user, addr.clone());
        Ok(addr)
    }

    fn gauge(&self, stream: String) -> InFlight {
        // A poisoned lock only means another thread panicked while inserting a gauge; the map
        // itself is still usable.
        let mut depths = self.depths.lock().unwrap_or_else(|e| e.into_inner());
        let gauge = depths.entry(stream).or_default().clone();
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
    }

    /// Sends to a market's actor (spawning it if needed), counting the message in its
    /// mailbox depth until the reply.
    pub async fn send_market<M>(&self, id: MarketId, msg: M) -> Result<M::Result, ActorError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        MarketActor<S>: Handler<M>,
        <MarketActor<S> as Actor>::Context: actix::dev::ToEnvelope<MarketActor<S>, M>,
    {
        let addr = self.market(id).await?;
        let _in_flight = self.gauge(crate::events::StreamId::market(id).to_string());
        addr.send(msg).await.map_err(|e| ActorError::Mailbox(e.to_string()))
    }

    /// Sends to a user's actor (spawning it if needed), counting the message in its mailbox
    /// depth until the reply.
    pub async fn send_user<M>(&self, user: UserId, msg: M) -> Result<M::Result, ActorError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        UserActor<S>: Handler<M>,
        <UserActor<S> as Actor>::Context: actix::dev::ToEnvelope<UserActor<S>, M>,
    {
        let addr = self.user(user).await?;
        let _in_flight = self.gauge(crate::events::StreamId::user(user).to_string());
        addr.send(msg).await.map_err(|e| ActorError::Mailbox(e.to_string()))
    }

    /// Mailbox depth per stream, for the operator API and metrics.
    pub fn mailbox_depths(&self) -> BTreeMap<String, usize> {
        let depths = self.depths.lock().unwrap_or_else(|e| e.into_inner());
        depths.iter().map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed))).collect()
    }

    /// Every running actor's mailbox address, for the operator API: (markets, users).
    pub async fn running(&self) -> (Vec<MarketId>, Vec<UserId>) {
        let markets = self.markets.lock().await.iter().filter(|(_, a)| a.connected()).map(|(id, _)| *id).collect();
        let users = self.users.lock().await.iter().filter(|(_, a)| a.connected()).map(|(id, _)| *id).collect();
        (markets, users)
    }

    /// Stops every actor (a simulated crash in tests, or shutdown): memory is dropped, the
    /// streams stay; the next message rebuilds them.
    pub async fn stop_all(&self) {
        self.markets.lock().await.clear();
        self.users.lock().await.clear();
    }
}
