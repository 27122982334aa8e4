//! The packed `data` argument of `HobExchange.settleBatch`: pure encoding, no I/O.
//!
//! Calldata is most of a settlement's gas, so the layout is tight (big-endian, no padding):
//!
//! ```text
//! u8  marketCount,  marketCount  x u32 marketId
//! u16 accountCount, accountCount x address (20 bytes), strictly ascending
//! u16 orderCount,   orderCount   x order (102 bytes), strictly ascending by (account, nonce)
//! u16 tradeCount,   tradeCount   x trade (24 bytes), in the caller's order
//!
//! order: u16 account index, u8 market index,
//!        u8 flags (bit 0 side: 1 sell; bit 1 orderType: 1 market; bits 2-3 timeInForce;
//!        bit 4 postOnly), u64 price, u64 quantity, u16 maxFeeBps, u64 nonce, u64 expiry,
//!        bytes32 r, bytes32 yParityAndS (EIP-2098 compact signature)
//! trade: u16 maker order index, u16 taker order index, u64 price, u64 quantity,
//!        u16 makerFeeBps, u16 takerFeeBps
//! ```
//!
//! Each trader is listed once and each order once, however many trades use them. The sort
//! orders are what the contract checks to know no order appears twice. The contract's errors
//! name an order or trade by its index here: [`EncodedBatch`] maps them back.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, Bytes};

use super::eip712::SignedOrder;
use super::order::OrderCodeError;
use crate::domain::units::{Bps, PriceTicks, QtyLots};

pub const MARKET_BYTES: usize = 4;
pub const ACCOUNT_BYTES: usize = 20;
pub const ORDER_BYTES: usize = 102;
pub const TRADE_BYTES: usize = 24;
pub const MAX_MARKETS: usize = u8::MAX as usize;
pub const MAX_ACCOUNTS: usize = u16::MAX as usize;
pub const MAX_ORDERS: usize = u16::MAX as usize;
pub const MAX_TRADES: usize = u16::MAX as usize;

/// One matched trade to settle, with both orders as their traders signed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeToSettle {
    pub maker: SignedOrder,
    pub taker: SignedOrder,
    pub price: PriceTicks,
    pub qty: QtyLots,
    pub maker_fee: Bps,
    pub taker_fee: Bps,
}

/// An order's identity on-chain: its fill state is kept per (trader, nonce).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey {
    pub trader: Address,
    pub nonce: u64,
}

impl OrderKey {
    pub fn of(order: &SignedOrder) -> OrderKey {
        OrderKey { trader: order.order.trader, nonce: order.order.nonce }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("a batch needs at least one trade")]
    Empty,
    #[error("{count} {what} in one batch; the layout allows at most {max}")]
    TooMany { what: &'static str, count: usize, max: usize },
    #[error("trader {} signed two different orders with nonce {}", .0.trader, .0.nonce)]
    ConflictingOrders(OrderKey),
    #[error("trade {trade} uses the same order as maker and taker")]
    SameOrder { trade: usize },
    #[error("order (trader {}, nonce {}) cannot be encoded: {source}", .key.trader, .key.nonce)]
    Unencodable { key: OrderKey, source: OrderCodeError },
}

/// The encoded batch and the tables that name what the contract's error indices refer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBatch {
    pub data: Bytes,
    pub markets: Vec<u32>,
    pub accounts: Vec<Address>,
    /// The orders in encoded order: the contract's `order` indices index this.
    pub orders: Vec<OrderKey>,
    /// Per trade (the contract's `trade` indices, the caller's order): its maker and taker
    /// as indices into `orders`.
    pub trade_orders: Vec<(usize, usize)>,
}

impl EncodedBatch {
    /// The trades that use the order at `order` (as maker or taker): what to void when the
    /// contract refuses that order.
    pub fn trades_using(&self, order: usize) -> impl Iterator<Item = usize> + '_ {
        self.trade_orders.iter().enumerate().filter(move |(_, &(m, t))| m == order || t == order).map(|(i, _)| i)
    }
}

/// Encodes `trades` for `settleBatch`. Orders shared by several trades are sent once.
pub fn encode_batch(trades: &[TradeToSettle]) -> Result<EncodedBatch, BatchError> {
    if trades.is_empty() {
        return Err(BatchError::Empty);
    }
    check_limit("trades", trades.len(), MAX_TRADES)?;

    // BTreeMap order is (trader bytes, nonce): ascending addresses, then nonces, which is
    // exactly the order the contract requires.
    let mut orders: BTreeMap<OrderKey, &SignedOrder> = BTreeMap::new();
    for (i, trade) in trades.iter().enumerate() {
        if OrderKey::of(&trade.maker) == OrderKey::of(&trade.taker) {
            return Err(BatchError::SameOrder { trade: i });
        }
        for signed in [&trade.maker, &trade.taker] {
            let key = OrderKey::of(signed);
            match orders.get(&key) {
                Some(known) if *known != signed => return Err(BatchError::ConflictingOrders(key)),
                Some(_) => {}
                None => {
                    orders.insert(key, signed);
                }
            }
        }
    }
    let accounts: Vec<Address> = orders.keys().map(|k| k.trader).collect::<BTreeSet<_>>().into_iter().collect();
    let markets: Vec<u32> = orders.values().map(|o| o.order.market).collect::<BTreeSet<_>>().into_iter().collect();
    check_limit("markets", markets.len(), MAX_MARKETS)?;
    check_limit("accounts", accounts.len(), MAX_ACCOUNTS)?;
    check_limit("orders", orders.len(), MAX_ORDERS)?;

    let order_keys: Vec<OrderKey> = orders.keys().copied().collect();
    let order_index: BTreeMap<OrderKey, usize> = order_keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let account_index: BTreeMap<Address, usize> = accounts.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let market_index: BTreeMap<u32, usize> = markets.iter().enumerate().map(|(i, m)| (*m, i)).collect();

    let mut out = Vec::with_capacity(
        1 + markets.len() * MARKET_BYTES
            + 2
            + accounts.len() * ACCOUNT_BYTES
            + 2
            + orders.len() * ORDER_BYTES
            + 2
            + trades.len() * TRADE_BYTES,
    );
    // Every count below was checked against its field's width above.
    out.push(markets.len() as u8);
    for market in &markets {
        out.extend_from_slice(&market.to_be_bytes());
    }
    out.extend_from_slice(&(accounts.len() as u16).to_be_bytes());
    for account in &accounts {
        out.extend_from_slice(account.as_slice());
    }
    out.extend_from_slice(&(orders.len() as u16).to_be_bytes());
    for (key, signed) in &orders {
        let flags = flags(signed).map_err(|source| BatchError::Unencodable { key: *key, source })?;
        let o = &signed.order;
        out.extend_from_slice(&(account_index[&key.trader] as u16).to_be_bytes());
        out.push(market_index[&o.market] as u8);
        out.push(flags);
        out.extend_from_slice(&o.price.to_be_bytes());
        out.extend_from_slice(&o.quantity.to_be_bytes());
        out.extend_from_slice(&o.maxFeeBps.to_be_bytes());
        out.extend_from_slice(&o.nonce.to_be_bytes());
        out.extend_from_slice(&o.expiry.to_be_bytes());
        // The contract refuses high-s signatures, as wallets never make them; normalising
        // keeps one that a non-standard signer made in its canonical twin, same signer.
        out.extend_from_slice(&signed.signature.normalized_s().as_erc2098());
    }
    out.extend_from_slice(&(trades.len() as u16).to_be_bytes());
    let mut trade_orders = Vec::with_capacity(trades.len());
    for trade in trades {
        let maker = order_index[&OrderKey::of(&trade.maker)];
        let taker = order_index[&OrderKey::of(&trade.taker)];
        trade_orders.push((maker, taker));
        out.extend_from_slice(&(maker as u16).to_be_bytes());
        out.extend_from_slice(&(taker as u16).to_be_bytes());
        out.extend_from_slice(&trade.price.0.to_be_bytes());
        out.extend_from_slice(&trade.qty.0.to_be_bytes());
        out.extend_from_slice(&trade.maker_fee.0.to_be_bytes());
        out.extend_from_slice(&trade.taker_fee.0.to_be_bytes());
    }
    Ok(EncodedBatch { data: out.into(), markets, accounts, orders: order_keys, trade_orders })
}

fn check_limit(what: &'static str, count: usize, max: usize) -> Result<(), BatchError> {
    if count > max {
        return Err(BatchError::TooMany { what, count, max });
    }
    Ok(())
}

/// The order's codes packed into one byte; codes that do not fit their bits cannot be
/// settled (and no valid order has them).
fn flags(signed: &SignedOrder) -> Result<u8, OrderCodeError> {
    let o = &signed.order;
    if o.side > 1 {
        return Err(OrderCodeError::Side(o.side));
    }
    if o.orderType > 1 {
        return Err(OrderCodeError::OrderType(o.orderType));
    }
    if o.timeInForce > 3 {
        return Err(OrderCodeError::TimeInForce(o.timeInForce));
    }
    Ok(o.side | o.orderType << 1 | o.timeInForce << 2 | u8::from(o.postOnly) << 4)
}

#[cfg(test)]
#[path = "../../unit_tests/chain/batch.rs"]
mod tests;
