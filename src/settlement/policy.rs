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
mod tests {
    // Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
    use super::*;

    fn candidates(orders: &[[u32; 2]], queued_at_ms: u64) -> Vec<Candidate<u32>> {
        orders.iter().map(|o| Candidate { queued_at_ms, orders: *o }).collect()
    }

    #[test]
    fn nothing_pending_plans_nothing() {
        assert_eq!(BatchPolicy::default().plan::<u32>(&[], 1_000), None);
    }

    #[test]
    fn a_batch_that_is_not_full_waits_for_the_window() {
        let policy = BatchPolicy { window_ms: 200, ..BatchPolicy::default() };
        let pending = candidates(&[[1, 2], [3, 4]], 1_000);
        assert_eq!(policy.plan(&pending, 1_199), None);
        assert_eq!(policy.plan(&pending, 1_200), Some(2));
    }

    #[test]
    fn a_batch_full_by_count_goes_at_once_and_takes_no_more() {
        let policy = BatchPolicy { max_trades: 2, window_ms: 10_000, ..BatchPolicy::default() };
        let pending = candidates(&[[1, 2], [3, 4], [5, 6]], 1_000);
        assert_eq!(policy.plan(&pending, 1_000), Some(2));
        let exactly = candidates(&[[1, 2], [3, 4]], 1_000);
        assert_eq!(policy.plan(&exactly, 1_000), Some(2));
    }

    #[test]
    fn a_batch_full_by_gas_goes_at_once_and_shared_orders_are_counted_once() {
        let gas = GasModel { base: 100, per_order: 10, per_trade: 1 };
        // Two trades on four orders: 100 + 40 + 2 = 142; a third on a new pair would be 163.
        let policy = BatchPolicy { max_gas: 150, window_ms: 10_000, gas, ..BatchPolicy::default() };
        let pending = candidates(&[[1, 2], [3, 4], [5, 6]], 1_000);
        assert_eq!(policy.plan(&pending, 1_000), Some(2));
        // A third trade between orders already in the batch adds only its own 1 gas.
        let shared = candidates(&[[1, 2], [3, 4], [1, 4]], 1_000);
        assert_eq!(policy.plan(&shared, 1_000), None, "143 gas: not full, so it waits");
        assert_eq!(policy.plan(&shared, 20_000), Some(3));
    }

    #[test]
    fn one_trade_is_always_taken_even_if_the_model_says_it_is_too_big() {
        let gas = GasModel { base: 1_000, per_order: 1_000, per_trade: 1_000 };
        let policy = BatchPolicy { max_gas: 10, window_ms: 0, gas, ..BatchPolicy::default() };
        assert_eq!(policy.plan(&candidates(&[[1, 2], [3, 4]], 0), 0), Some(1));
    }

    #[test]
    fn the_gas_limit_leaves_a_margin_within_the_cap() {
        assert_eq!(gas_limit(100_000, 12_000_000), Some(130_000));
        assert_eq!(gas_limit(12_000_000, 12_000_000), Some(14_410_000));
        assert_eq!(gas_limit(14_000_000, 15_000_000), Some(TX_GAS_CAP));
        assert_eq!(gas_limit(12_000_001, 12_000_000), None);
        assert_eq!(gas_limit(TX_GAS_CAP + 1, u64::MAX), None);
    }

    #[test]
    fn the_price_is_the_quote_or_the_bump_whichever_is_higher_within_the_cap() {
        assert_eq!(gas_price(100, None, 1_000), Ok(100));
        assert_eq!(gas_price(100, Some(110), 1_000), Ok(110));
        assert_eq!(gas_price(120, Some(110), 1_000), Ok(120));
        assert_eq!(gas_price(100, Some(1_100), 1_000), Err(PriceCapped { needed: 1_100, cap: 1_000 }));
    }

    #[test]
    fn an_overdue_nonce_is_bumped_until_it_counts_as_stuck() {
        assert_eq!(on_overdue(1, 3), Overdue::Bump);
        assert_eq!(on_overdue(2, 3), Overdue::Bump);
        assert_eq!(on_overdue(3, 3), Overdue::Consume);
        assert_eq!(on_overdue(1, 0), Overdue::Consume, "a limit of 0 reads as 1");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_half_of_it_jittered() {
        let b = Backoff { base_ms: 100, max_ms: 1_000 };
        for (failures, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1_000), (60, 1_000), (u32::MAX, 1_000)] {
            let lo = (0..200).map(|j| b.delay_ms(failures, j)).min().unwrap();
            let hi = (0..2_000).map(|j| b.delay_ms(failures, j)).max().unwrap();
            assert_eq!((lo, hi), (full / 2, full), "after {failures} failures");
        }
        assert_eq!(b.delay_ms(1, 7), b.delay_ms(1, 7), "the same jitter gives the same wait");
    }
}
