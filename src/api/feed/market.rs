//! One market's live market data: the L2 book, the trade tape and the candles, followed from
//! the market's stream, served to REST readers and pushed to WebSocket subscribers.
//!
//! Why follow the stream rather than be told by the market actor: the stream is the truth
//! and holds only committed events, so a client never sees a trade that a crash could undo;
//! the feed needs nothing from the actors (no hook on their hot path, no extra mailbox
//! messages, no back-pressure into matching); and the version of every push is the stream's
//! version, which is exactly the `last_update_id` a client needs to line REST snapshots up with
//! WebSocket diffs. The cost is the poll period (`engine.feed_poll_ms`, 10 ms by default) of
//! latency and one indexed read per market per period.
//!
//! A diff covers a contiguous range of stream versions: it lists, with absolute quantities,
//! every level that changed in `first_update_id ..= last_update_id`, and the next diff starts
//! right after. Versions whose events do not change the book are folded into the next diff's
//! range, so no empty diffs are sent and the ranges still chain without gaps.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::checksum::book_checksum;
use super::follower::{meta, next_page, Followed, PAGE};
use super::subscribers::{Outlet, Refused, Subscribers};
use super::FeedError;
use crate::api::catalog::MarketEntry;
use crate::api::metrics::Metrics;
use crate::api::wire::{self, BookSnapshot, CandleInfo, Interval, Level, Ticker, TradeInfo};
use crate::api::ws::protocol::{self, CandlesBody, L2Update, TradesBody};
use crate::domain::{MarketEvent, PriceTicks, QtyLots, Side};
use crate::events::{decode_market_event, EventEnvelope, EventStore, StreamId};
use crate::projections::candles::{bucket_start_ms, HOUR_MS, MINUTE_MS};
use crate::projections::{CandlesView, DepthView, TradeTapeView, ViewSide, ViewStore};

/// Trades in the `trades` snapshot a subscriber receives.
pub const SNAPSHOT_TRADES: usize = 50;
/// Candles in the `candles` snapshot a subscriber receives.
pub const SNAPSHOT_CANDLES: usize = 100;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What one can subscribe to in a market.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarketTopic {
    L2,
    Trades,
    Candles(Interval),
    Ticker,
}

pub struct MarketFeed {
    entry: MarketEntry,
    stream: StreamId,
    state: Mutex<MarketState>,
}

struct MarketState {
    /// Every view has folded the stream up to here.
    version: u64,
    depth: Followed<DepthView>,
    tape: Followed<TradeTapeView>,
    candles: Followed<CandlesView>,
    /// The last version covered by an `l2` diff (or the start): the next diff starts after it.
    l2_through: u64,
    subs: Subscribers<MarketTopic>,
}

/// What one page of events changed, to push.
#[derive(Default)]
struct Changes {
    /// Prices of the levels that changed, per side.
    bids: BTreeSet<u64>,
    asks: BTreeSet<u64>,
    trades: usize,
    candles: BTreeSet<(Interval, i64)>,
}

impl MarketFeed {
    /// The market's views as last projected, caught up with the stream's head.
    pub async fn load<S: EventStore, V: ViewStore>(
        entry: MarketEntry,
        store: &S,
        views: &V,
    ) -> Result<MarketFeed, FeedError> {
        let stream = StreamId::market(entry.id());
        let depth = Followed::load(views, &stream, entry.id()).await?;
        let tape = Followed::load(views, &stream, entry.id()).await?;
        let candles = Followed::load(views, &stream, entry.id()).await?;
        let version = depth.folded.min(tape.folded).min(candles.folded);
        let state = MarketState { version, depth, tape, candles, l2_through: version, subs: Subscribers::default() };
        let feed = MarketFeed { entry, stream, state: Mutex::new(state) };
        while feed.poll(store, None).await? == PAGE {}
        let mut state = feed.lock();
        state.l2_through = state.version;
        drop(state);
        Ok(feed)
    }

    fn lock(&self) -> MutexGuard<'_, MarketState> {
        // Every update of the state completes or fails as a whole under the lock (a failed
        // page makes the feed reload), so a poisoned lock still guards a usable state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn entry(&self) -> &MarketEntry {
        &self.entry
    }

    /// Reads the next page of the stream, folds it and pushes what changed; returns how many
    /// events it read.
    pub async fn poll<S: EventStore>(&self, store: &S, metrics: Option<&Metrics>) -> Result<usize, FeedError> {
        let from = self.lock().version;
        let page = next_page(store, &self.stream, from).await?;
        let read = page.len();
        if read > 0 {
            self.apply(page, metrics)?;
        }
        Ok(read)
    }

    fn apply(&self, page: Vec<EventEnvelope>, metrics: Option<&Metrics>) -> Result<(), FeedError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut changes = Changes::default();
        for envelope in page {
            if envelope.version != state.version + 1 {
                // Another poll got here first (only `load` and the feed's task poll).
                continue;
            }
            let version = envelope.version;
            if crate::actors::is_bookkeeping(&envelope.event_type) {
                state.depth.pass(version);
                state.tape.pass(version);
                state.candles.pass(version);
                state.version = version;
                continue;
            }
            let m = meta(&envelope);
            let event = decode_market_event(&envelope.event_type, envelope.schema_version, envelope.payload)
                .map_err(|e| FeedError::Decode { stream: self.stream.clone(), version, reason: e.to_string() })?;
            // Trades and cancels name only the order: find its level before it goes.
            match touched_level(&state.depth.view, &event) {
                Some((Side::Buy, price)) => changes.bids.insert(price),
                Some((Side::Sell, price)) => changes.asks.insert(price),
                None => false,
            };
            match &event {
                MarketEvent::Accepted(order) => {
                    if let Some(metrics) = metrics {
                        metrics.match_latency_seconds.observe(decision_latency_secs(order.id.0, m.occurred_at));
                    }
                }
                MarketEvent::Traded(_) => {
                    changes.trades += 1;
                    changes.candles.insert((Interval::M1, bucket_start_ms(m.occurred_at, MINUTE_MS)));
                    changes.candles.insert((Interval::H1, bucket_start_ms(m.occurred_at, HOUR_MS)));
                }
                _ => {}
            }
            let fold_error = |projection: &str, e: crate::projections::FoldError| FeedError::Fold {
                stream: self.stream.clone(),
                version,
                reason: format!("{projection}: {e}"),
            };
            state.depth.fold(m, &event).map_err(|e| fold_error("depth", e))?;
            state.tape.fold(m, &event).map_err(|e| fold_error("trades", e))?;
            state.candles.fold(m, &event).map_err(|e| fold_error("candles", e))?;
            state.version = version;
        }
        // Slow subscribers found here are counted by their connection's writer as it closes.
        self.push(state, &changes);
        Ok(())
    }

    /// Pushes one page's changes to the subscribers; returns how many were dropped as slow.
    fn push(&self, state: &mut MarketState, changes: &Changes) -> usize {
        let mut slow = 0;
        let market = self.entry.id().to_string();
        let book_moved = !changes.bids.is_empty() || !changes.asks.is_empty();
        if book_moved {
            if state.subs.has(&MarketTopic::L2) {
                let level = |levels: &std::collections::BTreeMap<u64, crate::projections::DepthLevel>, price: &u64| {
                    let qty = levels.get(price).map_or(0, |l| l.qty_lots);
                    [self.entry.price_str(PriceTicks(*price)), self.entry.qty_str(QtyLots(qty))]
                };
                // Best first on each side, like the snapshot.
                let bids: Vec<Level> = changes.bids.iter().rev().map(|p| level(&state.depth.view.bids, p)).collect();
                let asks: Vec<Level> = changes.asks.iter().map(|p| level(&state.depth.view.asks, p)).collect();
                let (top_bids, top_asks) = self.top_levels(state, super::checksum::CHECKSUM_LEVELS);
                let diff = L2Update {
                    market: market.clone(),
                    first_update_id: state.l2_through + 1,
                    last_update_id: state.version,
                    bids,
                    asks,
                    checksum: book_checksum(&top_bids, &top_asks),
                };
                slow += state.subs.publish(&MarketTopic::L2, &protocol::update("l2", &diff));
            }
            state.l2_through = state.version;
        }
        if changes.trades > 0 && state.subs.has(&MarketTopic::Trades) {
            let tape = &state.tape.view.trades;
            let fresh = &tape[tape.len().saturating_sub(changes.trades)..];
            let trades = fresh.iter().map(|t| TradeInfo::new(&self.entry, t)).collect();
            let body = TradesBody { market: market.clone(), trades };
            slow += state.subs.publish(&MarketTopic::Trades, &protocol::update("trades", &body));
        }
        for interval in [Interval::M1, Interval::H1] {
            let topic = MarketTopic::Candles(interval);
            if !state.subs.has(&topic) {
                continue;
            }
            let candles: Vec<CandleInfo> = changes
                .candles
                .iter()
                .filter(|(i, _)| *i == interval)
                .filter_map(|(_, start)| candles_of(&state.candles.view, interval).get(start))
                .map(|c| CandleInfo::new(&self.entry, c))
                .collect();
            if !candles.is_empty() {
                let body = CandlesBody { market: market.clone(), interval, candles };
                slow += state.subs.publish(&topic, &protocol::update("candles", &body));
            }
        }
        if (changes.trades > 0 || book_moved) && state.subs.has(&MarketTopic::Ticker) {
            let ticker = self.ticker_of(state, Utc::now());
            slow += state.subs.publish(&MarketTopic::Ticker, &protocol::update("ticker", &ticker));
        }
        slow
    }

    /// Subscribes `outlet` to `topic`: its snapshot first, then every update, with nothing
    /// missed or repeated in between (both happen under the feed's lock). False if it was
    /// already subscribed.
    pub fn subscribe(&self, topic: MarketTopic, outlet: Outlet) -> Result<bool, Refused> {
        let mut state = self.lock();
        let snapshot = match topic {
            MarketTopic::L2 => protocol::snapshot("l2", &self.book_of(&state, usize::MAX)),
            MarketTopic::Trades => protocol::snapshot(
                "trades",
                &TradesBody { market: self.entry.id().to_string(), trades: self.trades_of(&state, SNAPSHOT_TRADES) },
            ),
            MarketTopic::Candles(interval) => protocol::snapshot(
                "candles",
                &CandlesBody {
                    market: self.entry.id().to_string(),
                    interval,
                    candles: self.candles_of(&state, interval, SNAPSHOT_CANDLES),
                },
            ),
            MarketTopic::Ticker => protocol::snapshot("ticker", &self.ticker_of(&state, Utc::now())),
        };
        outlet.send(snapshot)?;
        Ok(state.subs.add(topic, outlet))
    }

    pub fn unsubscribe(&self, topic: MarketTopic, connection: u64) -> bool {
        self.lock().subs.remove(&topic, connection)
    }

    pub fn remove_connection(&self, connection: u64) {
        self.lock().subs.remove_connection(connection);
    }

    /// Rebuilds the state from the views and the stream, and disconnects every subscriber:
    /// after a failure their books may have missed something.
    pub async fn reload<S: EventStore, V: ViewStore>(&self, store: &S, views: &V) -> Result<(), FeedError> {
        let fresh = MarketFeed::load(self.entry.clone(), store, views).await?;
        let fresh = fresh.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut *self.lock(), fresh);
        old.subs.disconnect_all("market feed restarted; subscribe again");
        Ok(())
    }

    pub fn version(&self) -> u64 {
        self.lock().version
    }

    pub fn halted(&self) -> bool {
        self.lock().depth.view.halted
    }

    /// The top `depth` levels a side (all with `usize::MAX`).
    pub fn book(&self, depth: usize) -> BookSnapshot {
        self.book_of(&self.lock(), depth)
    }

    /// The last `limit` trades, newest last.
    pub fn trades(&self, limit: usize) -> Vec<TradeInfo> {
        self.trades_of(&self.lock(), limit)
    }

    /// The last `limit` candles of `interval`, oldest first.
    pub fn candles(&self, interval: Interval, limit: usize) -> Vec<CandleInfo> {
        self.candles_of(&self.lock(), interval, limit)
    }

    pub fn ticker(&self, now: DateTime<Utc>) -> Ticker {
        self.ticker_of(&self.lock(), now)
    }

    fn top_levels(&self, state: &MarketState, depth: usize) -> (Vec<Level>, Vec<Level>) {
        let side = |s: Side| state.depth.view.depth(s, depth).iter().map(|l| wire::level(&self.entry, l)).collect();
        (side(Side::Buy), side(Side::Sell))
    }

    fn book_of(&self, state: &MarketState, depth: usize) -> BookSnapshot {
        let (bids, asks) = self.top_levels(state, depth);
        let (top_bids, top_asks) = self.top_levels(state, super::checksum::CHECKSUM_LEVELS);
        BookSnapshot {
            market: self.entry.id().to_string(),
            last_update_id: state.version,
            bids,
            asks,
            checksum: book_checksum(&top_bids, &top_asks),
        }
    }

    fn trades_of(&self, state: &MarketState, limit: usize) -> Vec<TradeInfo> {
        let tape = &state.tape.view.trades;
        tape[tape.len().saturating_sub(limit)..].iter().map(|t| TradeInfo::new(&self.entry, t)).collect()
    }

    fn candles_of(&self, state: &MarketState, interval: Interval, limit: usize) -> Vec<CandleInfo> {
        let candles = candles_of(&state.candles.view, interval);
        let skip = candles.len().saturating_sub(limit);
        candles.values().skip(skip).map(|c| CandleInfo::new(&self.entry, c)).collect()
    }

    /// The last 24 hours from the 1-minute candles (the view keeps exactly a day of them).
    fn ticker_of(&self, state: &MarketState, now: DateTime<Utc>) -> Ticker {
        let since = now.timestamp_millis() - DAY_MS;
        let window: Vec<_> = state.candles.view.m1.range(since..).map(|(_, c)| c).collect();
        let price = |t: u64| self.entry.price_str(PriceTicks(t));
        let volume: u64 = window.iter().map(|c| c.volume_lots).sum();
        let quote: u128 = window.iter().filter_map(|c| c.quote_volume.parse::<u128>().ok()).sum();
        let best = |s: Side| state.depth.view.depth(s, 1).first().map(|l| price(l.price_ticks));
        Ticker {
            market: self.entry.id().to_string(),
            last_price: state.tape.view.trades.last().map(|t| price(t.price_ticks)),
            open_24h: window.first().map(|c| price(c.open_ticks)),
            high_24h: window.iter().map(|c| c.high_ticks).max().map(price),
            low_24h: window.iter().map(|c| c.low_ticks).min().map(price),
            volume_24h: self.entry.qty_str(QtyLots(volume)),
            quote_volume_24h: self.entry.quote_str(crate::domain::Amount(quote)),
            trades_24h: window.iter().map(|c| c.trades).sum(),
            best_bid: best(Side::Buy),
            best_ask: best(Side::Sell),
            last_update_id: state.version,
            time: now.timestamp_millis(),
        }
    }
}

fn candles_of(view: &CandlesView, interval: Interval) -> &std::collections::BTreeMap<i64, crate::projections::Candle> {
    match interval {
        Interval::M1 => &view.m1,
        Interval::H1 => &view.h1,
    }
}

/// The book level an event changes, read from the book before the event applies.
fn touched_level(depth: &DepthView, event: &MarketEvent) -> Option<(Side, u64)> {
    let resting = |order: u64| {
        depth.orders.get(&order).map(|e| {
            let side = match e.side {
                ViewSide::Buy => Side::Buy,
                ViewSide::Sell => Side::Sell,
            };
            (side, e.price_ticks)
        })
    };
    match event {
        MarketEvent::Rested { side, price, .. } => Some((*side, price.0)),
        MarketEvent::Traded(trade) => resting(trade.maker_order.0),
        MarketEvent::Cancelled { order, .. }
        | MarketEvent::Expired { order, .. }
        | MarketEvent::Amended { order, .. } => resting(order.0),
        MarketEvent::Accepted(_)
        | MarketEvent::Filled { .. }
        | MarketEvent::Rejected { .. }
        | MarketEvent::Halted
        | MarketEvent::Resumed => None,
    }
}

/// Seconds from an order's placement (the engine clock's milliseconds in the order id's
/// upper bits, see `engine::OrderIds`) to the market event deciding it.
fn decision_latency_secs(order_id: u64, decided_at: DateTime<Utc>) -> f64 {
    let placed_ms = (order_id >> 20) as i64;
    (decided_at.timestamp_millis() - placed_ms).max(0) as f64 / 1_000.0
}

/// Starts following `feed`'s stream: polls every `every` until `stop`, reading pages back to
/// back while it is behind. A failure (a store error, an event that does not fold) is logged
/// and the feed rebuilt from the views; its subscribers are disconnected, since their books
/// may have missed something, and resubscribe.
pub fn spawn<S: EventStore + 'static, V: ViewStore + 'static>(
    feed: Arc<MarketFeed>,
    store: Arc<S>,
    views: Arc<V>,
    metrics: Arc<Metrics>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    actix_rt::spawn(async move {
        loop {
            let wait = match feed.poll(store.as_ref(), Some(&metrics)).await {
                Ok(read) if read == PAGE => std::time::Duration::ZERO,
                Ok(_) => every,
                Err(e) => {
                    tracing::warn!(market = %feed.entry().id(), error = %e, "market feed failed; rebuilding it");
                    if let Err(e) = feed.reload(store.as_ref(), views.as_ref()).await {
                        tracing::warn!(market = %feed.entry().id(), error = %e, "market feed rebuild failed; retrying");
                    }
                    every * 10
                }
            };
            metrics.feed_version.with_label_values(&[feed.entry().id().as_str()]).set(feed.version() as i64);
            tokio::select! {
                _ = stop.changed() => return,
                _ = actix_rt::time::sleep(wait) => {}
            }
        }
    });
}
