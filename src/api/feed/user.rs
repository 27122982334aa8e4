//! One user's private data: orders, fills and balances, followed from the user's stream
//! like the market feeds follow markets (see `market.rs` for why streams). A live feed runs
//! only while a connection subscribes to one of the user's private channels; the REST
//! private reads load one for the duration of the request.
//!
//! Balances are folded by the ledger itself (`BalancesView` keeps a `UserState`), so what a
//! client is shown is exactly what the engine holds at that version.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::follower::{meta, next_page, Followed, PAGE};
use super::subscribers::{Outlet, Refused, Subscribers};
use super::FeedError;
use crate::api::catalog::Catalog;
use crate::api::wire::{BalanceInfo, FillInfo, OrderInfo};
use crate::api::ws::protocol::{self, BalancesBody, FillsBody, OrdersBody};
use crate::domain::{UserEvent, UserId};
use crate::events::user_payload::decode_user_event;
use crate::events::{EventEnvelope, EventStore, StreamId};
use crate::projections::{BalancesView, OrderRow, UserFillsView, UserOrdersView, ViewStore};

/// Fills in the `fills` snapshot a subscriber receives.
pub const SNAPSHOT_FILLS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserTopic {
    Orders,
    Fills,
    Balances,
}

pub struct UserFeed {
    user: UserId,
    stream: StreamId,
    catalog: Arc<Catalog>,
    state: Mutex<UserState>,
}

struct UserState {
    version: u64,
    orders: Followed<UserOrdersView>,
    fills: Followed<UserFillsView>,
    balances: Followed<BalancesView>,
    subs: Subscribers<UserTopic>,
}

impl UserFeed {
    pub async fn load<S: EventStore, V: ViewStore>(
        user: UserId,
        catalog: Arc<Catalog>,
        store: &S,
        views: &V,
    ) -> Result<UserFeed, FeedError> {
        let stream = StreamId::user(user);
        let orders = Followed::load(views, &stream, user).await?;
        let fills = Followed::load(views, &stream, user).await?;
        let balances = Followed::load(views, &stream, user).await?;
        let version = orders.folded.min(fills.folded).min(balances.folded);
        let state = UserState { version, orders, fills, balances, subs: Subscribers::default() };
        let feed = UserFeed { user, stream, catalog, state: Mutex::new(state) };
        while feed.poll(store).await? == PAGE {}
        Ok(feed)
    }

    fn lock(&self) -> MutexGuard<'_, UserState> {
        // Updates complete or fail as a whole under the lock; a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn user(&self) -> UserId {
        self.user
    }

    pub async fn poll<S: EventStore>(&self, store: &S) -> Result<usize, FeedError> {
        let from = self.lock().version;
        let page = next_page(store, &self.stream, from).await?;
        let read = page.len();
        if read > 0 {
            self.apply(page)?;
        }
        Ok(read)
    }

    fn apply(&self, page: Vec<EventEnvelope>) -> Result<usize, FeedError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let fills_before = state.fills.view.total_fills;
        let mut orders = BTreeSet::new();
        let mut balances_moved = false;
        for envelope in page {
            if envelope.version != state.version + 1 {
                continue;
            }
            let version = envelope.version;
            if crate::actors::is_bookkeeping(&envelope.event_type) {
                state.orders.pass(version);
                state.fills.pass(version);
                state.balances.pass(version);
                state.version = version;
                continue;
            }
            let m = meta(&envelope);
            let event = decode_user_event(&envelope.event_type, envelope.schema_version, envelope.payload)
                .map_err(|e| FeedError::Decode { stream: self.stream.clone(), version, reason: e.to_string() })?;
            if let Some(order) = order_of(&event) {
                orders.insert(order);
            }
            balances_moved = true;
            let fold_error = |projection: &str, e: crate::projections::FoldError| FeedError::Fold {
                stream: self.stream.clone(),
                version,
                reason: format!("{projection}: {e}"),
            };
            state.orders.fold(m, &event).map_err(|e| fold_error("orders", e))?;
            state.fills.fold(m, &event).map_err(|e| fold_error("fills", e))?;
            state.balances.fold(m, &event).map_err(|e| fold_error("balances", e))?;
            state.version = version;
        }
        let mut slow = 0;
        if !orders.is_empty() && state.subs.has(&UserTopic::Orders) {
            let rows: Vec<OrderInfo> =
                orders.iter().filter_map(|id| find_order(&state.orders.view, *id)).map(|r| self.info(r)).collect();
            let body = OrdersBody { version: state.version, orders: rows };
            slow += state.subs.publish(&UserTopic::Orders, &protocol::update("orders", &body));
        }
        let new_fills = state.fills.view.total_fills.saturating_sub(fills_before) as usize;
        if new_fills > 0 && state.subs.has(&UserTopic::Fills) {
            let fills = self.last_fills(state, new_fills);
            let body = FillsBody { version: state.version, fills };
            slow += state.subs.publish(&UserTopic::Fills, &protocol::update("fills", &body));
        }
        if balances_moved && state.subs.has(&UserTopic::Balances) {
            let body = BalancesBody { version: state.version, balances: self.balances_of(state) };
            slow += state.subs.publish(&UserTopic::Balances, &protocol::update("balances", &body));
        }
        Ok(slow)
    }

    /// Subscribes `outlet` to `topic`: a snapshot, then every update (both under the lock, so
    /// nothing is missed or repeated in between).
    pub fn subscribe(&self, topic: UserTopic, outlet: Outlet) -> Result<bool, Refused> {
        let mut state = self.lock();
        let snapshot = match topic {
            UserTopic::Orders => {
                let orders = state.orders.view.open.values().map(|r| self.info(r)).collect();
                protocol::snapshot("orders", &OrdersBody { version: state.version, orders })
            }
            UserTopic::Fills => {
                let fills = self.last_fills(&state, SNAPSHOT_FILLS);
                protocol::snapshot("fills", &FillsBody { version: state.version, fills })
            }
            UserTopic::Balances => protocol::snapshot(
                "balances",
                &BalancesBody { version: state.version, balances: self.balances_of(&state) },
            ),
        };
        outlet.send(snapshot)?;
        Ok(state.subs.add(topic, outlet))
    }

    pub fn unsubscribe(&self, topic: UserTopic, connection: u64) -> bool {
        self.lock().subs.remove(&topic, connection)
    }

    pub fn remove_connection(&self, connection: u64) {
        self.lock().subs.remove_connection(connection);
    }

    fn has_subscribers(&self) -> bool {
        !self.lock().subs.is_empty()
    }

    pub fn version(&self) -> u64 {
        self.lock().version
    }

    pub fn balances(&self) -> Vec<BalanceInfo> {
        self.balances_of(&self.lock())
    }

    /// Open orders by id, optionally of one market.
    pub fn open_orders(&self, market: Option<&str>) -> Vec<OrderInfo> {
        let state = self.lock();
        state.orders.view.open.values().filter(|r| market.is_none_or(|m| r.market == m)).map(|r| self.info(r)).collect()
    }

    /// Closed orders, most recently closed first.
    pub fn history(&self, market: Option<&str>, limit: usize) -> Vec<OrderInfo> {
        let state = self.lock();
        let rows = state.orders.view.history.iter().rev();
        rows.filter(|r| market.is_none_or(|m| r.market == m)).take(limit).map(|r| self.info(r)).collect()
    }

    /// Fills, most recent first.
    pub fn fills(&self, market: Option<&str>, limit: usize) -> Vec<FillInfo> {
        let state = self.lock();
        let rows = state.fills.view.fills.iter().rev();
        rows.filter(|f| market.is_none_or(|m| f.market == m))
            .take(limit)
            .map(|f| FillInfo::new(&self.catalog, f))
            .collect()
    }

    /// An order, open or among the recently closed.
    pub fn order(&self, order_id: u64) -> Option<OrderInfo> {
        let state = self.lock();
        find_order(&state.orders.view, order_id).map(|r| self.info(r))
    }

    pub fn order_by_client_id(&self, client_order_id: &str) -> Option<OrderInfo> {
        let state = self.lock();
        let view = &state.orders.view;
        let matches = |r: &&OrderRow| r.client_order_id.as_deref() == Some(client_order_id);
        // An open order first: a client id may be reused once its order closed.
        view.open.values().find(matches).or_else(|| view.history.iter().rev().find(matches)).map(|r| self.info(r))
    }

    fn info(&self, row: &OrderRow) -> OrderInfo {
        OrderInfo::new(self.catalog.market(&row.market).ok(), row)
    }

    fn last_fills(&self, state: &UserState, n: usize) -> Vec<FillInfo> {
        let fills = &state.fills.view.fills;
        fills[fills.len().saturating_sub(n)..].iter().map(|f| FillInfo::new(&self.catalog, f)).collect()
    }

    fn balances_of(&self, state: &UserState) -> Vec<BalanceInfo> {
        state
            .balances
            .view
            .state()
            .account()
            .balances()
            .map(|(asset, b)| BalanceInfo {
                asset: asset.to_string(),
                available: self.catalog.amount_str(asset, b.available),
                locked: self.catalog.amount_str(asset, b.locked),
                settling: self.catalog.amount_str(asset, b.settling),
            })
            .collect()
    }
}

fn find_order(view: &UserOrdersView, id: u64) -> Option<&OrderRow> {
    view.open.get(&id).or_else(|| view.history.iter().rev().find(|r| r.order_id == id))
}

/// The order an event is about, if it changes the order's row.
fn order_of(event: &UserEvent) -> Option<u64> {
    match event {
        UserEvent::OrderPlaced { order, .. } => Some(order.id.0),
        UserEvent::OrderAcknowledged { order, .. }
        | UserEvent::AmendApplied { order, .. }
        | UserEvent::FillApplied { order, .. }
        | UserEvent::OrderReleased { order, .. }
        | UserEvent::OrderClosed { order, .. } => Some(order.0),
        UserEvent::Deposited { .. }
        | UserEvent::Withdrawn { .. }
        | UserEvent::DepositCredited { .. }
        | UserEvent::WithdrawalRequested { .. }
        | UserEvent::WithdrawalCompleted { .. }
        | UserEvent::WithdrawalFailed { .. }
        | UserEvent::CancelRequested { .. }
        | UserEvent::CancelRejected { .. }
        | UserEvent::AmendRequested { .. }
        | UserEvent::AmendReverted { .. }
        | UserEvent::SettlementConfirmed { .. }
        | UserEvent::TradeVoided { .. } => None,
    }
}

/// The live private feeds, one per user with at least one private subscription.
pub struct UserFeeds<S, V> {
    feeds: tokio::sync::Mutex<HashMap<UserId, Arc<UserFeed>>>,
    catalog: Arc<Catalog>,
    store: Arc<S>,
    views: Arc<V>,
    every: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl<S: EventStore + 'static, V: ViewStore + 'static> UserFeeds<S, V> {
    pub fn new(
        catalog: Arc<Catalog>,
        store: Arc<S>,
        views: Arc<V>,
        every: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<UserFeeds<S, V>> {
        Arc::new(UserFeeds { feeds: tokio::sync::Mutex::new(HashMap::new()), catalog, store, views, every, stop })
    }

    /// A feed loaded for one read (the REST private routes); not kept.
    pub async fn load_once(&self, user: UserId) -> Result<UserFeed, FeedError> {
        UserFeed::load(user, self.catalog.clone(), self.store.as_ref(), self.views.as_ref()).await
    }

    pub async fn live(&self) -> usize {
        self.feeds.lock().await.len()
    }

    /// Subscribes `outlet` to the user's `topic`, starting the user's feed if needed.
    pub async fn subscribe(
        self: &Arc<Self>,
        user: UserId,
        topic: UserTopic,
        outlet: Outlet,
    ) -> Result<Result<bool, Refused>, FeedError> {
        let mut feeds = self.feeds.lock().await;
        let feed = match feeds.get(&user) {
            Some(feed) => feed.clone(),
            None => {
                let feed = Arc::new(self.load_once(user).await?);
                feeds.insert(user, feed.clone());
                self.clone().spawn(feed.clone());
                feed
            }
        };
        Ok(feed.subscribe(topic, outlet))
    }

    pub async fn unsubscribe(&self, user: UserId, topic: UserTopic, connection: u64) -> bool {
        let feeds = self.feeds.lock().await;
        feeds.get(&user).is_some_and(|f| f.unsubscribe(topic, connection))
    }

    pub async fn remove_connection(&self, user: UserId, connection: u64) {
        if let Some(feed) = self.feeds.lock().await.get(&user) {
            feed.remove_connection(connection);
        }
    }

    /// Polls the user's stream until nobody subscribes any more; then the feed is dropped
    /// (under the registry's lock, so a subscription racing with it finds a fresh feed).
    fn spawn(self: Arc<Self>, feed: Arc<UserFeed>) {
        actix_rt::spawn(async move {
            let mut stop = self.stop.clone();
            loop {
                let wait = match feed.poll(self.store.as_ref()).await {
                    Ok(read) if read == PAGE => Duration::ZERO,
                    Ok(_) => self.every,
                    Err(e) => {
                        tracing::warn!(user = %feed.user(), error = %e, "private feed failed; its subscribers must resubscribe");
                        let mut feeds = self.feeds.lock().await;
                        feed.lock().subs.disconnect_all("private feed restarted; subscribe again");
                        feeds.remove(&feed.user());
                        return;
                    }
                };
                if !feed.has_subscribers() {
                    let mut feeds = self.feeds.lock().await;
                    if !feed.has_subscribers() {
                        feeds.remove(&feed.user());
                        return;
                    }
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = actix_rt::time::sleep(wait) => {}
                }
            }
        });
    }
}
