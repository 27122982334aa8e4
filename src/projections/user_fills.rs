//! Fills per user: this user's side of every trade, from `FillApplied`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EventMeta, FoldError, View, ViewSide};
use crate::domain::{UserEvent, UserId};

/// Fills kept; older ones fall off the front.
pub const FILLS_LIMIT: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liquidity {
    Maker,
    Taker,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillRow {
    pub market: String,
    pub trade_id: u64,
    pub order_id: u64,
    /// This user's side.
    pub side: ViewSide,
    pub liquidity: Liquidity,
    pub price_ticks: u64,
    pub qty_lots: u64,
    /// Base and quote units that changed hands, and this user's fee in the quote asset
    /// (decimal strings).
    pub base_amount: String,
    pub quote_amount: String,
    pub fee: String,
    pub time: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFillsView {
    pub user: String,
    pub total_fills: u64,
    /// At most [`FILLS_LIMIT`], oldest first.
    pub fills: Vec<FillRow>,
}

impl View for UserFillsView {
    const KIND: &'static str = "fills";
    type Key = UserId;
    type Event = UserEvent;

    fn empty(user: UserId) -> UserFillsView {
        UserFillsView { user: user.to_string(), total_fills: 0, fills: Vec::new() }
    }

    fn apply(&mut self, meta: EventMeta, event: &UserEvent) -> Result<(), FoldError> {
        let UserEvent::FillApplied { market, order, trade } = event else { return Ok(()) };
        let (liquidity, side, fee) = if trade.taker_order == *order {
            (Liquidity::Taker, trade.taker_side, trade.taker_fee)
        } else if trade.maker_order == *order {
            (Liquidity::Maker, trade.taker_side.opposite(), trade.maker_fee)
        } else {
            return Err(FoldError(format!("fill of order {order} by trade {} of other orders", trade.id)));
        };
        if self.fills.len() == FILLS_LIMIT {
            self.fills.remove(0);
        }
        self.fills.push(FillRow {
            market: market.to_string(),
            trade_id: trade.id.0,
            order_id: order.0,
            side: side.into(),
            liquidity,
            price_ticks: trade.price.0,
            qty_lots: trade.qty.0,
            base_amount: trade.base_amount.0.to_string(),
            quote_amount: trade.quote_amount.0.to_string(),
            fee: fee.0.to_string(),
            time: meta.occurred_at,
        });
        self.total_fills += 1;
        Ok(())
    }
}
