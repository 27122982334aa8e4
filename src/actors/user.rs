//! `UserActor`: one per user address, the only writer of `user:{address}`. It checks and
//! locks funds for new orders and sends them to their market through the outbox, and applies
//! the markets' outcomes (fills, releases, amend answers) that arrive on the user queue.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;
use uuid::Uuid;

use super::deps::{check_sequence, idempotency_key, save_snapshot, sha256, ActorDeps, ActorError, Counters};
use crate::domain::user::{OrderRequest, UserCommand, UserEvent, UserReject, UserState};
use crate::domain::{
    Amount, AssetId, Balance, MarketCommand, MarketEvent, MarketId, MarketSpec, OrderId, PriceTicks, QtyLots, UserId,
};
use crate::events::market_command::encode_market_command;
use crate::events::user_payload::{decode_user_event, decode_user_snapshot, encode_user_event, encode_user_snapshot};
use crate::events::{AppendRequest, EventStore, NewEvent, OutboxRecord, Snapshot, StoreError, StreamId};
use crate::queue::{market_group, MessageSource, MARKET_QUEUE};

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
}

#[derive(Message)]
#[rtype(result = "Result<UserReply, UserError>")]
pub struct UserRequest {
    pub op: UserOp,
    pub source: Option<MessageSource>,
    pub correlation_id: Uuid,
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
        let (mut state, from) = match deps.store.load_latest_snapshot(&stream).await? {
            Some(snap) => match decode_user_snapshot(&snap.state) {
                Ok(state) if state.user() == user && sha256(&state.canonical_bytes()) == snap.state_hash => {
                    (state, snap.version)
                }
                _ => {
                    Counters::bump(&deps.counters.snapshots_refused);
                    (UserState::new(user), 0)
                }
            },
            None => (UserState::new(user), 0),
        };
        let events = deps.store.read_stream(&stream, from + 1).await?;
        check_sequence(&events, from + 1)?;
        for stored in &events {
            let event = decode_user_event(&stored.event_type, stored.schema_version, stored.payload.clone())
                .map_err(|source| ActorError::Decode { stream: stream.clone(), version: stored.version, source })?;
            state.apply(&event).map_err(|e| ActorError::Replay {
                stream: stream.clone(),
                version: stored.version,
                reason: e.to_string(),
            })?;
        }
        let version = events.last().map_or(from, |e| e.version);
        Ok(UserActor { state, stream, version, since_snapshot: events.len() as u64, deps, specs })
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
        let snapshot = Snapshot {
            stream: self.stream.clone(),
            version: self.version,
            state: encode_user_snapshot(&self.state),
            state_hash: self.state_hash(),
        };
        save_snapshot(&self.deps, snapshot);
    }

    fn spec(&self, market: MarketId) -> Result<&MarketSpec, UserError> {
        self.specs.get(&market).ok_or(UserError::UnknownMarket(market))
    }

    fn decide(&self, op: &UserOp) -> Result<Vec<UserEvent>, UserError> {
        let command = match op {
            UserOp::Deposit { asset, amount } => UserCommand::Deposit { asset: *asset, amount: *amount },
            UserOp::Withdraw { asset, amount } => UserCommand::Withdraw { asset: *asset, amount: *amount },
            UserOp::Place(request) => UserCommand::Place { spec: self.spec(request.market)?, request: request.clone() },
            UserOp::Cancel { market, order } => UserCommand::Cancel { market: *market, order: *order },
            UserOp::Amend { market, order, price, qty } => {
                UserCommand::Amend { spec: self.spec(*market)?, order: *order, price: *price, qty: *qty }
            }
            UserOp::ApplyMarket { market, event } => UserCommand::ApplyMarket { spec: self.spec(*market)?, event },
            UserOp::ConfirmSettlement { asset, amount } => {
                UserCommand::ConfirmSettlement { asset: *asset, amount: *amount }
            }
        };
        self.state.decide(command).map_err(UserError::Rejected)
    }

    /// Requests to markets ride the market queue, in the user's order per market.
    fn outbox(&self, events: &[UserEvent]) -> Vec<OutboxRecord> {
        let user = self.state.user();
        let to_market = |market: MarketId, command: MarketCommand| OutboxRecord {
            destination: MARKET_QUEUE.into(),
            group: market_group(market),
            payload: encode_market_command(&command),
        };
        events
            .iter()
            .filter_map(|e| match *e {
                UserEvent::OrderPlaced { market, ref order, .. } => {
                    Some(to_market(market, MarketCommand::Place(*order)))
                }
                UserEvent::CancelRequested { market, order } => {
                    Some(to_market(market, MarketCommand::Cancel { order, user }))
                }
                UserEvent::AmendRequested { market, order, price, qty, .. } => {
                    Some(to_market(market, MarketCommand::Amend { order, user, price, qty }))
                }
                _ => None,
            })
            .collect()
    }
}

impl<S: EventStore + 'static> Actor for UserActor<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl<S: EventStore + 'static> Handler<UserRequest> for UserActor<S> {
    type Result = AtomicResponse<Self, Result<UserReply, UserError>>;

    fn handle(&mut self, msg: UserRequest, ctx: &mut Self::Context) -> Self::Result {
        let decided = match catch_unwind(AssertUnwindSafe(|| self.decide(&msg.op))) {
            Ok(decided) => decided,
            Err(_) => {
                Counters::bump(&self.deps.counters.panics);
                ctx.stop();
                return AtomicResponse::new(Box::pin(fut::ready(Err(ActorError::Panicked.into()))));
            }
        };
        let events = match decided {
            Ok(events) => events,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        if events.is_empty() {
            let reply = UserReply { events, version: self.version, deduplicated: false };
            return AtomicResponse::new(Box::pin(fut::ready(Ok(reply))));
        }
        let request = AppendRequest {
            stream: self.stream.clone(),
            expected_version: self.version,
            events: events
                .iter()
                .map(|e| {
                    let enc = encode_user_event(e);
                    NewEvent::new(
                        self.deps.clock.as_ref(),
                        msg.correlation_id,
                        msg.correlation_id,
                        enc.event_type,
                        enc.schema_version,
                        enc.payload,
                    )
                })
                .collect(),
            outbox: self.outbox(&events),
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
                    return Err(ActorError::Conflict(act.stream.clone()).into());
                }
                Err(e) => return Err(ActorError::from(e).into()),
            };
            Counters::bump(&act.deps.counters.appends);
            if stored.deduplicated {
                Counters::bump(&act.deps.counters.deduplicated);
                return Ok(UserReply { events: Vec::new(), version: act.version, deduplicated: true });
            }
            for event in &events {
                if let Err(e) = act.state.apply(event) {
                    ctx.stop();
                    let reason = e.to_string();
                    return Err(ActorError::Replay {
                        stream: act.stream.clone(),
                        version: stored.last_version,
                        reason,
                    }
                    .into());
                }
            }
            act.version = stored.last_version;
            act.deps.outbox_wake.notify_one();
            act.snapshot_if_due(events.len());
            Ok(UserReply { events, version: act.version, deduplicated: false })
        })))
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
