//! A market and its users driven by real domain code, every event appended to an event store
//! as the actors would; and the scenario, in steps. Shared by the view-store tests of every
//! adapter (`projections.rs` on SQLite, `event_store_mongo.rs` on MongoDB).
//!
//! Test code unwraps: a failure should fail the test.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use hob::domain::{
    Amount, Market, MarketCommand, MarketSpec, NewOrder, OrderId, OrderRequest, PriceTicks, QtyLots, TimestampMs,
    UserCommand, UserEvent, UserId, UserState,
};
use hob::events::user_payload::encode_user_event;
use hob::events::{AppendRequest, EventStore, ManualClock, NewEvent, StreamId};
use hob::projections::{View, ViewStore};
use hob::store::SqliteEventStore;
use uuid::Uuid;

use crate::scenario::{base, buy, quote, sell, spec, OrderBuilder, ALICE, BOB, CAROL};

pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap()
}

/// A market and its users driven by domain code, every event appended to the store as the
/// actors would: user events to `user:{addr}`, market events to `market:{id}`.
pub struct Exchange<S: EventStore = SqliteEventStore> {
    pub spec: MarketSpec,
    pub market: Market,
    pub users: BTreeMap<UserId, UserState>,
    pub clock: ManualClock,
    pub store: S,
    pub versions: BTreeMap<StreamId, u64>,
    pub nonce: u64,
}

impl Exchange<SqliteEventStore> {
    pub fn open(path: &Path) -> Exchange<SqliteEventStore> {
        Exchange::on(SqliteEventStore::open(path).unwrap())
    }
}

impl<S: EventStore> Exchange<S> {
    /// The exchange appending to `store`, which should hold no events yet.
    pub fn on(store: S) -> Exchange<S> {
        let spec = spec();
        Exchange {
            market: Market::new(spec.clone()),
            spec,
            users: [ALICE, BOB, CAROL].into_iter().map(|u| (u, UserState::new(u))).collect(),
            clock: ManualClock::new(t0()),
            store,
            versions: BTreeMap::new(),
            nonce: 0,
        }
    }

    pub fn now_ms(&self) -> TimestampMs {
        use hob::events::Clock;
        TimestampMs(self.clock.now().timestamp_millis() as u64)
    }

    pub async fn append(&mut self, stream: StreamId, events: Vec<NewEvent>) {
        if events.is_empty() {
            return;
        }
        let expected = self.versions.get(&stream).copied().unwrap_or(0);
        let request = AppendRequest {
            stream: stream.clone(),
            expected_version: expected,
            events,
            outbox: vec![],
            idempotency_key: None,
        };
        let result = self.store.append(request).await.unwrap();
        self.versions.insert(stream, result.last_version);
    }

    pub async fn user_events(&mut self, user: UserId, events: Vec<UserEvent>) {
        let state = self.users.get_mut(&user).unwrap();
        for e in &events {
            state.apply(e).unwrap();
        }
        let id = Uuid::now_v7();
        let encoded = events
            .iter()
            .map(|e| {
                let enc = encode_user_event(e);
                NewEvent::new(&self.clock, id, id, enc.event_type, enc.schema_version, enc.payload)
            })
            .collect();
        self.append(StreamId::user(user), encoded).await;
    }

    pub async fn user_command(&mut self, user: UserId, command: UserCommand<'_>) {
        let events = self.users[&user].decide(command).unwrap();
        self.user_events(user, events).await;
    }

    pub async fn deposit(&mut self, user: UserId) {
        for asset in [base(), quote()] {
            self.user_command(user, UserCommand::Deposit { asset, amount: Amount(1_000_000_000_000) }).await;
        }
    }

    /// Runs a market command, stores its events, and routes them to every user (events about
    /// other users' orders decide to nothing).
    pub async fn market_command(&mut self, command: MarketCommand) {
        let mut events = Vec::new();
        let now = self.now_ms();
        self.market.execute(command, now, &mut events);
        let id = Uuid::now_v7();
        let stored = events.iter().map(|e| NewEvent::market(&self.clock, id, id, e)).collect();
        self.append(StreamId::market(self.spec.id), stored).await;
        let spec = self.spec.clone();
        for event in &events {
            for user in [ALICE, BOB, CAROL] {
                let decided = self.users[&user].decide(UserCommand::ApplyMarket { spec: &spec, event }).unwrap();
                self.user_events(user, decided).await;
            }
        }
    }

    pub async fn place(&mut self, order: NewOrder) {
        self.nonce += 1;
        let spec = self.spec.clone();
        let request = OrderRequest { market: spec.id, order, client_order_id: None, nonce: self.nonce, auth: None };
        self.user_command(order.user, UserCommand::Place { spec: &spec, request }).await;
        self.market_command(MarketCommand::Place(order)).await;
    }

    pub async fn cancel(&mut self, user: UserId, order: u64) {
        let market = self.spec.id;
        self.user_command(user, UserCommand::Cancel { market, order: OrderId(order) }).await;
        self.market_command(MarketCommand::Cancel { order: OrderId(order), user }).await;
    }

    pub async fn amend(&mut self, user: UserId, order: u64, price: u64, qty: u64) {
        let spec = self.spec.clone();
        let (order, price, qty) = (OrderId(order), PriceTicks(price), QtyLots(qty));
        self.user_command(user, UserCommand::Amend { spec: &spec, order, price, qty, signed: None }).await;
        self.market_command(MarketCommand::Amend { order, user, price, qty }).await;
    }

    pub fn tick(&self, seconds: i64) {
        self.clock.advance(TimeDelta::seconds(seconds));
    }
}

/// The scenario, in steps; the live projector catches up between steps.
pub async fn step<S: EventStore>(ex: &mut Exchange<S>, n: usize) {
    match n {
        0 => {
            for u in [ALICE, BOB, CAROL] {
                ex.deposit(u).await;
            }
        }
        1 => {
            ex.place(sell(1, ALICE, 101, 10)).await;
            ex.place(sell(2, ALICE, 102, 5)).await;
            ex.place(sell(3, CAROL, 101, 4)).await;
            ex.place(buy(4, BOB, 99, 7)).await;
            ex.place(buy(5, CAROL, 98, 3)).await;
        }
        2 => {
            ex.tick(30);
            // Partial fill of ALICE's 101 (time priority), the rest of the level untouched.
            ex.place(buy(6, BOB, 101, 6).ioc()).await;
            ex.tick(45);
            // Crosses a minute boundary: takes the rest of 1 and part of 3.
            ex.place(buy(7, BOB, 101, 5)).await;
        }
        3 => {
            ex.tick(3_600);
            ex.cancel(CAROL, 5).await;
            ex.amend(BOB, 4, 99, 4).await; // keeps priority
            ex.amend(ALICE, 2, 103, 6).await; // new price: re-enters
            ex.place(sell(8, CAROL, 99, 2)).await; // hits BOB's 99
        }
        _ => {
            ex.tick(61);
            ex.place(buy(9, ALICE, 100, 2)).await;
            ex.cancel(ALICE, 2).await;
            ex.place(sell(10, BOB, 100, 1).ioc()).await;
        }
    }
}

pub const STEPS: usize = 5;

pub async fn json_view<V: View>(views: &impl ViewStore, key: &str) -> V {
    let json = views.load(V::KIND, key).await.unwrap().unwrap_or_else(|| panic!("no view {} / {key}", V::KIND));
    serde_json::from_value(json).unwrap()
}
