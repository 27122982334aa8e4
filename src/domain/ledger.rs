//! Balances. Each user's account holds, per asset, what is `available` to trade or withdraw,
//! what is `locked` behind open orders, and what is `settling`: received in a trade and
//! waiting for the trade's on-chain settlement before it can be spent. Fees go to the fee
//! account. Every movement is checked arithmetic: a shortfall is a typed error and nothing
//! changes, so no balance is ever negative and, without deposits or withdrawals, the sum of
//! available + locked + settling + fees per asset never changes.
//!
//! Locks per order. Placing locks the worst case: a buy locks `limit x qty` plus the fee at
//! the highest rate it may pay, a sell locks its base quantity (a seller's fee comes out of
//! the quote it receives). A fill spends the traded part of the lock and returns the rest
//! of that part (price improvement, a lower maker fee) to available; the final fill or a
//! cancel returns whatever is left.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::ids::{AssetId, OrderId};
use super::market::MarketSpec;
use super::market_event::Trade;
use super::order::{NewOrder, Side};
use super::units::{Amount, Bps, PriceTicks, QtyLots};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    pub available: Amount,
    pub locked: Amount,
    pub settling: Amount,
}

impl Balance {
    pub fn total(&self) -> Option<Amount> {
        self.available.checked_add(self.locked)?.checked_add(self.settling)
    }
}

/// The funds one open order holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderLock {
    pub side: Side,
    pub asset: AssetId,
    /// What is still locked for the order.
    pub amount: Amount,
    /// Lots not yet traded.
    pub qty: QtyLots,
    /// The worst price a buy may pay; the lock was sized at it.
    pub limit: PriceTicks,
    /// The fee rate the lock was sized at.
    pub fee_rate: Bps,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient {asset} available: need {needed}, have {available}")]
    InsufficientBalance { asset: AssetId, needed: Amount, available: Amount },
    #[error("a market buy needs a worst price so its cost can be locked")]
    MarketBuyNeedsWorstPrice,
    #[error("order {0} already holds a lock")]
    DuplicateLock(OrderId),
    #[error("order {0} holds no lock")]
    UnknownLock(OrderId),
    #[error("order {0} is not party to trade")]
    NotParty(OrderId),
    #[error("order {order} has {open} lots open, cannot fill {qty}")]
    Overfill { order: OrderId, open: QtyLots, qty: QtyLots },
    #[error("amount overflow")]
    Overflow,
    #[error("{asset} {bucket} balance would go negative")]
    Underflow { asset: AssetId, bucket: &'static str },
}

/// One user's balances and open-order locks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    balances: BTreeMap<AssetId, Balance>,
    locks: FxHashMap<OrderId, OrderLock>,
}

impl Account {
    pub fn new() -> Account {
        Account::default()
    }

    pub fn balance(&self, asset: AssetId) -> Balance {
        self.balances.get(&asset).copied().unwrap_or_default()
    }

    pub fn balances(&self) -> impl Iterator<Item = (AssetId, Balance)> + '_ {
        self.balances.iter().map(|(a, b)| (*a, *b))
    }

    pub fn lock(&self, order: OrderId) -> Option<&OrderLock> {
        self.locks.get(&order)
    }

    pub fn open_orders(&self) -> usize {
        self.locks.len()
    }

    /// Every open-order lock, in no particular order (callers that need determinism sort).
    pub fn locks(&self) -> impl Iterator<Item = (OrderId, &OrderLock)> + '_ {
        self.locks.iter().map(|(id, lock)| (*id, lock))
    }

    /// Rebuilds an account from its parts, for restoring a snapshot. Refuses parts that could
    /// not have come from a live account: a lock held twice, or an asset whose `locked` is not
    /// the sum of the locks in it.
    pub fn from_parts(
        balances: impl IntoIterator<Item = (AssetId, Balance)>,
        locks: impl IntoIterator<Item = (OrderId, OrderLock)>,
    ) -> Result<Account, LedgerError> {
        let mut account = Account::new();
        for (asset, balance) in balances {
            balance.total().ok_or(LedgerError::Overflow)?;
            account.balances.insert(asset, balance);
        }
        let mut locked: BTreeMap<AssetId, Amount> = BTreeMap::new();
        for (order, lock) in locks {
            if account.locks.insert(order, lock).is_some() {
                return Err(LedgerError::DuplicateLock(order));
            }
            let sum = locked.entry(lock.asset).or_default();
            *sum = sum.checked_add(lock.amount).ok_or(LedgerError::Overflow)?;
        }
        for (asset, balance) in &account.balances {
            if locked.get(asset).copied().unwrap_or_default() != balance.locked {
                return Err(LedgerError::Underflow { asset: *asset, bucket: "locked" });
            }
        }
        for (asset, sum) in locked {
            if account.balance(asset).locked != sum {
                return Err(LedgerError::Underflow { asset, bucket: "locked" });
            }
        }
        Ok(account)
    }

    pub fn deposit(&mut self, asset: AssetId, amount: Amount) -> Result<(), LedgerError> {
        let mut b = self.balance(asset);
        b.available = b.available.checked_add(amount).ok_or(LedgerError::Overflow)?;
        b.total().ok_or(LedgerError::Overflow)?;
        self.balances.insert(asset, b);
        Ok(())
    }

    pub fn withdraw(&mut self, asset: AssetId, amount: Amount) -> Result<(), LedgerError> {
        let mut b = self.balance(asset);
        b.available = b.available.checked_sub(amount).ok_or(LedgerError::InsufficientBalance {
            asset,
            needed: amount,
            available: b.available,
        })?;
        self.balances.insert(asset, b);
        Ok(())
    }

    /// What placing `order` at `spec` locks: the asset and the worst-case amount.
    pub fn order_cost(spec: &MarketSpec, order: &NewOrder) -> Result<OrderLock, LedgerError> {
        let fee_rate = spec.max_fee_rate(order.post_only);
        match order.side {
            Side::Buy => {
                let limit = order.order_type.price_bound().ok_or(LedgerError::MarketBuyNeedsWorstPrice)?;
                Ok(OrderLock {
                    side: Side::Buy,
                    asset: spec.quote,
                    amount: buy_cost(spec, limit, order.qty, fee_rate)?,
                    qty: order.qty,
                    limit,
                    fee_rate,
                })
            }
            Side::Sell => Ok(OrderLock {
                side: Side::Sell,
                asset: spec.base,
                amount: spec.base_amount(order.qty).ok_or(LedgerError::Overflow)?,
                qty: order.qty,
                limit: order.order_type.price_bound().unwrap_or_default(),
                fee_rate,
            }),
        }
    }

    /// Moves the order's worst-case cost from available to locked, or refuses.
    pub fn lock_order(&mut self, spec: &MarketSpec, order: &NewOrder) -> Result<OrderLock, LedgerError> {
        if self.locks.contains_key(&order.id) {
            return Err(LedgerError::DuplicateLock(order.id));
        }
        let lock = Self::order_cost(spec, order)?;
        let mut b = self.balance(lock.asset);
        b.available = b.available.checked_sub(lock.amount).ok_or(LedgerError::InsufficientBalance {
            asset: lock.asset,
            needed: lock.amount,
            available: b.available,
        })?;
        b.locked = b.locked.checked_add(lock.amount).ok_or(LedgerError::Overflow)?;
        self.balances.insert(lock.asset, b);
        self.locks.insert(order.id, lock);
        Ok(lock)
    }

    /// Re-sizes an open order's lock for new terms (an amend): the lock becomes what a fresh
    /// order at `price` for `qty` lots would lock. Refuses if the increase is not available.
    pub fn relock(
        &mut self,
        spec: &MarketSpec,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
    ) -> Result<OrderLock, LedgerError> {
        let old = *self.locks.get(&order).ok_or(LedgerError::UnknownLock(order))?;
        let amount = match old.side {
            Side::Buy => buy_cost(spec, price, qty, old.fee_rate)?,
            Side::Sell => spec.base_amount(qty).ok_or(LedgerError::Overflow)?,
        };
        let mut b = self.balance(old.asset);
        if amount >= old.amount {
            let extra = Amount(amount.0 - old.amount.0);
            b.available = b.available.checked_sub(extra).ok_or(LedgerError::InsufficientBalance {
                asset: old.asset,
                needed: extra,
                available: b.available,
            })?;
            b.locked = b.locked.checked_add(extra).ok_or(LedgerError::Overflow)?;
        } else {
            let freed = Amount(old.amount.0 - amount.0);
            b.locked = sub(b.locked, freed, old.asset, "locked")?;
            b.available = b.available.checked_add(freed).ok_or(LedgerError::Overflow)?;
        }
        let lock = OrderLock { amount, qty, limit: if old.side == Side::Buy { price } else { old.limit }, ..old };
        self.balances.insert(old.asset, b);
        self.locks.insert(order, lock);
        Ok(lock)
    }

    /// Applies this account's side of a trade for its order `order`: the spent part of the
    /// lock leaves, what it receives becomes settling, the unspent part of the traded lots'
    /// lock returns to available. Returns the fee it paid.
    pub fn apply_fill(&mut self, spec: &MarketSpec, order: OrderId, trade: &Trade) -> Result<Amount, LedgerError> {
        let lock = *self.locks.get(&order).ok_or(LedgerError::UnknownLock(order))?;
        let (fee, is_party) = match lock.side {
            Side::Buy => (trade.buyer_fee(), trade.buyer().0 == order),
            Side::Sell => (trade.seller_fee(), trade.seller().0 == order),
        };
        if !is_party {
            return Err(LedgerError::NotParty(order));
        }
        if trade.qty > lock.qty {
            return Err(LedgerError::Overfill { order, open: lock.qty, qty: trade.qty });
        }
        let last = trade.qty == lock.qty;
        let mut paid = self.balance(lock.asset);
        let (released, received_asset, received) = match lock.side {
            Side::Buy => {
                // The share of the lock that belonged to the traded lots: exact on the last
                // fill (whatever is left), and at most the remainder before it, because the
                // fee floor of a part never exceeds its share of the whole's fee floor.
                let share = if last { lock.amount } else { buy_cost(spec, lock.limit, trade.qty, lock.fee_rate)? };
                let spent = trade.quote_amount.checked_add(fee).ok_or(LedgerError::Overflow)?;
                let refund =
                    share.checked_sub(spent).ok_or(LedgerError::Underflow { asset: lock.asset, bucket: "lock" })?;
                paid.locked = sub(paid.locked, share, lock.asset, "locked")?;
                paid.available = paid.available.checked_add(refund).ok_or(LedgerError::Overflow)?;
                (share, spec.base, trade.base_amount)
            }
            Side::Sell => {
                paid.locked = sub(paid.locked, trade.base_amount, lock.asset, "locked")?;
                let net = trade
                    .quote_amount
                    .checked_sub(fee)
                    .ok_or(LedgerError::Underflow { asset: spec.quote, bucket: "proceeds" })?;
                (trade.base_amount, spec.quote, net)
            }
        };
        let amount_left = sub(lock.amount, released, lock.asset, "lock")?;
        let mut got = if received_asset == lock.asset { paid } else { self.balance(received_asset) };
        got.settling = got.settling.checked_add(received).ok_or(LedgerError::Overflow)?;
        if received_asset != lock.asset {
            self.balances.insert(lock.asset, paid);
        }
        self.balances.insert(received_asset, got);
        if last {
            self.locks.remove(&order);
        } else {
            self.locks.insert(order, OrderLock { amount: amount_left, qty: lock.qty - trade.qty, ..lock });
        }
        Ok(fee)
    }

    /// Returns whatever an order still has locked to available (cancel, expiry, rejection).
    pub fn release_order(&mut self, order: OrderId) -> Result<Amount, LedgerError> {
        let lock = self.locks.remove(&order).ok_or(LedgerError::UnknownLock(order))?;
        let mut b = self.balance(lock.asset);
        b.locked = sub(b.locked, lock.amount, lock.asset, "locked")?;
        b.available = b.available.checked_add(lock.amount).ok_or(LedgerError::Overflow)?;
        self.balances.insert(lock.asset, b);
        Ok(lock.amount)
    }

    /// Settling funds become available once their trade's settlement is confirmed.
    pub fn confirm_settlement(&mut self, asset: AssetId, amount: Amount) -> Result<(), LedgerError> {
        let mut b = self.balance(asset);
        b.settling = sub(b.settling, amount, asset, "settling")?;
        b.available = b.available.checked_add(amount).ok_or(LedgerError::Overflow)?;
        self.balances.insert(asset, b);
        Ok(())
    }

    /// Undoes this account's side of a trade that will never settle: what the trade put in
    /// settling (`reclaimed`) leaves, what it took (`restored`: the buyer's quote with its fee,
    /// the seller's base) comes back as available. Both moves or neither: on an error nothing
    /// changed. The order's remaining lock is not touched; the void is about the trade only.
    pub fn void_fill(&mut self, reclaimed: (AssetId, Amount), restored: (AssetId, Amount)) -> Result<(), LedgerError> {
        let (out_asset, out) = reclaimed;
        let (in_asset, back) = restored;
        let mut taken = self.balance(out_asset);
        taken.settling = sub(taken.settling, out, out_asset, "settling")?;
        let mut given = if in_asset == out_asset { taken } else { self.balance(in_asset) };
        given.available = given.available.checked_add(back).ok_or(LedgerError::Overflow)?;
        given.total().ok_or(LedgerError::Overflow)?;
        if in_asset != out_asset {
            self.balances.insert(out_asset, taken);
        }
        self.balances.insert(in_asset, given);
        Ok(())
    }
}

/// Fees collected, per asset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeeAccount {
    collected: BTreeMap<AssetId, Amount>,
}

impl FeeAccount {
    pub fn collected(&self, asset: AssetId) -> Amount {
        self.collected.get(&asset).copied().unwrap_or_default()
    }

    /// Books both fees of a trade, in the market's quote asset.
    pub fn collect(&mut self, spec: &MarketSpec, trade: &Trade) -> Result<(), LedgerError> {
        let fees = trade.maker_fee.checked_add(trade.taker_fee).ok_or(LedgerError::Overflow)?;
        let entry = self.collected.entry(spec.quote).or_default();
        *entry = entry.checked_add(fees).ok_or(LedgerError::Overflow)?;
        Ok(())
    }
}

/// The lock a buy of `qty` lots at `limit` needs: notional plus the fee at `rate`.
fn buy_cost(spec: &MarketSpec, limit: PriceTicks, qty: QtyLots, rate: Bps) -> Result<Amount, LedgerError> {
    let notional = spec.notional(limit, qty).ok_or(LedgerError::Overflow)?;
    notional.checked_add(rate.fee_on(notional)).ok_or(LedgerError::Overflow)
}

fn sub(from: Amount, amount: Amount, asset: AssetId, bucket: &'static str) -> Result<Amount, LedgerError> {
    from.checked_sub(amount).ok_or(LedgerError::Underflow { asset, bucket })
}
