//! Unit tests of `src/settlement/policy.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

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
