//! Live feeds for the WebSocket channels and the fresh reads of REST: per market (`l2`,
//! `trades`, `candles`, `ticker`), per user (`orders`, `fills`, `balances`) and the
//! `heartbeat`. Each follows its event stream from the view store's last checkpoint onwards
//! (`follower.rs`), so it is as fresh as the last commit and never touches an actor.

pub mod checksum;
pub mod follower;
pub mod heartbeat;
pub mod market;
pub mod subscribers;
pub mod user;

use crate::events::{StoreError, StreamId};
use crate::projections::ViewStoreError;

pub use heartbeat::HeartbeatFeed;
pub use market::{MarketFeed, MarketTopic};
pub use subscribers::{Inlet, Outlet, Refused, Subscribers};
pub use user::{UserFeed, UserFeeds, UserTopic};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("view store: {0}")]
    ViewStore(#[from] ViewStoreError),
    #[error("stored view {0}")]
    View(String),
    #[error("{stream}: expected version {expected}, read {found}")]
    Gap { stream: StreamId, expected: u64, found: u64 },
    #[error("{stream} v{version} does not decode: {reason}")]
    Decode { stream: StreamId, version: u64, reason: String },
    #[error("{stream} v{version} does not fold: {reason}")]
    Fold { stream: StreamId, version: u64, reason: String },
}
