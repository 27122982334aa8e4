//! Actors: every market and every user is an actix actor that serializes its own messages,
//! rebuilds itself from its event stream, and commits its events together with the outbox
//! records they imply in one atomic append before it changes its memory.
//!
//! The handler shape is the same everywhere: decide with pure domain code -> append events +
//! outbox (expected version, idempotency key) -> apply -> reply. Handlers that await the
//! store return `AtomicResponse`, so no other message of the same actor interleaves. A
//! version conflict means another writer owns the stream: the actor stops and the registry
//! rebuilds it from the stream on the next message.

pub mod admin_operator;
pub mod batch_commit;
pub mod chain_watcher;
pub mod consumed;
pub mod deps;
pub mod leases;
pub mod market;
pub mod order_auths;
pub mod registry;
pub mod settlement;
pub mod settlement_wait;
pub mod singleton;
pub mod user;

pub use deps::{idempotency_key, ActorDeps, ActorError, Counters};
pub use market::{InspectMarket, MarketActor, MarketBatch, MarketReply, MarketRequest, MarketView};
pub use registry::Registry;
pub use user::{InspectUser, UserActor, UserBatch, UserError, UserOp, UserReply, UserRequest, UserView};

/// Events an actor stores for its own bookkeeping (consumed queue positions, a market's
/// signed orders) beside its domain events: views and feeds skip them.
pub fn is_bookkeeping(event_type: &str) -> bool {
    event_type == consumed::CONSUMED || event_type == order_auths::ORDER_AUTHORIZED
}
