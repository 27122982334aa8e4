//! The JSON the API speaks, REST and WebSocket alike. Wire types are separate from domain
//! and view types because they are a compatibility promise: prices, sizes and amounts are
//! decimal strings on the market's grid, order ids are strings (they exceed the 2^53 a
//! JavaScript number holds exactly), times are milliseconds since the Unix epoch.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::catalog::{Catalog, MarketEntry};
use crate::domain::{Amount, PriceTicks, QtyLots};
use crate::projections::depth::DepthLevel;
use crate::projections::user_fills::Liquidity;
use crate::projections::user_orders::OrderRowStatus;
use crate::projections::{Candle, FillRow, OrderRow, TapeEntry, ViewSide};

pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A market and its grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MarketInfo {
    pub id: String,
    pub base: String,
    pub quote: String,
    /// Price step, in quote per base.
    pub tick_size: String,
    /// Size step, in base.
    pub lot_size: String,
    /// Base units per lot and quote units per tick per lot: the integer grid inside.
    pub base_lot: String,
    pub quote_tick: String,
    pub base_decimals: u8,
    pub quote_decimals: u8,
    /// Smallest and largest order size, in base.
    pub min_qty: String,
    pub max_qty: String,
    /// Smallest order value, in quote.
    pub min_notional: String,
    pub maker_fee_bps: u16,
    pub taker_fee_bps: u16,
    /// The market's id in the settlement contract.
    pub chain_market_id: u32,
    /// `open` or `halted`, as far as the market-data feed has seen.
    pub status: String,
}

impl MarketInfo {
    pub fn new(entry: &MarketEntry, halted: bool) -> MarketInfo {
        let d = &entry.def;
        MarketInfo {
            id: d.spec.id.to_string(),
            base: d.spec.base.to_string(),
            quote: d.spec.quote.to_string(),
            tick_size: d.tick_size.to_string(),
            lot_size: d.lot_size.to_string(),
            base_lot: d.spec.base_lot.0.to_string(),
            quote_tick: d.spec.quote_tick.0.to_string(),
            base_decimals: d.base_decimals,
            quote_decimals: d.quote_decimals,
            min_qty: entry.qty_str(d.spec.min_qty),
            max_qty: entry.qty_str(d.spec.max_qty),
            min_notional: entry.quote_str(d.spec.min_notional),
            maker_fee_bps: d.spec.maker_fee.0,
            taker_fee_bps: d.spec.taker_fee.0,
            chain_market_id: d.chain_market_id,
            status: if halted { "halted" } else { "open" }.to_owned(),
        }
    }
}

/// A price level: `[price, quantity]`, the quantity absolute (0: the level is gone).
pub type Level = [String; 2];

pub fn level(entry: &MarketEntry, l: &DepthLevel) -> Level {
    [entry.price_str(PriceTicks(l.price_ticks)), entry.qty_str(QtyLots(l.qty_lots))]
}

/// The book at one version of the market's stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BookSnapshot {
    pub market: String,
    /// The market stream's version this book is at. A diff with `last_update_id` at or
    /// below it is already included; the first diff to apply has
    /// `first_update_id <= last_update_id + 1 <= its last_update_id`.
    pub last_update_id: u64,
    /// Best first.
    #[schema(value_type = Vec<Vec<String>>)]
    pub bids: Vec<Level>,
    #[schema(value_type = Vec<Vec<String>>)]
    pub asks: Vec<Level>,
    /// CRC32 of the top 10 levels (see docs/websocket.md).
    pub checksum: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WireSide {
    Buy,
    Sell,
}

impl From<ViewSide> for WireSide {
    fn from(s: ViewSide) -> WireSide {
        match s {
            ViewSide::Buy => WireSide::Buy,
            ViewSide::Sell => WireSide::Sell,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TradeInfo {
    pub trade_id: u64,
    pub price: String,
    pub qty: String,
    /// The taker's side.
    pub side: WireSide,
    pub time: i64,
}

impl TradeInfo {
    pub fn new(entry: &MarketEntry, t: &TapeEntry) -> TradeInfo {
        TradeInfo {
            trade_id: t.trade_id,
            price: entry.price_str(PriceTicks(t.price_ticks)),
            qty: entry.qty_str(QtyLots(t.qty_lots)),
            side: t.taker_side.into(),
            time: millis(t.time),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub enum Interval {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "1h")]
    H1,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::H1 => "1h",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CandleInfo {
    /// Bucket start.
    pub start: i64,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    /// Base traded.
    pub volume: String,
    /// Quote traded, before fees.
    pub quote_volume: String,
    pub trades: u64,
}

impl CandleInfo {
    pub fn new(entry: &MarketEntry, c: &Candle) -> CandleInfo {
        let p = |t: u64| entry.price_str(PriceTicks(t));
        let quote = c.quote_volume.parse::<u128>().map(|q| entry.quote_str(Amount(q))).unwrap_or_default();
        CandleInfo {
            start: millis(c.start),
            open: p(c.open_ticks),
            high: p(c.high_ticks),
            low: p(c.low_ticks),
            close: p(c.close_ticks),
            volume: entry.qty_str(QtyLots(c.volume_lots)),
            quote_volume: quote,
            trades: c.trades,
        }
    }
}

/// The last 24 hours of a market, from its 1-minute candles, and its best prices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ticker {
    pub market: String,
    pub last_price: Option<String>,
    pub open_24h: Option<String>,
    pub high_24h: Option<String>,
    pub low_24h: Option<String>,
    /// Base traded in the window.
    pub volume_24h: String,
    pub quote_volume_24h: String,
    pub trades_24h: u64,
    pub best_bid: Option<String>,
    pub best_ask: Option<String>,
    /// The market stream's version this ticker is at.
    pub last_update_id: u64,
    pub time: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BalanceInfo {
    pub asset: String,
    /// Free to trade or withdraw.
    pub available: String,
    /// Held by open orders.
    pub locked: String,
    /// Received in trades whose on-chain settlement has not confirmed yet.
    pub settling: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireOrderStatus {
    /// Funds locked, on its way to the market.
    Sent,
    /// The market accepted it (it may be resting or partly filled).
    Working,
    Filled,
    Cancelled,
    Expired,
    Rejected,
}

impl From<OrderRowStatus> for WireOrderStatus {
    fn from(s: OrderRowStatus) -> WireOrderStatus {
        match s {
            OrderRowStatus::Sent => WireOrderStatus::Sent,
            OrderRowStatus::Working => WireOrderStatus::Working,
            OrderRowStatus::Filled => WireOrderStatus::Filled,
            OrderRowStatus::Cancelled => WireOrderStatus::Cancelled,
            OrderRowStatus::Expired => WireOrderStatus::Expired,
            OrderRowStatus::Rejected => WireOrderStatus::Rejected,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderInfo {
    pub order_id: String,
    pub market: String,
    pub client_order_id: Option<String>,
    pub side: WireSide,
    /// `limit` or `market`.
    #[serde(rename = "type")]
    pub order_type: String,
    /// The limit (or a market order's worst) price; none for an unbounded market order.
    pub price: Option<String>,
    /// As placed.
    pub qty: String,
    pub filled: String,
    /// Still open at the market.
    pub remaining: String,
    pub status: WireOrderStatus,
    /// Why it ended without filling: `user`, `stp`, `ioc`, `market`, `gtd`, or a rejection code.
    pub reason: Option<String>,
    pub placed_at: i64,
    pub updated_at: i64,
}

impl OrderInfo {
    /// `entry` is `None` for a market no longer configured: sizes are then in lots.
    pub fn new(entry: Option<&MarketEntry>, row: &OrderRow) -> OrderInfo {
        let qty = |lots: u64| entry.map_or_else(|| lots.to_string(), |e| e.qty_str(QtyLots(lots)));
        OrderInfo {
            order_id: row.order_id.to_string(),
            market: row.market.clone(),
            client_order_id: row.client_order_id.clone(),
            side: row.side.into(),
            order_type: row.order_type.clone(),
            price: row.price_ticks.map(|t| entry.map_or_else(|| t.to_string(), |e| e.price_str(PriceTicks(t)))),
            qty: qty(row.qty_lots),
            filled: qty(row.filled_lots),
            remaining: qty(row.remaining_lots),
            status: row.status.into(),
            reason: row.reason.clone(),
            placed_at: millis(row.placed_at),
            updated_at: millis(row.updated_at),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WireLiquidity {
    Maker,
    Taker,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FillInfo {
    pub market: String,
    pub trade_id: u64,
    pub order_id: String,
    /// This user's side.
    pub side: WireSide,
    pub liquidity: WireLiquidity,
    pub price: String,
    pub qty: String,
    /// Quote value before fees.
    pub quote_amount: String,
    /// This user's fee, in quote.
    pub fee: String,
    pub time: i64,
}

impl FillInfo {
    pub fn new(catalog: &Catalog, row: &FillRow) -> FillInfo {
        let entry = catalog.market(&row.market).ok();
        let quote = |text: &str| match (entry, text.parse::<u128>()) {
            (Some(e), Ok(units)) => e.quote_str(Amount(units)),
            _ => text.to_owned(),
        };
        FillInfo {
            market: row.market.clone(),
            trade_id: row.trade_id,
            order_id: row.order_id.to_string(),
            side: row.side.into(),
            liquidity: match row.liquidity {
                Liquidity::Maker => WireLiquidity::Maker,
                Liquidity::Taker => WireLiquidity::Taker,
            },
            price: entry.map_or_else(|| row.price_ticks.to_string(), |e| e.price_str(PriceTicks(row.price_ticks))),
            qty: entry.map_or_else(|| row.qty_lots.to_string(), |e| e.qty_str(QtyLots(row.qty_lots))),
            quote_amount: quote(&row.quote_amount),
            fee: quote(&row.fee),
            time: millis(row.time),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WireOrderType {
    #[default]
    Limit,
    Market,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WireTif {
    Gtc,
    Ioc,
    Fok,
    Gtd,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireStp {
    #[default]
    ExpireMaker,
    ExpireTaker,
    ExpireBoth,
}

/// A new order. Field names and defaults are those of `hob match`'s input lines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub market: String,
    pub side: WireSide,
    #[serde(rename = "type", default)]
    pub order_type: WireOrderType,
    /// Limit orders: the limit price.
    pub price: Option<String>,
    /// Market orders: the worst price to trade at (required for a market buy).
    pub worst_price: Option<String>,
    pub qty: String,
    /// Default `gtc` for limit, `ioc` for market orders.
    pub tif: Option<WireTif>,
    /// `gtd` only: when the order expires (ms since the epoch).
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub post_only: bool,
    #[serde(default)]
    pub stp: WireStp,
    /// Up to 36 characters of `[A-Za-z0-9._-]`; a repeat returns the first order's id.
    pub client_order_id: Option<String>,
    /// Unused, and within the window of the user's 100 highest nonces.
    pub nonce: u64,
    /// The EIP-712 `Order` this request is, signed by the user or an agent it authorised.
    /// Required unless the server runs in development mode (README.md, "Signing").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_order: Option<SignedOrderWire>,
}

/// A signed EIP-712 message as a wallet produced it: the message exactly as signed (every
/// integer a decimal string) and the 65-byte `r || s || v` signature in `0x` hex.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedOrderWire {
    /// The `Order` message: `trader`, `market`, `side`, `orderType`, `timeInForce`, `postOnly`,
    /// `price`, `quantity`, `maxFeeBps`, `nonce`, `expiry`.
    #[schema(value_type = Object)]
    pub order: serde_json::Value,
    pub signature: String,
}

/// Asks for a login challenge for a wallet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The wallet to log in as (`0x` + 40 hex digits).
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChallengeResponse {
    /// Names the challenge in the login request.
    pub nonce: String,
    /// The text to sign with `personal_sign` (EIP-191), by the wallet or an agent it authorised.
    pub message: String,
    /// After this (ms since the epoch) the challenge is refused.
    pub expires_at: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub nonce: String,
    /// The `personal_sign` signature of the challenge's message, `0x` + 130 hex digits.
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`, or in the WebSocket `login` op.
    pub token: String,
    pub user: String,
    /// Set when an agent key logged in for `user`: it may trade, never withdraw.
    pub agent: Option<String>,
    pub expires_at: u64,
}

/// An owner's signed consent that an agent key may sign orders for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    /// The `AgentAuthorization` message: `owner`, `agent`, `expiry` (unix seconds), `nonce`,
    /// integers as decimal strings.
    #[schema(value_type = Object)]
    pub authorization: serde_json::Value,
    /// The owner's EIP-712 signature, `0x` + 130 hex digits.
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentResponse {
    pub owner: String,
    pub agent: String,
    /// Unix seconds.
    pub expiry: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlaceOrderResponse {
    pub order_id: String,
    pub client_order_id: Option<String>,
    /// `accepted`: funds are locked and the order is durably on its way to the market. Its
    /// fate is on the `orders` channel and at `GET /api/v1/orders/{order_id}`.
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    pub order_id: String,
    /// `cancel_requested`: the market removes the order and the lock is released.
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CancelAllResponse {
    /// Orders a cancel was sent for.
    pub cancel_requested: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendOrderRequest {
    /// The new limit price.
    pub price: String,
    /// The new open quantity.
    pub qty: String,
    /// Signed mode: the new signed order's nonce, unused like a placement's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// Signed mode: a new EIP-712 `Order` for the amended terms (same market, side, order
    /// type, time in force, post-only and expiry as the order; the new `price`, `quantity` =
    /// the new open quantity, and `nonce`), which trades after the amend settle under.
    /// Required unless the server runs in development mode (README.md, "Signing").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_order: Option<SignedOrderWire>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AmendResponse {
    pub order_id: String,
    /// `amend_requested`.
    pub status: String,
}

/// Places and cancels in one request; each item succeeds or fails on its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Items `{"op": "place", ...order}` or `{"op": "cancel", "order_id": "..."}` (or
    /// `"client_order_id"`), carried out in order.
    #[schema(value_type = Vec<Object>)]
    pub ops: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchItemResult {
    /// The item's result (as the single request would answer), when it succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<crate::api::error::ErrorBody>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// One per item, in order.
    pub results: Vec<BatchItemResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaucetRequest {
    /// The address to credit (`0x` + 40 hex digits).
    pub user: String,
    pub asset: String,
    /// A decimal in the asset's units.
    pub amount: String,
    /// `wallet`: mint the test token on-chain to the address (the default with a chain;
    /// then approve and deposit it into the exchange). `ledger`: credit the off-chain balance
    /// directly (the only choice without a chain; with one, a development stand-in for the
    /// chain watcher that credits deposits).
    #[serde(default)]
    pub target: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FaucetResponse {
    pub user: String,
    pub asset: String,
    pub amount: String,
    /// `wallet` or `ledger`.
    #[serde(default)]
    pub target: String,
    /// The mint's transaction (`wallet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    /// The token minted (`wallet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or what is not.
    pub status: String,
    pub checks: Vec<HealthCheck>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthCheck {
    pub name: String,
    pub ok: bool,
    /// Why it failed; on a passing check, a note (e.g. the node the operator runs on).
    pub detail: Option<String>,
}

impl HealthCheck {
    pub fn ok(name: &str) -> HealthCheck {
        HealthCheck { name: name.to_owned(), ok: true, detail: None }
    }
}

/// `POST /api/v1/withdrawals`: the wallet's own EIP-712 `Withdrawal` (never an agent's), as
/// its fields and signature. The server rebuilds the message from them (the user is the
/// caller, the token the asset's) and checks the signature before anything changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRequest {
    pub asset: String,
    /// A decimal in the asset's units; the signed `amount` is it in the token's base units.
    pub amount: String,
    /// The signed nonce, a decimal string; each is used once per user.
    pub nonce: String,
    /// The signed expiry in unix seconds, a decimal string; `0` (the default) never expires.
    #[serde(default)]
    pub expiry: Option<String>,
    /// `0x` + 130 hex digits (r || s || v) over the `Withdrawal` (see `GET /api/v1/eip712`).
    pub signature: String,
}

/// A withdrawal and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WithdrawalInfo {
    pub nonce: String,
    pub asset: String,
    pub amount: String,
    /// `withdrawing` (debited, the chain has not answered), `completed` (in the wallet) or
    /// `failed` (refused by the chain; the funds are available again).
    pub status: String,
    /// Why it failed (the contract's error name), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix milliseconds.
    pub requested_at: i64,
    /// Unix milliseconds; set once the chain answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
}
