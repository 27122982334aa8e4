//! The operator's pure policies: when a batch is due and how many trades it takes, the gas a
//! transaction may use, the price it pays, what to do when a transaction is overdue, and how
//! long to wait after a failure. No clock and no randomness: the caller passes the time and
//! the jitter, so every decision replays exactly.

use std::collections::BTreeSet;

use crate::chain::batch::MAX_TRADES;

/// The most gas one transaction may use: BSC's per-transaction cap (2^24, also EIP-7825's).
pub const TX_GAS_CAP: u64 = 16_777_216;

/// A conservative upper bound of `settleBatch`'s gas, used to size batches before asking the
/// node. Measured on anvil (`benches/settlement_latency.rs`, BENCHMARKS.md): 201k gas for one
/// trade between two new traders, 453k for three trades between six, 247k for three once the
/// traders' balance and fill slots exist. The node's estimate decides the gas limit; the model
/// only keeps batches from being planned too big to estimate (a batch the estimate finds too
/// big is halved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GasModel {
    /// The transaction, the call, the batch index and the token table.
    pub base: u64,
    /// Each distinct order: its calldata, signature recovery and fill slot.
    pub per_order: u64,
    /// Each trade: its calldata, checks and netting.
    pub per_trade: u64,
}

impl Default for GasModel {
    fn default() -> GasModel {
        GasModel { base: 80_000, per_order: 60_000, per_trade: 20_000 }
    }
}

impl GasModel {
    pub fn estimate(&self, orders: usize, trades: usize) -> u64 {
        self.base
            .saturating_add(self.per_order.saturating_mul(orders as u64))
            .saturating_add(self.per_trade.saturating_mul(trades as u64))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most trades in one batch.
    pub max_trades: usize,
    /// Most gas one batch may use (below [`TX_GAS_CAP`], with room for the estimate's margin).
    pub max_gas: u64,
    /// A batch that is not full waits this long after its oldest trade arrived, so trades
    /// arriving close together share one transaction.
    pub window_ms: u64,
    pub gas: GasModel,
}

impl Default for BatchPolicy {
    fn default() -> BatchPolicy {
        BatchPolicy { max_trades: 100, max_gas: 12_000_000, window_ms: 200, gas: GasModel::default() }
    }
}

/// A trade waiting for a batch, as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate<K> {
    pub queued_at_ms: u64,
    /// Its two orders (an order shared by several trades is sent, and paid for, once).
    pub orders: [K; 2],
}

impl BatchPolicy {
    /// How many trades from the front of `pending` the next batch takes, if one is due at
    /// `now_ms`: it is due once it is full (by count or by gas) or its oldest trade has
    /// waited the window.
    pub fn plan<K: Ord + Clone>(&self, pending: &[Candidate<K>], now_ms: u64) -> Option<usize> {
        let first = pending.first()?;
        let max_trades = self.max_trades.clamp(1, MAX_TRADES);
        let mut orders = BTreeSet::new();
        let mut taken = 0;
        for candidate in pending.iter().take(max_trades) {
            let mut with = orders.clone();
            with.extend(candidate.orders.iter().cloned());
            if taken > 0 && self.gas.estimate(with.len(), taken + 1) > self.max_gas {
                break;
            }
            orders = with;
            taken += 1;
        }
        let full = taken < pending.len() || taken == max_trades;
        let waited = now_ms.saturating_sub(first.queued_at_ms) >= self.window_ms;
        (full || waited).then_some(taken)
    }
}

/// The gas limit for a transaction the node estimated at `estimate`: a fifth more and a
/// little, since state can change between the estimate and the block, within the cap. None
/// if the estimate itself does not fit under `max_gas` (the batch must shrink).
pub fn gas_limit(estimate: u64, max_gas: u64) -> Option<u64> {
    if estimate > max_gas.min(TX_GAS_CAP) {
        return None;
    }
    Some(estimate.saturating_add(estimate / 5).saturating_add(10_000).min(TX_GAS_CAP))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a price of {needed} wei per gas is needed, above the configured cap of {cap}")]
pub struct PriceCapped {
    pub needed: u128,
    pub cap: u128,
}

/// The gas price to sign with: the node's quote, at least `floor` (a replacement's bump),
/// never above `cap`.
pub fn gas_price(quoted: u128, floor: Option<u128>, cap: u128) -> Result<u128, PriceCapped> {
    let needed = quoted.max(floor.unwrap_or(0));
    if needed > cap {
        return Err(PriceCapped { needed, cap });
    }
    Ok(needed)
}

/// What to do about a transaction that outlived the receipt timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overdue {
    /// Send the same call again at the same nonce, paying more.
    Bump,
    /// The nonce is stuck: consume it with a zero-value self-transfer and send the call
    /// again at a fresh nonce.
    Consume,
}

/// A nonce that has taken `attempts` transactions without any being mined is stuck once
/// that reaches `stuck_after`.
pub fn on_overdue(attempts: usize, stuck_after: u32) -> Overdue {
    if attempts >= stuck_after.max(1) as usize {
        Overdue::Consume
    } else {
        Overdue::Bump
    }
}

/// Waits between retries after failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { base_ms: 500, max_ms: 30_000 }
    }
}

impl Backoff {
    /// The wait after the `failures`-th failure in a row: doubling from `base_ms` up to
    /// `max_ms`, then "equal jitter": half of it fixed, half drawn from `jitter` (any random
    /// number), so operators that failed together do not all retry at the same instant.
    pub fn delay_ms(&self, failures: u32, jitter: u64) -> u64 {
        let doublings = failures.saturating_sub(1).min(63);
        let full = self.base_ms.saturating_mul(1u64 << doublings).min(self.max_ms);
        let half = full / 2;
        half + jitter % (full - half + 1)
    }
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/policy.rs"]
mod tests;
