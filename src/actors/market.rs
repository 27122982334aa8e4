//! `MarketActor`: one per market, the only writer of `market:{id}`. It consumes the market
//! queue in order, matches, and appends the market's events with the outbox records they
//! imply: each affected user's outcome (user queue, group `user:{address}`) and every trade
//! (settlement queue, group = the operator wallet).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::deps::{check_sequence, idempotency_key, save_snapshot, ActorDeps, ActorError, Counters};
use crate::domain::{
    LevelSummary, Market, MarketCommand, MarketEvent, MarketSpec, MarketStatus, OrderId, RestingOrder, Side, TradeId,
    UserId,
};
use crate::events::market_snapshot::{decode_market_snapshot, encode_market_snapshot, market_state_hash};
use crate::events::payload::WireTraded;
use crate::events::{
    decode_market_event, encode_market_event, AppendRequest, EventStore, NewEvent, OutboxRecord, Snapshot, StoreError,
    StreamId,
};
use crate::queue::{user_group, MessageSource, SETTLEMENT_QUEUE, USER_QUEUE};

/// A command for the market, with where it came from.
#[derive(Message)]
#[rtype(result = "Result<MarketReply, ActorError>")]
pub struct MarketRequest {
    pub command: MarketCommand,
    /// Set when the command arrived through a queue; makes a redelivery a no-op.
    pub source: Option<MessageSource>,
    pub correlation_id: Uuid,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MarketReply {
    /// The events this command produced; empty when it was a redelivery already applied.
    pub events: Vec<MarketEvent>,
    /// The stream's version after the command.
    pub version: u64,
    pub deduplicated: bool,
}

/// A read of the live state for the engine's queries and the operator API: the top `depth`
/// levels a side and, if asked, one resting order.
#[derive(Message)]
#[rtype(result = "MarketView")]
pub struct InspectMarket {
    pub depth: usize,
    pub order: Option<OrderId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MarketView {
    pub stream: StreamId,
    pub version: u64,
    pub status: MarketStatus,
    pub resting_orders: usize,
    pub next_trade: TradeId,
    pub bids: Vec<LevelSummary>,
    pub asks: Vec<LevelSummary>,
    pub order: Option<RestingOrder>,
}

pub struct MarketActor<S: EventStore + 'static> {
    market: Market,
    stream: StreamId,
    version: u64,
    /// Events applied since the last snapshot (or since start).
    since_snapshot: u64,
    deps: Arc<ActorDeps<S>>,
}

impl<S: EventStore + 'static> MarketActor<S> {
    /// Rebuilds the market: the latest snapshot (if its state hash checks out), then every
    /// later event applied in order.
    pub async fn load(spec: MarketSpec, deps: Arc<ActorDeps<S>>) -> Result<MarketActor<S>, ActorError> {
        let stream = StreamId::market(spec.id);
        let (mut market, from) = match deps.store.load_latest_snapshot(&stream).await? {
            Some(snap) => match decode_market_snapshot(spec.clone(), &snap.state) {
                Ok(market) if market_state_hash(&market) == snap.state_hash => (market, snap.version),
                _ => {
                    Counters::bump(&deps.counters.snapshots_refused);
                    (Market::new(spec), 0)
                }
            },
            None => (Market::new(spec), 0),
        };
        let events = deps.store.read_stream(&stream, from + 1).await?;
        check_sequence(&events, from + 1)?;
        for stored in &events {
            let event = decode_market_event(&stored.event_type, stored.schema_version, stored.payload.clone())
                .map_err(|source| ActorError::Decode { stream: stream.clone(), version: stored.version, source })?;
            market.apply(&event).map_err(|e| ActorError::Replay {
                stream: stream.clone(),
                version: stored.version,
                reason: e.to_string(),
            })?;
        }
        let version = events.last().map_or(from, |e| e.version);
        Ok(MarketActor { market, stream, version, since_snapshot: events.len() as u64, deps })
    }

    /// The hash of the live state, as recorded with snapshots.
    pub fn state_hash(&self) -> [u8; 32] {
        market_state_hash(&self.market)
    }

    fn snapshot_if_due(&mut self, applied: usize) {
        self.since_snapshot += applied as u64;
        if self.deps.snapshot_every == 0 || self.since_snapshot < self.deps.snapshot_every {
            return;
        }
        self.since_snapshot = 0;
        let state = encode_market_snapshot(&self.market);
        let state_hash = super::deps::sha256(&state);
        save_snapshot(&self.deps, Snapshot { stream: self.stream.clone(), version: self.version, state, state_hash });
    }

    /// Which user each event concerns, for routing outcomes to user actors. Read against the
    /// state before the events apply: a maker that trades away is still on the book here.
    fn owner(&self, command: &MarketCommand, order: OrderId) -> Option<UserId> {
        let own = match *command {
            MarketCommand::Place(ref o) if o.id == order => Some(o.user),
            MarketCommand::Cancel { order: o, user } | MarketCommand::Amend { order: o, user, .. } if o == order => {
                Some(user)
            }
            _ => None,
        };
        own.or_else(|| self.market.book().get(order).map(|o| o.user))
    }

    fn outbox(&self, command: &MarketCommand, events: &[MarketEvent]) -> Vec<OutboxRecord> {
        let market = self.market.spec().id.to_string();
        let mut records = Vec::new();
        let mut to_user = |user: UserId, event: &MarketEvent| {
            let e = encode_market_event(event);
            records.push(OutboxRecord {
                destination: USER_QUEUE.into(),
                group: user_group(user),
                payload: json!({
                    "market": market,
                    "event_type": e.event_type,
                    "schema_version": e.schema_version,
                    "event": e.payload,
                }),
            });
        };
        let mut trades = Vec::new();
        for event in events {
            match event {
                MarketEvent::Traded(t) => {
                    to_user(t.maker_user, event);
                    to_user(t.taker_user, event);
                    trades.push(t);
                }
                MarketEvent::Accepted(o) => to_user(o.user, event),
                MarketEvent::Rested { user, .. } => to_user(*user, event),
                MarketEvent::Filled { order }
                | MarketEvent::Expired { order, .. }
                | MarketEvent::Cancelled { order, .. }
                | MarketEvent::Amended { order, .. }
                | MarketEvent::Rejected { order, .. } => {
                    if let Some(user) = self.owner(command, *order) {
                        to_user(user, event);
                    }
                }
                MarketEvent::Halted | MarketEvent::Resumed => {}
            }
        }
        for t in trades {
            records.push(OutboxRecord {
                destination: SETTLEMENT_QUEUE.into(),
                group: self.deps.settlement_group.clone(),
                payload: json!({"market": market, "trade": WireTraded::from(t)}),
            });
        }
        records
    }
}

impl<S: EventStore + 'static> Actor for MarketActor<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A bounded mailbox: a full one is an error at the sender, never unbounded memory.
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

/// Messages a market actor may hold before senders get a "mailbox full" error.
pub const MAILBOX_CAPACITY: usize = 4_096;

impl<S: EventStore + 'static> Handler<MarketRequest> for MarketActor<S> {
    type Result = AtomicResponse<Self, Result<MarketReply, ActorError>>;

    fn handle(&mut self, msg: MarketRequest, ctx: &mut Self::Context) -> Self::Result {
        let now = self.deps.now_ms();
        let mut events = Vec::new();
        let decided = catch_unwind(AssertUnwindSafe(|| self.market.decide(msg.command, now, &mut events)));
        if decided.is_err() {
            Counters::bump(&self.deps.counters.panics);
            ctx.stop();
            return AtomicResponse::new(Box::pin(fut::ready(Err(ActorError::Panicked))));
        }
        if events.is_empty() {
            let reply = MarketReply { events, version: self.version, deduplicated: false };
            return AtomicResponse::new(Box::pin(fut::ready(Ok(reply))));
        }
        let request = AppendRequest {
            stream: self.stream.clone(),
            expected_version: self.version,
            events: events
                .iter()
                .map(|e| NewEvent::market(self.deps.clock.as_ref(), msg.correlation_id, msg.correlation_id, e))
                .collect(),
            outbox: self.outbox(&msg.command, &events),
            idempotency_key: msg.source.as_ref().map(|s| idempotency_key(&self.stream, s)),
        };
        let store = self.deps.store.clone();
        let append = async move { store.append(request).await };
        AtomicResponse::new(Box::pin(append.into_actor(self).map(move |result, act, ctx| {
            let stored = match result {
                Ok(stored) => stored,
                Err(StoreError::VersionConflict { .. }) => {
                    Counters::bump(&act.deps.counters.conflicts);
                    ctx.stop();
                    return Err(ActorError::Conflict(act.stream.clone()));
                }
                Err(e) => return Err(e.into()),
            };
            Counters::bump(&act.deps.counters.appends);
            if stored.deduplicated {
                // Already applied when it was first stored (or replayed since): nothing to do.
                Counters::bump(&act.deps.counters.deduplicated);
                return Ok(MarketReply { events: Vec::new(), version: act.version, deduplicated: true });
            }
            for event in &events {
                if let Err(e) = act.market.apply(event) {
                    // Decided from this very state, so this is a bug: stop, rebuild from the stream.
                    ctx.stop();
                    return Err(ActorError::Replay {
                        stream: act.stream.clone(),
                        version: stored.last_version,
                        reason: e.to_string(),
                    });
                }
            }
            debug_assert!(!act.market.book().is_crossed(), "invariant: the book is never crossed after a command");
            act.version = stored.last_version;
            act.deps.outbox_wake.notify_one();
            act.snapshot_if_due(events.len());
            Ok(MarketReply { events, version: act.version, deduplicated: false })
        })))
    }
}

impl<S: EventStore + 'static> Handler<InspectMarket> for MarketActor<S> {
    type Result = MessageResult<InspectMarket>;

    fn handle(&mut self, q: InspectMarket, _: &mut Self::Context) -> Self::Result {
        let book = self.market.book();
        MessageResult(MarketView {
            stream: self.stream.clone(),
            version: self.version,
            status: self.market.status(),
            resting_orders: book.len(),
            next_trade: self.market.next_trade_id(),
            bids: book.depth(Side::Buy, q.depth),
            asks: book.depth(Side::Sell, q.depth),
            order: q.order.and_then(|id| book.get(id)),
        })
    }
}
