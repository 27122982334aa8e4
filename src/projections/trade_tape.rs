//! The trade tape per market: the most recent trades, newest last.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EventMeta, FoldError, View, ViewSide};
use crate::domain::{MarketEvent, MarketId};

/// Trades the tape keeps; older ones fall off the front (the event stream keeps them all).
pub const TAPE_LIMIT: usize = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeEntry {
    pub trade_id: u64,
    pub price_ticks: u64,
    pub qty_lots: u64,
    pub taker_side: ViewSide,
    pub time: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeTapeView {
    pub market: String,
    /// Every trade ever folded, including those no longer on the tape.
    pub total_trades: u64,
    /// At most [`TAPE_LIMIT`], oldest first.
    pub trades: Vec<TapeEntry>,
}

impl View for TradeTapeView {
    const KIND: &'static str = "trades";
    type Key = MarketId;
    type Event = MarketEvent;

    fn empty(market: MarketId) -> TradeTapeView {
        TradeTapeView { market: market.to_string(), total_trades: 0, trades: Vec::new() }
    }

    fn apply(&mut self, meta: EventMeta, event: &MarketEvent) -> Result<(), FoldError> {
        let MarketEvent::Traded(trade) = event else { return Ok(()) };
        if let Some(last) = self.trades.last() {
            if trade.id.0 <= last.trade_id {
                return Err(FoldError(format!("trade {} after trade {}", trade.id, last.trade_id)));
            }
        }
        if self.trades.len() == TAPE_LIMIT {
            self.trades.remove(0);
        }
        self.trades.push(TapeEntry {
            trade_id: trade.id.0,
            price_ticks: trade.price.0,
            qty_lots: trade.qty.0,
            taker_side: trade.taker_side.into(),
            time: meta.occurred_at,
        });
        self.total_trades += 1;
        Ok(())
    }
}
