//! Orders as the matching core receives them: already on the market's grid, already
//! authenticated and funded. What an order may ask for is closed here; what a market does
//! with it is in `matching.rs`.

use super::ids::{OrderId, UserId};
use super::units::{PriceTicks, QtyLots, TimestampMs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// Whether a taker on this side with limit `limit` may trade against a maker at `maker`.
    pub fn crosses(self, limit: PriceTicks, maker: PriceTicks) -> bool {
        match self {
            Side::Buy => maker <= limit,
            Side::Sell => maker >= limit,
        }
    }
}

/// How long an order may rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeInForce {
    /// Good till cancelled.
    Gtc,
    /// Immediate or cancel: trade what crosses now, expire the rest.
    Ioc,
    /// Fill or kill: trade the whole quantity now or reject without touching the book.
    Fok,
    /// Good till date: rests until the given time, then expires. The time is an input; the
    /// order expires on the first command whose `now` is at or past it.
    Gtd(TimestampMs),
}

/// Self-trade prevention, chosen by the taker, applied when the taker would trade with a
/// resting order of the same user. A prevented self-trade is a cancel, never a trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StpMode {
    /// Cancel the resting order and keep matching the taker.
    #[default]
    ExpireMaker,
    /// Cancel the taker's remainder; the resting order stays.
    ExpireTaker,
    /// Cancel both.
    ExpireBoth,
}

/// The kind of an order and its price bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderType {
    Limit {
        price: PriceTicks,
    },
    /// A market order trades immediately and expires its remainder (IOC semantics). The
    /// optional worst price bounds slippage: it never trades beyond it.
    Market {
        worst_price: Option<PriceTicks>,
    },
}

impl OrderType {
    /// The worst price this order may trade at, if any.
    pub fn price_bound(self) -> Option<PriceTicks> {
        match self {
            OrderType::Limit { price } => Some(price),
            OrderType::Market { worst_price } => worst_price,
        }
    }
}

/// The user's half of the 2-of-2 signing: their signed order (EIP-712 message and signature)
/// as the API verified it, in its wire text. Matching and ledgers never look inside; it rides
/// with the order to the market and from there, with each trade, to settlement, which puts it
/// on-chain where the contract checks it again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderAuth(pub std::sync::Arc<str>);

impl OrderAuth {
    pub fn new(text: impl Into<std::sync::Arc<str>>) -> OrderAuth {
        OrderAuth(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signed amend's new authorisation: the user's freshly signed order for the amended terms
/// (same market, side and trader; the new price and open quantity) under a nonce of its own,
/// which the user's actor consumes like a placement's. Trades after the amend settle under it,
/// earlier ones under the order's previous signature, so each signed order on-chain is filled
/// at most to the quantity it names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AmendAuth {
    pub nonce: u64,
    pub auth: OrderAuth,
}

/// An order arriving at a market.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NewOrder {
    pub id: OrderId,
    pub user: UserId,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: QtyLots,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub stp: StpMode,
}

impl NewOrder {
    /// Whether the order may rest on the book after matching.
    pub fn may_rest(&self) -> bool {
        matches!(self.order_type, OrderType::Limit { .. }) && matches!(self.tif, TimeInForce::Gtc | TimeInForce::Gtd(_))
    }

    pub fn expiry(&self) -> Option<TimestampMs> {
        match self.tif {
            TimeInForce::Gtd(at) => Some(at),
            _ => None,
        }
    }
}
