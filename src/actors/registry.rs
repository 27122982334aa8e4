//! The registry: finds an actor by its stream, spawning it on demand by replaying its stream
//! (market actors for configured markets, user actors for any address). An actor that stopped
//! (a version conflict, a panic, a broken replay) is rebuilt from its stream on the next
//! message; restarts are counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::Mutex;

use super::deps::{ActorDeps, ActorError, Counters};
use super::market::MarketActor;
use super::user::UserActor;
use crate::domain::{MarketId, MarketSpec, UserId};
use crate::events::EventStore;

pub struct Registry<S: EventStore + 'static> {
    deps: Arc<ActorDeps<S>>,
    specs: Arc<BTreeMap<MarketId, MarketSpec>>,
    markets: Mutex<HashMap<MarketId, Addr<MarketActor<S>>>>,
    users: Mutex<HashMap<UserId, Addr<UserActor<S>>>>,
}

impl<S: EventStore + 'static> Registry<S> {
    pub fn new(deps: Arc<ActorDeps<S>>, specs: Arc<BTreeMap<MarketId, MarketSpec>>) -> Registry<S> {
        Registry { deps, specs, markets: Mutex::new(HashMap::new()), users: Mutex::new(HashMap::new()) }
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
        let addr = UserActor::load(user, self.specs.clone(), self.deps.clone()).await?.start();
        users.insert(user, addr.clone());
        Ok(addr)
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
