//! The simulated exchange's vault (`sim.rs`): balances per (user, token), the withdrawal
//! nonces used, and what a settled batch moves. It follows `HobExchange.sol` where money is
//! concerned: base = qty x baseLot, notional = price x qty x quoteTick, fee = floor(notional x
//! bps / 10000) in quote; the buyer pays notional + its fee, the seller gets notional - its
//! fee, fees go to the fee collector's balance; changes are netted per (user, token) over the
//! batch and a balance that would go below zero reverts the whole batch with
//! `InsufficientBalance(user, token)`. Pure: no clock, no I/O, and an error changes nothing.
//!
//! Not modelled (the anvil tests cover them): limit prices honoured against the signed
//! orders, cumulative fills, fee caps, post-only takers.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, U256};

use crate::chain::batch::{ACCOUNT_BYTES, MARKET_BYTES, ORDER_BYTES, TRADE_BYTES};
use crate::chain::contract::{HobExchange, HobExchangeErrors};

/// A registered market's grid (`registerMarket`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub base: Address,
    pub quote: Address,
    pub base_lot: u128,
    pub quote_tick: u128,
}

/// The vault's state; cloned into every block so a reorg restores it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vault {
    balances: BTreeMap<(Address, Address), u128>,
    withdrawal_nonces: BTreeSet<(Address, u64)>,
}

/// One order of a packed batch, as far as money goes.
struct PackedOrder {
    trader: Address,
    market: u32,
    sell: bool,
}

/// One trade of a packed batch.
struct PackedTrade {
    maker: usize,
    taker: usize,
    price: u128,
    qty: u128,
    maker_fee_bps: u128,
    taker_fee_bps: u128,
}

fn malformed() -> HobExchangeErrors {
    HobExchangeErrors::MalformedBatch(HobExchange::MalformedBatch {})
}

fn u16_at(data: &[u8], pos: usize) -> Option<usize> {
    Some(u16::from_be_bytes(data.get(pos..pos + 2)?.try_into().ok()?) as usize)
}

fn u64_at(data: &[u8], pos: usize) -> Option<u128> {
    Some(u128::from(u64::from_be_bytes(data.get(pos..pos + 8)?.try_into().ok()?)))
}

/// The orders and trades of a packed batch (layout in `chain::batch`).
fn unpack(data: &[u8]) -> Option<(Vec<PackedOrder>, Vec<PackedTrade>)> {
    let market_count = usize::from(*data.first()?);
    let mut markets = Vec::with_capacity(market_count);
    for i in 0..market_count {
        let at = 1 + i * MARKET_BYTES;
        markets.push(u32::from_be_bytes(data.get(at..at + MARKET_BYTES)?.try_into().ok()?));
    }
    let mut pos = 1 + market_count * MARKET_BYTES;
    let account_count = u16_at(data, pos)?;
    pos += 2;
    let mut accounts = Vec::with_capacity(account_count);
    for _ in 0..account_count {
        accounts.push(Address::from_slice(data.get(pos..pos + ACCOUNT_BYTES)?));
        pos += ACCOUNT_BYTES;
    }
    let order_count = u16_at(data, pos)?;
    pos += 2;
    let mut orders = Vec::with_capacity(order_count);
    for _ in 0..order_count {
        let order = data.get(pos..pos + ORDER_BYTES)?;
        orders.push(PackedOrder {
            trader: *accounts.get(u16_at(order, 0)?)?,
            market: *markets.get(usize::from(order[2]))?,
            sell: order[3] & 1 == 1,
        });
        pos += ORDER_BYTES;
    }
    let trade_count = u16_at(data, pos)?;
    pos += 2;
    let mut trades = Vec::with_capacity(trade_count);
    for _ in 0..trade_count {
        let t = data.get(pos..pos + TRADE_BYTES)?;
        trades.push(PackedTrade {
            maker: u16_at(t, 0)?,
            taker: u16_at(t, 2)?,
            price: u64_at(t, 4)?,
            qty: u64_at(t, 12)?,
            maker_fee_bps: u16_at(t, 20)? as u128,
            taker_fee_bps: u16_at(t, 22)? as u128,
        });
        pos += TRADE_BYTES;
    }
    (pos == data.len()).then_some((orders, trades))
}

impl Vault {
    pub fn balance(&self, user: Address, token: Address) -> u128 {
        self.balances.get(&(user, token)).copied().unwrap_or(0)
    }

    /// Every non-zero balance: (user, token) -> amount.
    pub fn balances(&self) -> BTreeMap<(Address, Address), u128> {
        self.balances.iter().filter(|(_, v)| **v > 0).map(|(k, v)| (*k, *v)).collect()
    }

    /// A `deposit` (the token transfer in is not modelled).
    pub fn credit(&mut self, user: Address, token: Address, amount: u128) {
        let balance = self.balances.entry((user, token)).or_default();
        *balance = balance.saturating_add(amount);
    }

    /// Applies a packed batch's trades, netted per (user, token): all or nothing.
    pub fn settle(
        &mut self,
        data: &[u8],
        markets: &BTreeMap<u32, Grid>,
        fee_collector: Address,
    ) -> Result<(), HobExchangeErrors> {
        let (orders, trades) = unpack(data).ok_or_else(malformed)?;
        let mut deltas: BTreeMap<(Address, Address), i128> = BTreeMap::new();
        let mut add = |user: Address, token: Address, amount: i128| {
            let d = deltas.entry((user, token)).or_default();
            *d = d.saturating_add(amount);
        };
        for (i, t) in trades.iter().enumerate() {
            let bad = || HobExchangeErrors::BadTradeEncoding(HobExchange::BadTradeEncoding { trade: U256::from(i) });
            let (maker, taker) = (orders.get(t.maker).ok_or_else(bad)?, orders.get(t.taker).ok_or_else(bad)?);
            if maker.market != taker.market {
                return Err(HobExchangeErrors::MarketMismatch(HobExchange::MarketMismatch { trade: U256::from(i) }));
            }
            if maker.sell == taker.sell {
                return Err(HobExchangeErrors::SameSide(HobExchange::SameSide { trade: U256::from(i) }));
            }
            let grid = markets
                .get(&maker.market)
                .ok_or(HobExchangeErrors::UnknownMarket(HobExchange::UnknownMarket { market: maker.market }))?;
            // The contract's arithmetic is 256-bit; amounts beyond i128 are no trade hob makes.
            let amounts = (|| {
                let base = i128::try_from(t.qty.checked_mul(grid.base_lot)?).ok()?;
                let notional = t.price.checked_mul(t.qty)?.checked_mul(grid.quote_tick)?;
                let maker_fee = i128::try_from(notional.checked_mul(t.maker_fee_bps)? / 10_000).ok()?;
                let taker_fee = i128::try_from(notional.checked_mul(t.taker_fee_bps)? / 10_000).ok()?;
                Some((base, i128::try_from(notional).ok()?, maker_fee, taker_fee))
            })();
            let (base, notional, maker_fee, taker_fee) = amounts.ok_or_else(bad)?;
            let (buyer, buyer_fee, seller, seller_fee) = if maker.sell {
                (taker.trader, taker_fee, maker.trader, maker_fee)
            } else {
                (maker.trader, maker_fee, taker.trader, taker_fee)
            };
            add(buyer, grid.base, base);
            add(buyer, grid.quote, -(notional + buyer_fee));
            add(seller, grid.base, -base);
            add(seller, grid.quote, notional - seller_fee);
            add(fee_collector, grid.quote, maker_fee + taker_fee);
        }
        let mut next = self.balances.clone();
        for ((user, token), delta) in deltas {
            let balance = next.entry((user, token)).or_default();
            let after = i128::try_from(*balance).ok().and_then(|b| b.checked_add(delta)).filter(|a| *a >= 0);
            let Some(after) = after else {
                return Err(HobExchangeErrors::InsufficientBalance(HobExchange::InsufficientBalance { user, token }));
            };
            *balance = after as u128;
        }
        self.balances = next;
        Ok(())
    }

    /// The vault side of `withdraw` (the signature is checked by the caller).
    pub fn withdraw(&mut self, call: &HobExchange::withdrawCall) -> Result<(), HobExchangeErrors> {
        if call.amount.is_zero() {
            return Err(HobExchangeErrors::ZeroAmount(HobExchange::ZeroAmount {}));
        }
        if self.withdrawal_nonces.contains(&(call.user, call.nonce)) {
            let used = HobExchange::WithdrawalNonceUsed { user: call.user, nonce: call.nonce };
            return Err(HobExchangeErrors::WithdrawalNonceUsed(used));
        }
        let balance = self.balance(call.user, call.token);
        let amount = u128::try_from(call.amount).ok().filter(|a| *a <= balance).ok_or(
            HobExchangeErrors::InsufficientBalance(HobExchange::InsufficientBalance {
                user: call.user,
                token: call.token,
            }),
        )?;
        self.withdrawal_nonces.insert((call.user, call.nonce));
        self.balances.insert((call.user, call.token), balance - amount);
        Ok(())
    }
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/sim_vault.rs"]
mod tests;
