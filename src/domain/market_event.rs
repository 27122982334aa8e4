//! What a market decides. A market's state is a fold of these events and nothing else:
//! `Market::decide` produces them without mutating, `Market::apply` folds them in, so a
//! replayed market equals the live one by construction.

use super::ids::{OrderId, TradeId, UserId};
use super::order::{NewOrder, Side, StpMode};
use super::units::{Amount, PriceTicks, QtyLots, TimestampMs};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarketEvent {
    /// The order passed the market's checks and will be matched.
    Accepted(NewOrder),
    /// The order's remainder now rests on the book (joining the back of its price level).
    Rested {
        order: OrderId,
        user: UserId,
        side: Side,
        price: PriceTicks,
        qty: QtyLots,
        expiry: Option<TimestampMs>,
        /// Kept so that an amend re-entering the order applies the same rules.
        post_only: bool,
        stp: StpMode,
    },
    Traded(Trade),
    /// The order has no quantity left: every lot traded.
    Filled {
        order: OrderId,
    },
    /// The order's remainder left without trading, by its own terms.
    Expired {
        order: OrderId,
        remaining: QtyLots,
        reason: ExpireReason,
    },
    /// The order's remainder was cancelled.
    Cancelled {
        order: OrderId,
        remaining: QtyLots,
        reason: CancelReason,
    },
    /// A resting order changed. `keeps_priority` is true exactly when only the quantity went
    /// down; otherwise the order was taken off the book and is re-entered by the events that
    /// follow (it may trade as a taker, rest at the back of its new level, or expire).
    Amended {
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
        keeps_priority: bool,
    },
    /// The command changed nothing.
    Rejected {
        order: OrderId,
        reason: RejectReason,
    },
    Halted,
    Resumed,
}

/// One execution between a resting maker and an incoming taker, at the maker's price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    pub id: TradeId,
    pub maker_order: OrderId,
    pub maker_user: UserId,
    pub taker_order: OrderId,
    pub taker_user: UserId,
    pub taker_side: Side,
    pub price: PriceTicks,
    pub qty: QtyLots,
    /// Base units that change hands (seller to buyer).
    pub base_amount: Amount,
    /// Quote units that change hands before fees (buyer to seller).
    pub quote_amount: Amount,
    /// Fees, in the quote asset, at the maker and taker rates, each rounded down.
    pub maker_fee: Amount,
    pub taker_fee: Amount,
}

impl Trade {
    pub fn buyer(&self) -> (OrderId, UserId) {
        match self.taker_side {
            Side::Buy => (self.taker_order, self.taker_user),
            Side::Sell => (self.maker_order, self.maker_user),
        }
    }

    pub fn seller(&self) -> (OrderId, UserId) {
        match self.taker_side {
            Side::Sell => (self.taker_order, self.taker_user),
            Side::Buy => (self.maker_order, self.maker_user),
        }
    }

    /// Fee paid by the buyer and by the seller, in the quote asset.
    pub fn buyer_fee(&self) -> Amount {
        if self.taker_side == Side::Buy {
            self.taker_fee
        } else {
            self.maker_fee
        }
    }

    pub fn seller_fee(&self) -> Amount {
        if self.taker_side == Side::Sell {
            self.taker_fee
        } else {
            self.maker_fee
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpireReason {
    /// The unfilled part of an IOC limit order.
    ImmediateOrCancel,
    /// The unfilled part of a market order (no liquidity left within its worst price).
    MarketRemainder,
    /// A good-till-date order reached its expiry.
    GoodTillDate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The owner asked.
    User,
    /// Self-trade prevention removed it; no trade happened.
    SelfTradePrevention,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    PostOnlyWouldCross,
    FokCannotFill,
    /// The price is not a positive whole number of ticks.
    OffGridPrice,
    /// The size is not a positive whole number of lots.
    OffGridSize,
    QtyBelowMin,
    QtyAboveMax,
    BelowMinNotional,
    /// Price times quantity does not fit the amount type.
    NotionalOverflow,
    MarketHalted,
    UnknownOrder,
    NotOwner,
    DuplicateOrderId,
    /// A GTD order whose expiry is not after the command's time.
    AlreadyExpired,
    /// Post-only needs a limit order that may rest (GTC or GTD).
    PostOnlyNeedsRestingLimit,
    /// An amend must keep a positive quantity; cancel instead.
    AmendToZero,
    /// An amend that changes nothing.
    AmendNoChange,
}

impl RejectReason {
    /// A stable snake_case code for wire formats and logs.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::PostOnlyWouldCross => "post_only_would_cross",
            RejectReason::FokCannotFill => "fok_cannot_fill",
            RejectReason::OffGridPrice => "off_grid_price",
            RejectReason::OffGridSize => "off_grid_size",
            RejectReason::QtyBelowMin => "qty_below_min",
            RejectReason::QtyAboveMax => "qty_above_max",
            RejectReason::BelowMinNotional => "below_min_notional",
            RejectReason::NotionalOverflow => "notional_overflow",
            RejectReason::MarketHalted => "market_halted",
            RejectReason::UnknownOrder => "unknown_order",
            RejectReason::NotOwner => "not_owner",
            RejectReason::DuplicateOrderId => "duplicate_order_id",
            RejectReason::AlreadyExpired => "already_expired",
            RejectReason::PostOnlyNeedsRestingLimit => "post_only_needs_resting_limit",
            RejectReason::AmendToZero => "amend_to_zero",
            RejectReason::AmendNoChange => "amend_no_change",
        }
    }
}

impl ExpireReason {
    pub fn code(self) -> &'static str {
        match self {
            ExpireReason::ImmediateOrCancel => "ioc",
            ExpireReason::MarketRemainder => "market",
            ExpireReason::GoodTillDate => "gtd",
        }
    }
}

impl CancelReason {
    pub fn code(self) -> &'static str {
        match self {
            CancelReason::User => "user",
            CancelReason::SelfTradePrevention => "stp",
        }
    }
}

/// Every reason of each kind, so a stable code maps back to its reason in one place.
macro_rules! reason_codes {
    ($($t:ty => [$($v:ident),* $(,)?]);* $(;)?) => {$(
        impl $t {
            pub const ALL: &'static [$t] = &[$(<$t>::$v),*];

            /// The reason whose `code()` is `code`.
            pub fn from_code(code: &str) -> Option<$t> {
                Self::ALL.iter().copied().find(|r| r.code() == code)
            }
        }
    )*};
}

reason_codes! {
    ExpireReason => [ImmediateOrCancel, MarketRemainder, GoodTillDate];
    CancelReason => [User, SelfTradePrevention];
    RejectReason => [
        PostOnlyWouldCross, FokCannotFill, OffGridPrice, OffGridSize, QtyBelowMin, QtyAboveMax, BelowMinNotional,
        NotionalOverflow, MarketHalted, UnknownOrder, NotOwner, DuplicateOrderId, AlreadyExpired,
        PostOnlyNeedsRestingLimit, AmendToZero, AmendNoChange,
    ];
}

#[cfg(test)]
mod reason_code_tests {
    use super::*;

    #[test]
    fn every_code_maps_back_to_its_reason() {
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::from_code(r.code()), Some(*r));
        }
        for r in ExpireReason::ALL {
            assert_eq!(ExpireReason::from_code(r.code()), Some(*r));
        }
        for r in CancelReason::ALL {
            assert_eq!(CancelReason::from_code(r.code()), Some(*r));
        }
        assert_eq!(RejectReason::from_code("nope"), None);
    }
}
