//! CQRS read models. Each view is a pure fold `(view, event) -> view` over decoded domain
//! events (no I/O, no clock: event times come from the envelope), serialized as JSON into a
//! `ViewStore` together with a per-(projection, stream) checkpoint. The `Projector` is the
//! only part that touches storage.
//!
//! Views are read models, not domain types: they are serde types shaped for readers (amounts
//! as decimal strings, prices in ticks, sizes in lots) and promise nothing to the domain.
//! Every view that grows with history keeps a bounded tail (see each module's limit), so a
//! view's JSON stays small enough to rewrite on every catch-up.

pub mod balances;
pub mod candles;
pub mod depth;
pub mod projector;
pub mod trade_tape;
pub mod user_fills;
pub mod user_orders;
pub mod view_store;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::Side;

pub use balances::BalancesView;
pub use candles::{Candle, CandlesView};
pub use depth::{DepthLevel, DepthView};
pub use projector::{diff_views, CatchUpReport, ProjectionError, Projector, ViewDiff};
pub use trade_tape::{TapeEntry, TradeTapeView};
pub use user_fills::{FillRow, UserFillsView};
pub use user_orders::{OrderRow, UserOrdersView};
pub use view_store::{Checkpoint, CheckpointMove, MemoryViewStore, StoredView, ViewBatch, ViewStore, ViewStoreError};

/// What a fold may know about an event besides its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventMeta {
    pub version: u64,
    pub occurred_at: DateTime<Utc>,
}

/// An event that does not fit the view it is folded into: the stream and the view disagree
/// (a corrupt stream, or a view saved by a buggy build). The view must be rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FoldError(pub String);

/// One read model: its kind (the `views.kind` column and the checkpoint's projection name),
/// the key it is kept under, and its fold.
pub trait View: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug {
    const KIND: &'static str;
    /// What the view is about: a market or a user.
    type Key: Copy + std::fmt::Display;
    /// The decoded events it folds.
    type Event;

    /// The view before any event.
    fn empty(key: Self::Key) -> Self;

    /// Folds one event in. On error the view is left in an unspecified state and must not
    /// be saved.
    fn apply(&mut self, meta: EventMeta, event: &Self::Event) -> Result<(), FoldError>;
}

/// Every view kind, in the order the projector saves them.
pub const VIEW_KINDS: &[&str] = &[
    DepthView::KIND,
    TradeTapeView::KIND,
    CandlesView::KIND,
    UserOrdersView::KIND,
    UserFillsView::KIND,
    BalancesView::KIND,
];

/// A side as views write it (`"buy"`, `"sell"`); the domain's `Side` has no serde.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewSide {
    Buy,
    Sell,
}

impl From<Side> for ViewSide {
    fn from(side: Side) -> ViewSide {
        match side {
            Side::Buy => ViewSide::Buy,
            Side::Sell => ViewSide::Sell,
        }
    }
}
