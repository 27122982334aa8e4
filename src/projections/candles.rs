//! OHLCV candles per market, in 1-minute and 1-hour buckets of the envelope's `occurred_at`
//! (UTC, aligned to the epoch). A bucket holds the trades whose time is in
//! `[start, start + width)`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EventMeta, FoldError, View};
use crate::domain::{MarketEvent, MarketId, Trade};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
/// Candles kept per width (a day of minutes, a month of hours); the oldest go first.
pub const MINUTE_CANDLES_LIMIT: usize = 1_440;
pub const HOUR_CANDLES_LIMIT: usize = 720;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    pub start: DateTime<Utc>,
    pub open_ticks: u64,
    pub high_ticks: u64,
    pub low_ticks: u64,
    pub close_ticks: u64,
    pub volume_lots: u64,
    /// Quote units traded before fees, a decimal string (u128).
    pub quote_volume: String,
    pub trades: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandlesView {
    pub market: String,
    /// By bucket start in ms since the epoch.
    pub m1: BTreeMap<i64, Candle>,
    pub h1: BTreeMap<i64, Candle>,
}

/// The start of the `width_ms` bucket holding `t`, in ms since the epoch.
pub fn bucket_start_ms(t: DateTime<Utc>, width_ms: i64) -> i64 {
    t.timestamp_millis().div_euclid(width_ms) * width_ms
}

fn fold(
    candles: &mut BTreeMap<i64, Candle>,
    width_ms: i64,
    limit: usize,
    t: DateTime<Utc>,
    trade: &Trade,
) -> Result<(), FoldError> {
    let start_ms = bucket_start_ms(t, width_ms);
    let price = trade.price.0;
    let start = DateTime::from_timestamp_millis(start_ms)
        .ok_or_else(|| FoldError(format!("bucket start {start_ms} ms is out of range")))?;
    let candle = candles.entry(start_ms).or_insert_with(|| Candle {
        start,
        open_ticks: price,
        high_ticks: price,
        low_ticks: price,
        close_ticks: price,
        volume_lots: 0,
        quote_volume: "0".to_owned(),
        trades: 0,
    });
    candle.high_ticks = candle.high_ticks.max(price);
    candle.low_ticks = candle.low_ticks.min(price);
    candle.close_ticks = price;
    candle.volume_lots =
        candle.volume_lots.checked_add(trade.qty.0).ok_or_else(|| FoldError("candle volume overflows".into()))?;
    let quote: u128 =
        candle.quote_volume.parse().map_err(|_| FoldError(format!("bad quote volume {:?}", candle.quote_volume)))?;
    let quote =
        quote.checked_add(trade.quote_amount.0).ok_or_else(|| FoldError("candle quote volume overflows".into()))?;
    candle.quote_volume = quote.to_string();
    candle.trades += 1;
    while candles.len() > limit {
        candles.pop_first();
    }
    Ok(())
}

impl View for CandlesView {
    const KIND: &'static str = "candles";
    type Key = MarketId;
    type Event = MarketEvent;

    fn empty(market: MarketId) -> CandlesView {
        CandlesView { market: market.to_string(), m1: BTreeMap::new(), h1: BTreeMap::new() }
    }

    fn apply(&mut self, meta: EventMeta, event: &MarketEvent) -> Result<(), FoldError> {
        let MarketEvent::Traded(trade) = event else { return Ok(()) };
        fold(&mut self.m1, MINUTE_MS, MINUTE_CANDLES_LIMIT, meta.occurred_at, trade)?;
        fold(&mut self.h1, HOUR_MS, HOUR_CANDLES_LIMIT, meta.occurred_at, trade)
    }
}
