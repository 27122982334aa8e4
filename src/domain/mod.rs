//! The pure core: markets, orders, the book, matching and the balance ledger. No I/O, no
//! clock, no randomness, no serde: commands in, events out. Everything here is deterministic
//! so that replaying the same inputs always yields the same events.

pub mod ids;
pub mod ledger;
pub mod market;
pub mod market_event;
pub mod matching;
pub mod order;
pub mod order_book;
pub mod transfers;
pub mod units;
pub mod user;

pub use ids::{AssetId, ClientOrderId, IdError, MarketId, OrderId, TradeId, UserId};
pub use ledger::{Account, Balance, FeeAccount, LedgerError, OrderLock};
pub use market::{MarketSpec, MarketStatus, SpecError};
pub use market_event::{CancelReason, ExpireReason, MarketEvent, RejectReason, Trade};
pub use matching::{ApplyError, Market, MarketCommand};
pub use order::{AmendAuth, NewOrder, OrderAuth, OrderType, Side, StpMode, TimeInForce};
pub use order_book::{BookError, LevelSummary, OrderBook, RestingOrder};
pub use transfers::{DepositId, WithdrawalAuth};
pub use units::{Amount, Bps, PriceTicks, QtyLots, TimestampMs};
pub use user::{
    HeldMarket, NonceWindow, OpenOrder, OrderRequest, OrderStatus, PendingRequest, ReleaseReason, UserApplyError,
    UserCommand, UserEvent, UserReject, UserState, UserStateParts, CLIENT_ID_HISTORY, MAX_OPEN_ORDERS, NONCE_WINDOW,
};
