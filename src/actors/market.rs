//! `MarketActor`: one per market, the only writer of `market:{id}`. It consumes the market
//! queue in order, matches, and appends the market's events with the outbox records they
//! imply: each affected user's outcome (user queue, group `user:{address}`) and every trade
//! (settlement queue, group = the operator wallet).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::batch_commit;
use super::consumed::{ActorSnapshot, Consumed, CONSUMED};
use super::deps::{replay_stream, save_snapshot, sha256, ActorDeps, ActorError, Counters};
use super::order_auths::{OrderAuths, ORDER_AUTHORIZED};
use crate::domain::{
    LevelSummary, Market, MarketCommand, MarketEvent, MarketSpec, MarketStatus, OrderAuth, OrderId, RestingOrder, Side,
    TradeId, UserId,
};
use crate::events::market_snapshot::{decode_market_snapshot, encode_market_snapshot, market_state_hash};
use crate::events::payload::WireTraded;
use crate::events::{
    decode_market_event_bytes, encode_market_event, EventStore, NewEvent, OutboxRecord, Snapshot, StreamId,
};
use crate::queue::{user_group, MessageSource, SETTLEMENT_QUEUE, USER_QUEUE};

/// A command for the market, with where it came from.
#[derive(Message)]
#[rtype(result = "Result<MarketReply, ActorError>")]
pub struct MarketRequest {
    pub command: MarketCommand,
    /// A placement's signed order, or a signed amend's new one, kept while the order lives
    /// and sent with its trades to settlement.
    pub auth: Option<OrderAuth>,
    /// Set when the command arrived through a queue; makes a redelivery a no-op.
    pub source: Option<MessageSource>,
    pub correlation_id: Uuid,
}

/// Commands for the market taken from its queue in order, decided one after the other and
/// stored in one append (one fsync for the lot). Each gets its own reply.
#[derive(Message)]
#[rtype(result = "Result<Vec<MarketReply>, ActorError>")]
pub struct MarketBatch {
    pub items: Vec<MarketRequest>,
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
    /// Queue records already applied, per source stream.
    consumed: Consumed,
    /// Signed orders of the orders alive in the book (and of the one being placed).
    auths: OrderAuths,
    deps: Arc<ActorDeps<S>>,
}

impl<S: EventStore + 'static> MarketActor<S> {
    /// Rebuilds the market: the latest snapshot (if its state hash checks out), then every
    /// later event applied in order.
    pub async fn load(spec: MarketSpec, deps: Arc<ActorDeps<S>>) -> Result<MarketActor<S>, ActorError> {
        let stream = StreamId::market(spec.id);
        let fresh = |deps: &ActorDeps<S>| {
            tracing::warn!(%stream, "snapshot refused (does not decode or its hash does not match); full replay");
            Counters::bump(&deps.counters.snapshots_refused);
            (Market::new(spec.clone()), Consumed::default(), OrderAuths::default(), 0)
        };
        let (mut market, mut consumed, mut auths, from) = match deps.store.load_latest_snapshot(&stream).await? {
            Some(snap) => match ActorSnapshot::decode(&snap.state) {
                Some(actor) if sha256(&snap.state) == snap.state_hash => {
                    let auths = OrderAuths::from_snapshot(&actor.extra);
                    match (decode_market_snapshot(spec.clone(), &actor.state), auths) {
                        (Ok(market), Some(auths)) => (market, actor.consumed, auths, snap.version),
                        _ => fresh(&deps),
                    }
                }
                _ => fresh(&deps),
            },
            None => (Market::new(spec.clone()), Consumed::default(), OrderAuths::default(), 0),
        };
        let (count, version) = replay_stream(deps.store.as_ref(), &stream, from, |stored| {
            let replay =
                |reason: String| ActorError::Replay { stream: stream.clone(), version: stored.version, reason };
            if stored.event_type == CONSUMED {
                return consumed.apply(&stored.value().map_err(replay)?).map_err(replay);
            }
            if stored.event_type == ORDER_AUTHORIZED {
                return auths.apply(&stored.value().map_err(replay)?).map_err(replay);
            }
            let event = decode_market_event_bytes(&stored.event_type, stored.schema_version, &stored.payload)
                .map_err(|source| ActorError::Decode { stream: stream.clone(), version: stored.version, source })?;
            market.apply(&event).map_err(|e| replay(e.to_string()))?;
            auths.forget_ended(&event, market.book());
            Ok(())
        })
        .await?;
        Ok(MarketActor { market, stream, version, since_snapshot: count, consumed, auths, deps })
    }

    /// The hash of the live market state (what `hob audit` recomputes from events alone).
    pub fn state_hash(&self) -> [u8; 32] {
        market_state_hash(&self.market)
    }

    fn snapshot_if_due(&mut self, applied: usize) {
        self.since_snapshot += applied as u64;
        if self.deps.snapshot_every == 0 || self.since_snapshot < self.deps.snapshot_every {
            return;
        }
        self.since_snapshot = 0;
        let state =
            ActorSnapshot::encode_with(&self.consumed, encode_market_snapshot(&self.market), self.auths.to_snapshot());
        let state_hash = sha256(&state);
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
            // Settlement needs both signed orders; a maker's is in `auths`, the taker's too
            // (registered before its command was decided).
            let auth = |order: OrderId| self.auths.get(order).map(|a| a.as_str().to_owned());
            records.push(OutboxRecord {
                destination: SETTLEMENT_QUEUE.into(),
                group: self.deps.settlement_group.clone(),
                payload: json!({
                    "market": market,
                    "trade": WireTraded::from(t),
                    "maker_auth": auth(t.maker_order),
                    "taker_auth": auth(t.taker_order),
                }),
            });
        }
        records
    }
}

impl<S: EventStore + 'static> batch_commit::Batching<S> for MarketActor<S> {
    fn deps(&self) -> &Arc<ActorDeps<S>> {
        &self.deps
    }

    fn stream(&self) -> &StreamId {
        &self.stream
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn stored(&mut self, version: u64, applied: usize) {
        self.version = version;
        self.snapshot_if_due(applied);
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

type BatchFuture<S> = ResponseActFuture<MarketActor<S>, Result<Vec<MarketReply>, ActorError>>;

impl<S: EventStore + 'static> MarketActor<S> {
    /// Decides each command in turn and folds its events into memory at once, so the next
    /// command sees them; then stores everything in one append and only then replies.
    ///
    /// Applying before the append is durable departs from "never apply before the append
    /// succeeds" in letter, not in effect: the handler holds the actor (`AtomicResponse`) until
    /// the append resolves, so no reply, read or outbox record can observe the new state early,
    /// and if the append fails the actor stops and is rebuilt from its stream, discarding the
    /// memory that ran ahead. This is what lets one market commit many commands per fsync.
    fn handle_batch(&mut self, items: Vec<MarketRequest>, ctx: &mut Context<Self>) -> BatchFuture<S> {
        let now = self.deps.now_ms();
        let correlation = items.first().map_or_else(Uuid::now_v7, |i| i.correlation_id);
        let mut stored_events = Vec::new();
        let mut outbox = Vec::new();
        let mut replies = Vec::with_capacity(items.len());
        let mut sources = Vec::new();
        for item in items {
            if item.source.as_ref().is_some_and(|s| !self.consumed.is_new(s)) {
                Counters::bump(&self.deps.counters.deduplicated);
                replies.push(MarketReply { events: Vec::new(), version: self.version, deduplicated: true });
                continue;
            }
            // The signed order is recorded before the order's events, so a replay knows it
            // before any trade of the order.
            if let (MarketCommand::Place(order), Some(auth)) = (&item.command, &item.auth) {
                if self.auths.get(order.id).is_none() {
                    stored_events.push(OrderAuths::event(
                        self.deps.clock.as_ref(),
                        item.correlation_id,
                        order.id,
                        auth,
                    ));
                    self.auths.insert(order.id, auth.clone());
                }
            }
            let mut events = Vec::new();
            let decided = catch_unwind(AssertUnwindSafe(|| self.market.decide(item.command, now, &mut events)));
            if decided.is_err() {
                tracing::error!(stream = %self.stream, "matching panicked; stopping to rebuild from the stream");
                Counters::bump(&self.deps.counters.panics);
                ctx.stop();
                return Box::pin(fut::ready(Err(ActorError::Panicked)));
            }
            // A signed amend the market applied replaces the order's signed order before any
            // trade of the amended order is routed, so trades after the amend (its re-entry's
            // included) settle under the new signature and earlier ones kept the old. Recorded
            // only when applied: a refused amend leaves the old signature in force.
            if let (MarketCommand::Amend { order, .. }, Some(auth)) = (&item.command, &item.auth) {
                if events.iter().any(|e| matches!(e, MarketEvent::Amended { order: o, .. } if o == order)) {
                    stored_events.push(OrderAuths::event(self.deps.clock.as_ref(), item.correlation_id, *order, auth));
                    self.auths.insert(*order, auth.clone());
                }
            }
            // Routing reads the book as it was before these events.
            outbox.extend(self.outbox(&item.command, &events));
            for event in &events {
                if let Err(e) = self.market.apply(event) {
                    // Decided from this very state, so this is a bug: stop, rebuild from the stream.
                    ctx.stop();
                    let reason = e.to_string();
                    let error = ActorError::Replay { stream: self.stream.clone(), version: self.version, reason };
                    return Box::pin(fut::ready(Err(error)));
                }
                stored_events.push(NewEvent::market(
                    self.deps.clock.as_ref(),
                    item.correlation_id,
                    item.correlation_id,
                    event,
                ));
            }
            for event in &events {
                self.auths.forget_ended(event, self.market.book());
            }
            debug_assert!(!self.market.book().is_crossed(), "invariant: the book is never crossed after a command");
            if let Some(source) = item.source {
                self.consumed.advance(&source);
                sources.push(source);
            }
            replies.push(MarketReply { events, version: 0, deduplicated: false });
        }
        if !sources.is_empty() {
            stored_events.push(Consumed::event(self.deps.clock.as_ref(), correlation, &sources));
        }
        batch_commit::commit(self, stored_events, outbox, replies, |replies, version| {
            replies.iter_mut().for_each(|r| r.version = version)
        })
    }
}

impl<S: EventStore + 'static> Handler<MarketBatch> for MarketActor<S> {
    type Result = AtomicResponse<Self, Result<Vec<MarketReply>, ActorError>>;

    fn handle(&mut self, batch: MarketBatch, ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(self.handle_batch(batch.items, ctx))
    }
}

impl<S: EventStore + 'static> Handler<MarketRequest> for MarketActor<S> {
    type Result = AtomicResponse<Self, Result<MarketReply, ActorError>>;

    fn handle(&mut self, request: MarketRequest, ctx: &mut Self::Context) -> Self::Result {
        let single = self.handle_batch(vec![request], ctx).map(|replies, _, _| {
            replies.and_then(|mut r| r.pop().ok_or_else(|| ActorError::Mailbox("no reply".into())))
        });
        AtomicResponse::new(Box::pin(single))
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
