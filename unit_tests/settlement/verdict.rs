//! Unit tests of `src/settlement/verdict.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::chain::batch::encode_batch;
use crate::chain::contract::HobExchange;
use crate::settlement::trades::tests::{queued, spec, user_of};
use alloy::primitives::{Address, U256};

fn setup() -> (Vec<QueuedTrade>, EncodedBatch) {
    // Trades 1 and 2 share the maker (key 1); trade 3 is between keys 3 and 4.
    let mut second = queued(2, 1, 2);
    second.maker_auth = queued(1, 1, 2).maker_auth;
    second.trade.maker_order = queued(1, 1, 2).trade.maker_order;
    let trades = vec![queued(1, 1, 2), second, queued(3, 3, 4)];
    let settle: Vec<_> = trades.iter().map(|q| q.to_settle(&spec()).unwrap()).collect();
    (trades.clone(), encode_batch(&settle).unwrap())
}

fn keys(v: &Verdict) -> Vec<(u64, VoidReason, Option<u64>)> {
    match v {
        Verdict::Void(voids) => voids.iter().map(|v| (v.key.trade.0, v.reason, v.order.map(|o| o.0))).collect(),
        other => panic!("expected voids, got {other:?}"),
    }
}

#[test]
fn a_refused_order_voids_every_trade_that_uses_it() {
    let (trades, batch) = setup();
    let refs: Vec<&QueuedTrade> = trades.iter().collect();
    let maker = batch.orders.iter().position(|k| k.trader.0 .0 == user_of(1).0).unwrap();
    let error = E::BadSignature(HobExchange::BadSignature { order: U256::from(maker) });
    assert_eq!(
        keys(&verdict(&error, &batch, &refs)),
        vec![(1, VoidReason::BadSignature, Some(11)), (2, VoidReason::BadSignature, Some(11))]
    );
    let taker3 = batch.orders.iter().position(|k| k.trader.0 .0 == user_of(4).0).unwrap();
    let error = E::NonceInvalidated(HobExchange::NonceInvalidated { order: U256::from(taker3) });
    assert_eq!(keys(&verdict(&error, &batch, &refs)), vec![(3, VoidReason::NonceInvalidated, Some(23))]);
}

#[test]
fn a_refused_trade_voids_that_trade_only() {
    let (trades, batch) = setup();
    let refs: Vec<&QueuedTrade> = trades.iter().collect();
    let error = E::Overfill(HobExchange::Overfill { trade: U256::from(1) });
    assert_eq!(keys(&verdict(&error, &batch, &refs)), vec![(2, VoidReason::TradeRefused, None)]);
}

#[test]
fn a_short_vault_voids_the_users_trades() {
    let (trades, batch) = setup();
    let refs: Vec<&QueuedTrade> = trades.iter().collect();
    let user = Address::from(user_of(3).0);
    let error = E::InsufficientBalance(HobExchange::InsufficientBalance { user, token: Address::ZERO });
    assert_eq!(keys(&verdict(&error, &batch, &refs)), vec![(3, VoidReason::InsufficientVaultBalance, None)]);
}

#[test]
fn a_moved_batch_index_reindexes_and_a_whole_batch_refusal_retries() {
    let (trades, batch) = setup();
    let refs: Vec<&QueuedTrade> = trades.iter().collect();
    let error = E::BadBatchIndex(HobExchange::BadBatchIndex { expected: 7, got: 6 });
    assert_eq!(verdict(&error, &batch, &refs), Verdict::Reindex { expected: 7 });
    let error = E::IsPaused(HobExchange::IsPaused {});
    assert!(matches!(verdict(&error, &batch, &refs), Verdict::Retry(_)));
    let error = E::BadSignature(HobExchange::BadSignature { order: U256::from(99) });
    assert!(matches!(verdict(&error, &batch, &refs), Verdict::Retry(_)), "an index out of range is no blame");
}
