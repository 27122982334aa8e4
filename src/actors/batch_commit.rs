//! The last step of a batching actor's handler, the same for markets and users: store the
//! batch's events and outbox records in one append at the actor's version, then adopt the new
//! version (snapshotting when due) and stamp it on the replies, or, if the append failed, stop
//! the actor. Its memory folded the batch before the append (see `MarketActor::handle_batch`),
//! so a failed append leaves memory ahead of the store: it is thrown away and the actor is
//! rebuilt from its stream on its next message.

use std::sync::Arc;

use actix::prelude::*;

use super::deps::{settle_append, ActorDeps, ActorError};
use crate::events::{AppendRequest, EventStore, NewEvent, OutboxRecord, StreamId};

/// What [`commit`] needs of an actor.
pub trait Batching<S: EventStore + 'static>: Actor<Context = Context<Self>> {
    fn deps(&self) -> &Arc<ActorDeps<S>>;
    fn stream(&self) -> &StreamId;
    /// The stream's version the actor's state is at (the append's expected version).
    fn version(&self) -> u64;
    /// The append stored `applied` events and the stream is now at `version`.
    fn stored(&mut self, version: u64, applied: usize);
}

/// Stores `events` and `outbox` (nothing to store: answers at once), then hands `replies`
/// back with the stream's version stamped on them by `stamp`. Holds the actor until the
/// append resolves (the caller returns this as an `AtomicResponse`).
pub fn commit<S, A, R>(
    act: &mut A,
    events: Vec<NewEvent>,
    outbox: Vec<OutboxRecord>,
    mut replies: R,
    stamp: fn(&mut R, u64),
) -> ResponseActFuture<A, Result<R, ActorError>>
where
    S: EventStore + 'static,
    A: Batching<S>,
    R: 'static,
{
    if events.is_empty() {
        stamp(&mut replies, act.version());
        return Box::pin(fut::ready(Ok(replies)));
    }
    let applied = events.len();
    let request = AppendRequest {
        stream: act.stream().clone(),
        expected_version: act.version(),
        events,
        outbox,
        idempotency_key: None,
    };
    let store = act.deps().store.clone();
    let append = async move { store.append(request).await };
    Box::pin(append.into_actor(act).map(move |result, act, ctx| {
        let stored = match settle_append(act.deps(), act.stream(), result) {
            Ok(stored) => stored,
            Err(e) => {
                ctx.stop();
                return Err(e);
            }
        };
        act.stored(stored.last_version, applied);
        stamp(&mut replies, stored.last_version);
        Ok(replies)
    }))
}
