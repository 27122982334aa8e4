//! `UserActor`: one per user address, the only writer of `user:{address}`. It checks and
//! locks funds for new orders and sends them to their market through the outbox, and applies
//! the markets' outcomes (fills, releases, amend answers) that arrive on the user queue.
//! Withdrawals go the same way to the settlement operator, whose answer (completed or failed)
//! comes back on the user queue like a deposit the chain watcher credits.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;
use uuid::Uuid;

use super::batch_commit;
use super::consumed::{ActorSnapshot, Consumed, CONSUMED};
use super::deps::{replay_stream, save_snapshot, sha256, ActorDeps, ActorError, Counters};
use crate::domain::user::{OrderRequest, UserCommand, UserEvent, UserReject, UserState};
use crate::domain::{
    AmendAuth, Amount, AssetId, Balance, DepositId, MarketCommand, MarketEvent, MarketId, MarketSpec, OrderAuth,
    OrderId, PriceTicks, QtyLots, Trade, UserId, WithdrawalAuth,
};
use crate::events::market_command::encode_market_record;
use crate::events::user_payload::{
    decode_user_event_bytes, decode_user_snapshot, encode_user_event, encode_user_snapshot,
};
use crate::events::{EventStore, NewEvent, OutboxRecord, Snapshot, StreamId};
use crate::queue::{market_group, MessageSource, MARKET_QUEUE, SETTLEMENT_QUEUE};
use crate::settlement::withdrawals::{encode_withdrawal_record, QueuedWithdrawal};

/// What a user actor can be asked to do (owned, so it can cross the mailbox).
#[derive(Clone, Debug, PartialEq)]
pub enum UserOp {
    Deposit {
        asset: AssetId,
        amount: Amount,
    },
    Withdraw {
        asset: AssetId,
        amount: Amount,
    },
    /// A deposit the chain watcher saw confirmed (idempotent by its id).
    CreditDeposit {
        deposit: DepositId,
        asset: AssetId,
        amount: Amount,
    },
    /// The user's signed withdrawal, checked by the API.
    RequestWithdrawal {
        nonce: u64,
        asset: AssetId,
        amount: Amount,
        auth: WithdrawalAuth,
    },
    CompleteWithdrawal {
        nonce: u64,
    },
    FailWithdrawal {
        nonce: u64,
        reason: String,
    },
    Place(OrderRequest),
    Cancel {
        market: MarketId,
        order: OrderId,
    },
    Amend {
        market: MarketId,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
        /// The new signed order (signed mode), checked by the API.
        signed: Option<AmendAuth>,
    },
    /// An outcome from a market's stream about one of this user's orders.
    ApplyMarket {
        market: MarketId,
        event: MarketEvent,
    },
    ConfirmSettlement {
        asset: AssetId,
        amount: Amount,
    },
    /// A trade of the user's `order` that the settlement operator gave up on.
    VoidTrade {
        market: MarketId,
        order: OrderId,
        trade: Trade,
    },
}

#[derive(Message)]
#[rtype(result = "Result<UserReply, UserError>")]
pub struct UserRequest {
    pub op: UserOp,
    pub source: Option<MessageSource>,
    pub correlation_id: Uuid,
}

/// Requests taken from the user queue in order, decided one after the other and stored in
/// one append. Each gets its own reply.
#[derive(Message)]
#[rtype(result = "Result<Vec<Result<UserReply, UserError>>, ActorError>")]
pub struct UserBatch {
    pub items: Vec<UserRequest>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UserReply {
    pub events: Vec<UserEvent>,
    pub version: u64,
    pub deduplicated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The command is refused; nothing changed.
    #[error("{0}")]
    Rejected(UserReject),
    #[error("unknown market {0}")]
    UnknownMarket(MarketId),
    #[error(transparent)]
    Actor(#[from] ActorError),
}

/// A read of the live state.
#[derive(Message)]
#[rtype(result = "UserView")]
pub struct InspectUser;

#[derive(Clone, Debug, PartialEq)]
pub struct UserView {
    pub stream: StreamId,
    pub version: u64,
    pub state: UserState,
    pub balances: Vec<(AssetId, Balance)>,
}

pub struct UserActor<S: EventStore + 'static> {
    state: UserState,
    stream: StreamId,
    version: u64,
    since_snapshot: u64,
    /// Queue records already applied, per source stream.
    consumed: Consumed,
    deps: Arc<ActorDeps<S>>,
    specs: Arc<BTreeMap<MarketId, MarketSpec>>,
}

/// Messages a user actor may hold before senders get a "mailbox full" error.
pub const MAILBOX_CAPACITY: usize = 1_024;

impl<S: EventStore + 'static> UserActor<S> {
    /// Rebuilds the user: the latest snapshot (if its state hash checks out), then every
    /// later event applied in order.
    pub async fn load(
        user: UserId,
        specs: Arc<BTreeMap<MarketId, MarketSpec>>,
        deps: Arc<ActorDeps<S>>,
    ) -> Result<UserActor<S>, ActorError> {
        let stream = StreamId::user(user);
        let fresh = |deps: &ActorDeps<S>| {
            tracing::warn!(%stream, "snapshot refused (does not decode or its hash does not match); full replay");
            Counters::bump(&deps.counters.snapshots_refused);
            (UserState::new(user), Consumed::default(), 0)
        };
        let (mut state, mut consumed, from) = match deps.store.load_latest_snapshot(&stream).await? {
            Some(snap) => match ActorSnapshot::decode(&snap.state) {
                Some(actor) if sha256(&snap.state) == snap.state_hash => match decode_user_snapshot(&actor.state) {
                    Ok(state) if state.user() == user => (state, actor.consumed, snap.version),
                    _ => fresh(&deps),
                },
                _ => fresh(&deps),
            },
            None => (UserState::new(user), Consumed::default(), 0),
        };
        let (count, version) = replay_stream(deps.store.as_ref(), &stream, from, |stored| {
            let replay =
                |reason: String| ActorError::Replay { stream: stream.clone(), version: stored.version, reason };
            if stored.event_type == CONSUMED {
                return consumed.apply(&stored.value().map_err(replay)?).map_err(replay);
            }
            let event = decode_user_event_bytes(&stored.event_type, stored.schema_version, &stored.payload)
                .map_err(|source| ActorError::Decode { stream: stream.clone(), version: stored.version, source })?;
            state.apply(&event).map_err(|e| replay(e.to_string()))
        })
        .await?;
        Ok(UserActor { state, stream, version, since_snapshot: count, consumed, deps, specs })
    }

    /// The hash of the live state, as recorded with snapshots.
    pub fn state_hash(&self) -> [u8; 32] {
        sha256(&self.state.canonical_bytes())
    }

    fn snapshot_if_due(&mut self, applied: usize) {
        self.since_snapshot += applied as u64;
        if self.deps.snapshot_every == 0 || self.since_snapshot < self.deps.snapshot_every {
            return;
        }
        self.since_snapshot = 0;
        let state = ActorSnapshot::encode(&self.consumed, encode_user_snapshot(&self.state));
        let snapshot =
            Snapshot { stream: self.stream.clone(), version: self.version, state_hash: sha256(&state), state };
        save_snapshot(&self.deps, snapshot);
    }

    fn spec(&self, market: MarketId) -> Result<&MarketSpec, UserError> {
        self.specs.get(&market).ok_or(UserError::UnknownMarket(market))
    }

    fn decide(&self, op: &UserOp) -> Result<Vec<UserEvent>, UserError> {
        let command = match op {
            UserOp::Deposit { asset, amount } => UserCommand::Deposit { asset: *asset, amount: *amount },
            UserOp::Withdraw { asset, amount } => UserCommand::Withdraw { asset: *asset, amount: *amount },
            UserOp::CreditDeposit { deposit, asset, amount } => {
                UserCommand::CreditDeposit { deposit: *deposit, asset: *asset, amount: *amount }
            }
            UserOp::RequestWithdrawal { nonce, asset, amount, auth } => {
                UserCommand::RequestWithdrawal { nonce: *nonce, asset: *asset, amount: *amount, auth: auth.clone() }
            }
            UserOp::CompleteWithdrawal { nonce } => UserCommand::CompleteWithdrawal { nonce: *nonce },
            UserOp::FailWithdrawal { nonce, reason } => {
                UserCommand::FailWithdrawal { nonce: *nonce, reason: reason.clone() }
            }
            UserOp::Place(request) => UserCommand::Place { spec: self.spec(request.market)?, request: request.clone() },
            UserOp::Cancel { market, order } => UserCommand::Cancel { market: *market, order: *order },
            UserOp::Amend { market, order, price, qty, signed } => UserCommand::Amend {
                spec: self.spec(*market)?,
                order: *order,
                price: *price,
                qty: *qty,
                signed: signed.clone(),
            },
            UserOp::ApplyMarket { market, event } => UserCommand::ApplyMarket { spec: self.spec(*market)?, event },
            UserOp::ConfirmSettlement { asset, amount } => {
                UserCommand::ConfirmSettlement { asset: *asset, amount: *amount }
            }
            UserOp::VoidTrade { market, order, trade } => {
                UserCommand::VoidTrade { spec: self.spec(*market)?, order: *order, trade }
            }
        };
        self.state.decide(command).map_err(UserError::Rejected)
    }

    /// Requests to markets ride the market queue, in the user's order per market.
    fn outbox(&self, events: &[UserEvent]) -> Vec<OutboxRecord> {
        let user = self.state.user();
        let to_market = |market: MarketId, command: MarketCommand, auth: Option<&OrderAuth>| OutboxRecord {
            destination: MARKET_QUEUE.into(),
            group: market_group(market),
            payload: encode_market_record(&command, auth),
        };
        events
            .iter()
            .filter_map(|e| match *e {
                UserEvent::OrderPlaced { market, ref order, ref auth, .. } => {
                    Some(to_market(market, MarketCommand::Place(*order), auth.as_ref()))
                }
                UserEvent::CancelRequested { market, order } => {
                    Some(to_market(market, MarketCommand::Cancel { order, user }, None))
                }
                UserEvent::AmendRequested { market, order, price, qty, ref signed, .. } => Some(to_market(
                    market,
                    MarketCommand::Amend { order, user, price, qty },
                    signed.as_ref().map(|s| &s.auth),
                )),
                // The operator wallet executes it on-chain, at its own nonces.
                UserEvent::WithdrawalRequested { nonce, asset, amount, ref auth } => {
                    let w = QueuedWithdrawal { user, nonce, asset, amount, auth: auth.clone() };
                    Some(OutboxRecord {
                        destination: SETTLEMENT_QUEUE.into(),
                        group: self.deps.settlement_group.clone(),
                        payload: encode_withdrawal_record(&w),
                    })
                }
                _ => None,
            })
            .collect()
    }
}

impl<S: EventStore + 'static> batch_commit::Batching<S> for UserActor<S> {
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

impl<S: EventStore + 'static> Actor for UserActor<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

type BatchFuture<S> = ResponseActFuture<UserActor<S>, Result<Vec<Result<UserReply, UserError>>, ActorError>>;

impl<S: EventStore + 'static> UserActor<S> {
    /// Decides each request in turn, folding its events in at once so the next one sees
    /// them, then stores everything in one append and only then replies; a refused request
    /// changes nothing and gets its own error. Memory runs ahead of the store only while the
    /// actor is held (`AtomicResponse`); a failed append stops the actor, which is rebuilt
    /// from its stream (see `MarketActor::handle_batch`).
    fn handle_batch(&mut self, items: Vec<UserRequest>, ctx: &mut Context<Self>) -> BatchFuture<S> {
        let correlation = items.first().map_or_else(Uuid::now_v7, |i| i.correlation_id);
        let mut stored_events = Vec::new();
        let mut outbox = Vec::new();
        let mut replies: Vec<Result<UserReply, UserError>> = Vec::with_capacity(items.len());
        let mut sources = Vec::new();
        for item in items {
            if item.source.as_ref().is_some_and(|s| !self.consumed.is_new(s)) {
                Counters::bump(&self.deps.counters.deduplicated);
                replies.push(Ok(UserReply { events: Vec::new(), version: self.version, deduplicated: true }));
                continue;
            }
            let decided = match catch_unwind(AssertUnwindSafe(|| self.decide(&item.op))) {
                Ok(decided) => decided,
                Err(_) => {
                    tracing::error!(stream = %self.stream, "user handler panicked; stopping to rebuild from the stream");
                    Counters::bump(&self.deps.counters.panics);
                    ctx.stop();
                    return Box::pin(fut::ready(Err(ActorError::Panicked)));
                }
            };
            if let Some(source) = item.source {
                // A queued record is consumed whether it took effect or was refused: retrying
                // it would be refused again.
                self.consumed.advance(&source);
                sources.push(source);
            }
            let events = match decided {
                Ok(events) => events,
                Err(e) => {
                    replies.push(Err(e));
                    continue;
                }
            };
            outbox.extend(self.outbox(&events));
            for event in &events {
                if let Err(e) = self.state.apply(event) {
                    ctx.stop();
                    let reason = e.to_string();
                    let error = ActorError::Replay { stream: self.stream.clone(), version: self.version, reason };
                    return Box::pin(fut::ready(Err(error)));
                }
                let enc = encode_user_event(event);
                stored_events.push(NewEvent::new(
                    self.deps.clock.as_ref(),
                    item.correlation_id,
                    item.correlation_id,
                    enc.event_type,
                    enc.schema_version,
                    enc.payload,
                ));
            }
            replies.push(Ok(UserReply { events, version: 0, deduplicated: false }));
        }
        if !sources.is_empty() {
            stored_events.push(Consumed::event(self.deps.clock.as_ref(), correlation, &sources));
        }
        batch_commit::commit(self, stored_events, outbox, replies, |replies, version| {
            replies.iter_mut().flatten().for_each(|r| r.version = version)
        })
    }
}

impl<S: EventStore + 'static> Handler<UserBatch> for UserActor<S> {
    type Result = AtomicResponse<Self, Result<Vec<Result<UserReply, UserError>>, ActorError>>;

    fn handle(&mut self, batch: UserBatch, ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(self.handle_batch(batch.items, ctx))
    }
}

impl<S: EventStore + 'static> Handler<UserRequest> for UserActor<S> {
    type Result = AtomicResponse<Self, Result<UserReply, UserError>>;

    fn handle(&mut self, request: UserRequest, ctx: &mut Self::Context) -> Self::Result {
        let single = self.handle_batch(vec![request], ctx).map(|replies, _, _| match replies {
            Ok(mut replies) => replies.pop().unwrap_or_else(|| Err(ActorError::Mailbox("no reply".into()).into())),
            Err(e) => Err(e.into()),
        });
        AtomicResponse::new(Box::pin(single))
    }
}

impl<S: EventStore + 'static> Handler<InspectUser> for UserActor<S> {
    type Result = MessageResult<InspectUser>;

    fn handle(&mut self, _: InspectUser, _: &mut Self::Context) -> Self::Result {
        MessageResult(UserView {
            stream: self.stream.clone(),
            version: self.version,
            balances: self.state.account().balances().collect(),
            state: self.state.clone(),
        })
    }
}
