//! Public market data: markets and their grids, the book, trades, candles and the ticker.
//! Everything is read from the market-data feeds (`api::feed`), never from the matching
//! actors, so public traffic cannot slow matching down.

use actix_web::{get, web};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;
use crate::api::wire::{BookSnapshot, CandleInfo, Interval, MarketInfo, Ticker, TradeInfo};

type Json<T> = Result<web::Json<T>, ApiError>;

#[utoipa::path(tag = "market data", responses((status = 200, description = "Every market and its grid", body = Vec<MarketInfo>)))]
#[get("/markets")]
pub async fn markets(state: web::Data<AppState>) -> Json<Vec<MarketInfo>> {
    Ok(web::Json(state.markets.values().map(|f| MarketInfo::new(f.entry(), f.halted())).collect()))
}

#[utoipa::path(
    tag = "market data",
    params(("market" = String, Path, description = "Market id, e.g. BTC-USDT")),
    responses((status = 200, body = MarketInfo), (status = 404, body = ErrorBody)),
)]
#[get("/markets/{market}")]
pub async fn market(state: web::Data<AppState>, path: web::Path<String>) -> Json<MarketInfo> {
    let feed = state.market(&path)?;
    Ok(web::Json(MarketInfo::new(feed.entry(), feed.halted())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BookQuery {
    /// Levels per side (default 100, at most 1000).
    pub depth: Option<usize>,
}

#[utoipa::path(
    tag = "market data",
    params(("market" = String, Path, description = "Market id"), BookQuery),
    responses((status = 200, description = "The book at `last_update_id`", body = BookSnapshot), (status = 404, body = ErrorBody)),
)]
#[get("/markets/{market}/book")]
pub async fn book(state: web::Data<AppState>, path: web::Path<String>, q: web::Query<BookQuery>) -> Json<BookSnapshot> {
    let depth = q.depth.unwrap_or(100).clamp(1, 1_000);
    Ok(web::Json(state.market(&path)?.book(depth)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// How many (default 100, at most 1000).
    pub limit: Option<usize>,
}

#[utoipa::path(
    tag = "market data",
    params(("market" = String, Path, description = "Market id"), LimitQuery),
    responses((status = 200, description = "Recent trades, oldest first", body = Vec<TradeInfo>), (status = 404, body = ErrorBody)),
)]
#[get("/markets/{market}/trades")]
pub async fn trades(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<LimitQuery>,
) -> Json<Vec<TradeInfo>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    Ok(web::Json(state.market(&path)?.trades(limit)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CandlesQuery {
    /// `1m` (default) or `1h`.
    pub interval: Option<Interval>,
    /// How many (default 100, at most 1440).
    pub limit: Option<usize>,
}

#[utoipa::path(
    tag = "market data",
    params(("market" = String, Path, description = "Market id"), CandlesQuery),
    responses((status = 200, description = "OHLCV candles, oldest first", body = Vec<CandleInfo>), (status = 404, body = ErrorBody)),
)]
#[get("/markets/{market}/candles")]
pub async fn candles(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<CandlesQuery>,
) -> Json<Vec<CandleInfo>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1_440);
    Ok(web::Json(state.market(&path)?.candles(q.interval.unwrap_or(Interval::M1), limit)))
}

#[utoipa::path(
    tag = "market data",
    params(("market" = String, Path, description = "Market id")),
    responses((status = 200, description = "The last 24 hours and the best prices", body = Ticker), (status = 404, body = ErrorBody)),
)]
#[get("/markets/{market}/ticker")]
pub async fn ticker(state: web::Data<AppState>, path: web::Path<String>) -> Json<Ticker> {
    Ok(web::Json(state.market(&path)?.ticker(Utc::now())))
}
