//! L2 depth per market: price -> (quantity, order count) per side, derived from the market's
//! own events. It keeps each resting order's side, price and remaining size, because a trade
//! or a cancel names only the order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EventMeta, FoldError, View, ViewSide};
use crate::domain::{MarketEvent, MarketId, OrderId, PriceTicks, QtyLots, Side};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthLevel {
    pub price_ticks: u64,
    pub qty_lots: u64,
    pub orders: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestingEntry {
    pub side: ViewSide,
    pub price_ticks: u64,
    pub qty_lots: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthView {
    pub market: String,
    pub halted: bool,
    /// By price; `depth` orders them best first.
    pub bids: BTreeMap<u64, DepthLevel>,
    pub asks: BTreeMap<u64, DepthLevel>,
    /// Resting orders by id. An order an amend took off the book is absent until the event
    /// that re-enters it.
    pub orders: BTreeMap<u64, RestingEntry>,
}

impl DepthView {
    /// The top `n` levels of a side, best first (highest bid, lowest ask), like
    /// `OrderBook::depth`.
    pub fn depth(&self, side: Side, n: usize) -> Vec<DepthLevel> {
        match side {
            Side::Buy => self.bids.values().rev().take(n).copied().collect(),
            Side::Sell => self.asks.values().take(n).copied().collect(),
        }
    }

    fn levels(&mut self, side: ViewSide) -> &mut BTreeMap<u64, DepthLevel> {
        match side {
            ViewSide::Buy => &mut self.bids,
            ViewSide::Sell => &mut self.asks,
        }
    }

    fn insert(&mut self, order: OrderId, entry: RestingEntry) -> Result<(), FoldError> {
        if self.orders.insert(order.0, entry).is_some() {
            return Err(FoldError(format!("order {order} rests twice")));
        }
        let level = self.levels(entry.side).entry(entry.price_ticks).or_insert(DepthLevel {
            price_ticks: entry.price_ticks,
            qty_lots: 0,
            orders: 0,
        });
        level.qty_lots = level
            .qty_lots
            .checked_add(entry.qty_lots)
            .ok_or_else(|| FoldError(format!("level {} overflows", entry.price_ticks)))?;
        level.orders += 1;
        Ok(())
    }

    /// Takes `by` lots off a resting order; removes it when nothing is left.
    fn reduce(&mut self, order: OrderId, by: u64) -> Result<(), FoldError> {
        let entry = self.orders.get_mut(&order.0).ok_or_else(|| FoldError(format!("order {order} is not resting")))?;
        if by > entry.qty_lots {
            return Err(FoldError(format!("order {order} has {} lots, cannot take {by}", entry.qty_lots)));
        }
        entry.qty_lots -= by;
        let (side, price, gone) = (entry.side, entry.price_ticks, entry.qty_lots == 0);
        if gone {
            self.orders.remove(&order.0);
        }
        let levels = self.levels(side);
        let Some(level) = levels.get_mut(&price) else {
            return Err(FoldError(format!("order {order} rests at {price} but the level is missing")));
        };
        level.qty_lots -= by;
        if gone {
            level.orders -= 1;
            if level.orders == 0 {
                levels.remove(&price);
            }
        }
        Ok(())
    }

    /// Takes the order off the book if it rests there; an incoming order that never rested,
    /// or one an amend took off, is not.
    fn discard(&mut self, order: OrderId) -> Result<(), FoldError> {
        match self.orders.get(&order.0) {
            Some(entry) => self.reduce(order, entry.qty_lots),
            None => Ok(()),
        }
    }
}

impl View for DepthView {
    const KIND: &'static str = "depth";
    type Key = MarketId;
    type Event = MarketEvent;

    fn empty(market: MarketId) -> DepthView {
        DepthView {
            market: market.to_string(),
            halted: false,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            orders: BTreeMap::new(),
        }
    }

    fn apply(&mut self, _meta: EventMeta, event: &MarketEvent) -> Result<(), FoldError> {
        match *event {
            MarketEvent::Accepted(_) | MarketEvent::Rejected { .. } | MarketEvent::Filled { .. } => Ok(()),
            MarketEvent::Rested { order, side, price: PriceTicks(price), qty: QtyLots(qty), .. } => {
                self.insert(order, RestingEntry { side: side.into(), price_ticks: price, qty_lots: qty })
            }
            MarketEvent::Traded(ref trade) => self.reduce(trade.maker_order, trade.qty.0),
            MarketEvent::Cancelled { order, .. } | MarketEvent::Expired { order, .. } => self.discard(order),
            MarketEvent::Amended { order, qty: QtyLots(qty), keeps_priority, .. } => {
                let resting = self
                    .orders
                    .get(&order.0)
                    .map(|e| e.qty_lots)
                    .ok_or_else(|| FoldError(format!("amended order {order} is not resting")))?;
                if keeps_priority {
                    if qty == 0 || qty >= resting {
                        return Err(FoldError(format!(
                            "order {order}: amend keeping priority from {resting} to {qty}"
                        )));
                    }
                    self.reduce(order, resting - qty)
                } else {
                    // Off the book until the events that follow re-enter it (`Rested`) or
                    // end it (`Filled`, `Cancelled`, `Expired`).
                    self.reduce(order, resting)
                }
            }
            MarketEvent::Halted => {
                self.halted = true;
                Ok(())
            }
            MarketEvent::Resumed => {
                self.halted = false;
                Ok(())
            }
        }
    }
}
