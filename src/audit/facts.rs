//! What replaying the streams leaves for the cross-stream checks: every trade as its market
//! recorded it, every fill and void as each user recorded it, money in and out, the users'
//! final balances, and what the settlement operators confirmed or voided. Each fact keeps the
//! stream and version it came from, so a violation can name them.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::domain::{AssetId, OrderId, Trade, UserId};
use crate::settlement::TradeKey;

/// Where a fact was read. The name is shared (a stream records one fact per trade, fill and
/// void: hundreds of thousands of them, which owned names made a large part of the audit).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct At {
    pub stream: Arc<str>,
    pub version: u64,
}

impl At {
    pub fn new(stream: &str, version: u64) -> At {
        At { stream: Arc::from(stream), version }
    }
}

/// One user's side of a trade, as its stream recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fill {
    pub at: At,
    pub user: UserId,
    pub trade: Trade,
    /// The fee this side paid, in `fee_asset` (the market's quote).
    pub fee: u128,
    pub fee_asset: AssetId,
}

/// One user's void of its side of a trade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserVoid {
    pub at: At,
    pub user: UserId,
    pub reclaimed: (AssetId, u128),
    pub restored: (AssetId, u128),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Every trade in a market stream.
    pub trades: BTreeMap<TradeKey, (At, Trade)>,
    /// Fills per (trade, order): exactly one each is expected. Looked up once per trade side
    /// and never walked in an order a report shows, so hashed.
    pub fills: FxHashMap<(TradeKey, OrderId), Vec<Fill>>,
    /// Voids per (trade, order), from user streams.
    pub user_voids: BTreeMap<(TradeKey, OrderId), Vec<UserVoid>>,
    pub deposits: BTreeMap<AssetId, u128>,
    pub withdrawals: BTreeMap<AssetId, u128>,
    /// Per user and asset: deposits and withdrawals (for settled balances).
    pub user_deposits: BTreeMap<(UserId, AssetId), u128>,
    pub user_withdrawals: BTreeMap<(UserId, AssetId), u128>,
    /// Sum over users of available + locked + settling, after their last event.
    pub balances: BTreeMap<AssetId, u128>,
    /// Trades in a `SettlementConfirmed` batch, with every place they were confirmed.
    pub confirmed: BTreeMap<TradeKey, Vec<At>>,
    /// Trades an operator voided.
    pub operator_voids: BTreeMap<TradeKey, Vec<(At, Trade)>>,
}

impl Facts {
    /// Adds the facts another lane gathered from other streams. Sums that overflow are
    /// conservation findings, as they would have been in one lane.
    pub fn merge(&mut self, mut other: Facts) -> Result<(), String> {
        // The big maps: the smaller goes into the larger (the first lane's into an empty one
        // costs nothing). Which one ends up first in a key's list does not matter: a check
        // that reports duplicates orders them by where they were read.
        if self.trades.len() < other.trades.len() {
            std::mem::swap(&mut self.trades, &mut other.trades);
        }
        self.trades.extend(other.trades);
        if self.fills.len() < other.fills.len() {
            std::mem::swap(&mut self.fills, &mut other.fills);
        }
        for (key, fills) in other.fills {
            self.fills.entry(key).or_default().extend(fills);
        }
        for (key, voids) in other.user_voids {
            self.user_voids.entry(key).or_default().extend(voids);
        }
        for (key, ats) in other.confirmed {
            self.confirmed.entry(key).or_default().extend(ats);
        }
        for (key, voids) in other.operator_voids {
            self.operator_voids.entry(key).or_default().extend(voids);
        }
        for (map, more) in [
            (&mut self.deposits, other.deposits),
            (&mut self.withdrawals, other.withdrawals),
            (&mut self.balances, other.balances),
        ] {
            for (asset, amount) in more {
                Facts::add(map, asset, amount)?;
            }
        }
        for (map, more) in
            [(&mut self.user_deposits, other.user_deposits), (&mut self.user_withdrawals, other.user_withdrawals)]
        {
            for (key, amount) in more {
                let entry = map.entry(key).or_default();
                *entry = entry.saturating_add(amount);
            }
        }
        Ok(())
    }

    pub fn add(map: &mut BTreeMap<AssetId, u128>, asset: AssetId, amount: u128) -> Result<(), String> {
        let entry = map.entry(asset).or_default();
        *entry = entry.checked_add(amount).ok_or_else(|| format!("{asset} total overflows u128"))?;
        Ok(())
    }
}
