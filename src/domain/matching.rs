//! A market: its spec, status and book, driven by commands and changed only by events.
//!
//! `decide` reads the state and returns the events a command produces; `apply` folds one event
//! into the state. Deciding never mutates, so a command that is rejected, or whose events fail
//! to be stored, leaves the market exactly as it was; replaying stored events through `apply`
//! rebuilds the live state bit for bit.

use std::ops::ControlFlow;

use super::ids::{OrderId, TradeId, UserId};
use super::market::{MarketSpec, MarketStatus};
use super::market_event::{CancelReason, ExpireReason, MarketEvent, RejectReason, Trade};
use super::order::{NewOrder, OrderType, Side, StpMode, TimeInForce};
use super::order_book::{BookError, OrderBook, RestingOrder};
use super::units::{PriceTicks, QtyLots, TimestampMs};

/// What a market can be asked to do. Every command carries the time it is decided at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketCommand {
    Place(NewOrder),
    Cancel {
        order: OrderId,
        user: UserId,
    },
    /// Change a resting order's price and/or remaining quantity.
    Amend {
        order: OrderId,
        user: UserId,
        price: PriceTicks,
        qty: QtyLots,
    },
    /// Expire every good-till-date order that is due; nothing else.
    ExpireDue,
    Halt,
    Resume,
}

/// An event that does not fit the state it is applied to: a corrupt or reordered stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("book: {0}")]
    Book(#[from] BookError),
    #[error("trade {got} out of sequence, expected {expected}")]
    TradeSequence { expected: TradeId, got: TradeId },
    #[error("the restored book is crossed")]
    Crossed,
}

#[derive(Clone, Debug)]
pub struct Market {
    spec: MarketSpec,
    status: MarketStatus,
    book: OrderBook,
    next_trade: TradeId,
}

impl Market {
    pub fn new(spec: MarketSpec) -> Market {
        Market { spec, status: MarketStatus::Open, book: OrderBook::new(), next_trade: TradeId(1) }
    }

    pub fn spec(&self) -> &MarketSpec {
        &self.spec
    }

    pub fn status(&self) -> MarketStatus {
        self.status
    }

    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    pub fn next_trade_id(&self) -> TradeId {
        self.next_trade
    }

    /// Rebuilds a market from a snapshot's parts: its status, the next trade id, and the
    /// resting orders in priority order (each side best first, earliest first in a level).
    /// Inserting in that order recreates every level's queue exactly.
    pub fn restore(
        spec: MarketSpec,
        status: MarketStatus,
        next_trade: TradeId,
        orders: impl IntoIterator<Item = RestingOrder>,
    ) -> Result<Market, ApplyError> {
        let mut market = Market::new(spec);
        market.status = status;
        market.next_trade = next_trade;
        for order in orders {
            market.book.insert(order)?;
        }
        if market.book.is_crossed() {
            return Err(ApplyError::Crossed);
        }
        Ok(market)
    }

    /// Decides and applies a command in one step; for callers that hold the market alone
    /// (the offline matcher, benchmarks, tests). Appends the events to `out`.
    pub fn execute(&mut self, command: MarketCommand, now: TimestampMs, out: &mut Vec<MarketEvent>) {
        let start = out.len();
        self.decide(command, now, out);
        for event in &out[start..] {
            // Events that `decide` just produced from this very state always fit it.
            if let Err(e) = self.apply(event) {
                panic!("invariant: a decided event applies to the state it came from: {e}");
            }
        }
        debug_assert!(!self.book.is_crossed(), "invariant: the book is never crossed after a command");
    }

    /// The events `command` produces at time `now`, appended to `out`. Due good-till-date
    /// orders expire first, whatever the command.
    pub fn decide(&self, command: MarketCommand, now: TimestampMs, out: &mut Vec<MarketEvent>) {
        // Most books hold no good-till-date order: skip even the empty range search then.
        if self.book.has_expiries() {
            for order in self.book.due_expiries(now) {
                let remaining = self.book.get(order).map_or(QtyLots::ZERO, |o| o.qty);
                out.push(MarketEvent::Expired { order, remaining, reason: ExpireReason::GoodTillDate });
            }
        }
        match command {
            MarketCommand::Place(order) => self.decide_place(order, now, out),
            MarketCommand::Cancel { order, user } => match self.owned(order, user, now) {
                Ok(resting) => {
                    out.push(MarketEvent::Cancelled { order, remaining: resting.qty, reason: CancelReason::User })
                }
                Err(reason) => out.push(MarketEvent::Rejected { order, reason }),
            },
            MarketCommand::Amend { order, user, price, qty } => self.decide_amend(order, user, price, qty, now, out),
            MarketCommand::ExpireDue => {}
            MarketCommand::Halt => {
                if self.status == MarketStatus::Open {
                    out.push(MarketEvent::Halted);
                }
            }
            MarketCommand::Resume => {
                if self.status == MarketStatus::Halted {
                    out.push(MarketEvent::Resumed);
                }
            }
        }
    }

    /// Folds one event into the state.
    // Inlined into `execute`'s loop: an amend's two events then reach `lift` and `insert`
    // without the event's fields going through a by-value `RestingOrder` on the stack (~2%
    // on mix (a)), as do `check_taker` and `finish_taker`, which nearly always do little.
    #[inline]
    pub fn apply(&mut self, event: &MarketEvent) -> Result<(), ApplyError> {
        match *event {
            MarketEvent::Accepted(_) | MarketEvent::Rejected { .. } => {}
            // A filled maker left the book with its last trade; a filled amended order was
            // lifted off it by `Amended` and now ends.
            MarketEvent::Filled { order } => self.book.forget_lifted(order),
            MarketEvent::Rested { order, user, side, price, qty, expiry, post_only, stp } => {
                self.book.insert(RestingOrder { id: order, user, side, price, qty, expiry, post_only, stp })?;
            }
            MarketEvent::Traded(ref trade) => {
                if trade.id != self.next_trade {
                    return Err(ApplyError::TradeSequence { expected: self.next_trade, got: trade.id });
                }
                self.book.reduce(trade.maker_order, trade.qty)?;
                self.next_trade = TradeId(trade.id.0 + 1);
            }
            MarketEvent::Expired { order, .. } | MarketEvent::Cancelled { order, .. } => {
                // The order may be an incoming one that never rested, or an amended one that
                // was lifted off the book.
                self.book.discard(order);
            }
            MarketEvent::Amended { order, qty, keeps_priority, .. } => {
                if keeps_priority {
                    let resting = self.book.get(order).ok_or(BookError::UnknownOrder(order))?;
                    if qty >= resting.qty || qty.is_zero() {
                        return Err(BookError::ReduceBeyondQty(order, resting.qty, qty).into());
                    }
                    self.book.reduce(order, resting.qty - qty)?;
                } else {
                    // Off the book until the events that follow re-enter it: `Rested` puts
                    // it back into the same slot, `Filled` or `Cancelled` end it.
                    self.book.lift(order)?;
                }
            }
            MarketEvent::Halted => self.status = MarketStatus::Halted,
            MarketEvent::Resumed => self.status = MarketStatus::Open,
        }
        Ok(())
    }

    /// The live resting order `order` if `user` owns it. A GTD order that is due has just
    /// expired in this very command, so it is unknown: cancelling or amending it would end
    /// it a second time or bring it back to life.
    fn owned(&self, order: OrderId, user: UserId, now: TimestampMs) -> Result<RestingOrder, RejectReason> {
        let resting = self.book.get(order).ok_or(RejectReason::UnknownOrder)?;
        if resting.expiry.is_some_and(|at| at <= now) {
            return Err(RejectReason::UnknownOrder);
        }
        if resting.user != user {
            return Err(RejectReason::NotOwner);
        }
        Ok(resting)
    }

    /// Checks that hold for any order at this market: status, grid, size, notional.
    fn check_order(&self, order: &NewOrder, now: TimestampMs) -> Result<(), RejectReason> {
        if self.status == MarketStatus::Halted {
            return Err(RejectReason::MarketHalted);
        }
        if self.book.contains(order.id) {
            return Err(RejectReason::DuplicateOrderId);
        }
        self.check_size(order.order_type.price_bound(), order.qty)?;
        if order.post_only && !order.may_rest() {
            return Err(RejectReason::PostOnlyNeedsRestingLimit);
        }
        if let Some(at) = order.expiry() {
            if at <= now {
                return Err(RejectReason::AlreadyExpired);
            }
        }
        Ok(())
    }

    /// Size bounds, and for a priced order its grid and notional. An unbounded market order
    /// has no notional to check before it trades.
    fn check_size(&self, price: Option<PriceTicks>, qty: QtyLots) -> Result<(), RejectReason> {
        if qty.is_zero() {
            return Err(RejectReason::OffGridSize);
        }
        if qty < self.spec.min_qty {
            return Err(RejectReason::QtyBelowMin);
        }
        if qty > self.spec.max_qty {
            return Err(RejectReason::QtyAboveMax);
        }
        if let Some(price) = price {
            if price.0 == 0 {
                return Err(RejectReason::OffGridPrice);
            }
            let notional = self.spec.notional(price, qty).ok_or(RejectReason::NotionalOverflow)?;
            if notional < self.spec.min_notional {
                return Err(RejectReason::BelowMinNotional);
            }
        }
        Ok(())
    }

    fn decide_place(&self, order: NewOrder, now: TimestampMs, out: &mut Vec<MarketEvent>) {
        if let Err(reason) = self.check_order(&order, now) {
            out.push(MarketEvent::Rejected { order: order.id, reason });
            return;
        }
        let taker = Taker {
            id: order.id,
            user: order.user,
            side: order.side,
            limit: order.order_type.price_bound(),
            qty: order.qty,
            stp: order.stp,
            post_only: order.post_only,
            fill_or_kill: order.tif == TimeInForce::Fok,
        };
        if let Err(reason) = self.check_taker(&taker, now) {
            out.push(MarketEvent::Rejected { order: order.id, reason });
            return;
        }
        out.push(MarketEvent::Accepted(order));
        let remaining = self.match_taker(&taker, now, out);
        self.finish_taker(&taker, remaining, order.may_rest(), order.expiry(), expire_reason(&order), out);
    }

    fn decide_amend(
        &self,
        order: OrderId,
        user: UserId,
        price: PriceTicks,
        qty: QtyLots,
        now: TimestampMs,
        out: &mut Vec<MarketEvent>,
    ) {
        let reject = |out: &mut Vec<MarketEvent>, reason| out.push(MarketEvent::Rejected { order, reason });
        if self.status == MarketStatus::Halted {
            return reject(out, RejectReason::MarketHalted);
        }
        let resting = match self.owned(order, user, now) {
            Ok(resting) => resting,
            Err(reason) => return reject(out, reason),
        };
        if qty.is_zero() {
            return reject(out, RejectReason::AmendToZero);
        }
        if let Err(reason) = self.check_size(Some(price), qty) {
            return reject(out, reason);
        }
        if price == resting.price && qty == resting.qty {
            return reject(out, RejectReason::AmendNoChange);
        }
        if price == resting.price && qty < resting.qty {
            out.push(MarketEvent::Amended { order, price, qty, keeps_priority: true });
            return;
        }
        // Anything else is a new arrival at the new terms: it may cross, so it takes first.
        let taker = Taker {
            id: order,
            user,
            side: resting.side,
            limit: Some(price),
            qty,
            stp: resting.stp,
            post_only: resting.post_only,
            fill_or_kill: false,
        };
        if let Err(reason) = self.check_taker(&taker, now) {
            return reject(out, reason);
        }
        out.push(MarketEvent::Amended { order, price, qty, keeps_priority: false });
        let remaining = self.match_taker(&taker, now, out);
        self.finish_taker(&taker, remaining, true, resting.expiry, ExpireReason::ImmediateOrCancel, out);
    }

    /// Checks that depend on the opposite side of the book: post-only and fill-or-kill.
    #[inline]
    fn check_taker(&self, taker: &Taker, now: TimestampMs) -> Result<(), RejectReason> {
        if taker.post_only {
            let crosses = self
                .book
                .walk(taker.side.opposite(), |maker| {
                    if maker.expiry.is_some_and(|at| at <= now) {
                        return ControlFlow::Continue(());
                    }
                    ControlFlow::Break(taker.crosses(maker.price))
                })
                .unwrap_or(false);
            if crosses {
                return Err(RejectReason::PostOnlyWouldCross);
            }
        }
        if taker.fill_or_kill {
            let mut fillable = QtyLots::ZERO;
            self.book.walk(taker.side.opposite(), |maker| {
                if !taker.crosses(maker.price) || fillable >= taker.qty {
                    return ControlFlow::Break(());
                }
                if maker.expiry.is_some_and(|at| at <= now) {
                    return ControlFlow::Continue(());
                }
                if maker.user == taker.user {
                    return match taker.stp {
                        StpMode::ExpireMaker => ControlFlow::Continue(()),
                        StpMode::ExpireTaker | StpMode::ExpireBoth => ControlFlow::Break(()),
                    };
                }
                fillable += maker.qty;
                ControlFlow::Continue(())
            });
            if fillable < taker.qty {
                return Err(RejectReason::FokCannotFill);
            }
        }
        Ok(())
    }

    /// Trades the taker against the opposite side; returns what is left of it, or `None`
    /// when self-trade prevention cancelled the taker.
    fn match_taker(&self, taker: &Taker, now: TimestampMs, out: &mut Vec<MarketEvent>) -> Option<QtyLots> {
        let mut remaining = taker.qty;
        // Most orders (and nearly every amend) do not reach the other side: settle that from
        // the best price alone, before the walk builds a view of the first maker.
        match self.book.best_price(taker.side.opposite()) {
            Some(best) if taker.crosses(best) => {}
            _ => return Some(remaining),
        }
        let mut next_trade = self.next_trade;
        let stopped = self.book.walk(taker.side.opposite(), |maker| {
            if remaining.is_zero() || !taker.crosses(maker.price) {
                return ControlFlow::Break(false);
            }
            if maker.expiry.is_some_and(|at| at <= now) {
                return ControlFlow::Continue(()); // expired above, before this command
            }
            if maker.user == taker.user {
                let cancel_maker = MarketEvent::Cancelled {
                    order: maker.id,
                    remaining: maker.qty,
                    reason: CancelReason::SelfTradePrevention,
                };
                let cancel_taker =
                    MarketEvent::Cancelled { order: taker.id, remaining, reason: CancelReason::SelfTradePrevention };
                return match taker.stp {
                    StpMode::ExpireMaker => {
                        out.push(cancel_maker);
                        ControlFlow::Continue(())
                    }
                    StpMode::ExpireTaker => {
                        out.push(cancel_taker);
                        ControlFlow::Break(true)
                    }
                    StpMode::ExpireBoth => {
                        out.push(cancel_maker);
                        out.push(cancel_taker);
                        ControlFlow::Break(true)
                    }
                };
            }
            let qty = remaining.min(maker.qty);
            out.push(MarketEvent::Traded(self.trade(next_trade, &maker, taker, qty)));
            next_trade = TradeId(next_trade.0 + 1);
            if qty == maker.qty {
                out.push(MarketEvent::Filled { order: maker.id });
            }
            remaining -= qty;
            ControlFlow::Continue(())
        });
        if stopped == Some(true) {
            None
        } else {
            Some(remaining)
        }
    }

    #[inline]
    fn finish_taker(
        &self,
        taker: &Taker,
        remaining: Option<QtyLots>,
        may_rest: bool,
        expiry: Option<TimestampMs>,
        expire_reason: ExpireReason,
        out: &mut Vec<MarketEvent>,
    ) {
        let Some(remaining) = remaining else { return };
        if remaining.is_zero() {
            out.push(MarketEvent::Filled { order: taker.id });
        } else if may_rest {
            // A resting order always has a price: only limit orders may rest.
            let price = taker.limit.unwrap_or(PriceTicks(0));
            out.push(MarketEvent::Rested {
                order: taker.id,
                user: taker.user,
                side: taker.side,
                price,
                qty: remaining,
                expiry,
                post_only: taker.post_only,
                stp: taker.stp,
            });
        } else {
            out.push(MarketEvent::Expired { order: taker.id, remaining, reason: expire_reason });
        }
    }

    fn trade(&self, id: TradeId, maker: &RestingOrder, taker: &Taker, qty: QtyLots) -> Trade {
        // Overflow is impossible here: the maker's own notional at this price was checked
        // when it rested, and `qty` is at most the maker's quantity.
        let quote_amount = self.spec.notional(maker.price, qty).unwrap_or_default();
        Trade {
            id,
            maker_order: maker.id,
            maker_user: maker.user,
            taker_order: taker.id,
            taker_user: taker.user,
            taker_side: taker.side,
            price: maker.price,
            qty,
            base_amount: self.spec.base_amount(qty).unwrap_or_default(),
            quote_amount,
            maker_fee: self.spec.maker_fee.fee_on(quote_amount),
            taker_fee: self.spec.taker_fee.fee_on(quote_amount),
        }
    }
}

/// The incoming side of a match: a new order, or a resting order re-entering after an amend.
struct Taker {
    id: OrderId,
    user: UserId,
    side: Side,
    limit: Option<PriceTicks>,
    qty: QtyLots,
    stp: StpMode,
    post_only: bool,
    fill_or_kill: bool,
}

impl Taker {
    fn crosses(&self, maker: PriceTicks) -> bool {
        self.limit.is_none_or(|limit| self.side.crosses(limit, maker))
    }
}

fn expire_reason(order: &NewOrder) -> ExpireReason {
    match order.order_type {
        OrderType::Market { .. } => ExpireReason::MarketRemainder,
        OrderType::Limit { .. } => ExpireReason::ImmediateOrCancel,
    }
}
