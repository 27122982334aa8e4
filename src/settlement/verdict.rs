//! What a refused `settleBatch` means for the batch: which trades to void and why, whether
//! the batch index moved under it, or whether it is a failure to retry. Pure: the contract's
//! custom errors name an order, a trade or a user by the batch's own indices, and the encoded
//! batch maps them back to trades.

use crate::chain::batch::{EncodedBatch, OrderKey};
use crate::chain::contract::HobExchangeErrors as E;
use crate::domain::OrderId;

use super::state::VoidReason;
use super::trades::{QueuedTrade, TradeKey};

/// One trade to void.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Void {
    pub key: TradeKey,
    pub reason: VoidReason,
    pub detail: String,
    /// The order at fault, when the contract named one.
    pub order: Option<OrderId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Void these trades; the rest of the batch settles without them.
    Void(Vec<Void>),
    /// The contract expects another batch index: another batch took this one's (a second
    /// operator, a batch sent twice). Nothing in the batch is at fault; send it again as
    /// index `expected`.
    Reindex { expected: u64 },
    /// Refused as a whole (paused, not an operator, ...): a failure, retried.
    Retry(String),
}

/// Reads the contract's error against the batch it refused (`trades` in batch order, as
/// encoded in `batch`).
pub fn verdict(error: &E, batch: &EncodedBatch, trades: &[&QueuedTrade]) -> Verdict {
    let using_order = |i: &alloy::primitives::U256, reason: VoidReason, name: &str| {
        let index = i.saturating_to::<usize>();
        let Some(key) = batch.orders.get(index) else {
            return Verdict::Retry(format!("{name} names order {index}, which the batch does not have"));
        };
        let voids = batch
            .trades_using(index)
            .filter_map(|t| trades.get(t))
            .map(|q| Void {
                key: q.key(),
                reason,
                detail: format!("{name}: order of {} nonce {}", key.trader, key.nonce),
                order: order_of(q, key),
            })
            .collect();
        Verdict::Void(voids)
    };
    let trade = |i: &alloy::primitives::U256, name: &str| {
        let index = i.saturating_to::<usize>();
        match trades.get(index) {
            Some(q) => Verdict::Void(vec![Void {
                key: q.key(),
                reason: VoidReason::TradeRefused,
                detail: name.to_owned(),
                order: None,
            }]),
            None => Verdict::Retry(format!("{name} names trade {index}, which the batch does not have")),
        }
    };
    match error {
        E::BadSignature(e) => using_order(&e.order, VoidReason::BadSignature, "BadSignature"),
        E::BadOrderEncoding(e) => using_order(&e.order, VoidReason::OrderRefused, "BadOrderEncoding"),
        E::OrderExpired(e) => using_order(&e.order, VoidReason::OrderExpired, "OrderExpired"),
        E::NonceInvalidated(e) => using_order(&e.order, VoidReason::NonceInvalidated, "NonceInvalidated"),
        E::BadTradeEncoding(e) => trade(&e.trade, "BadTradeEncoding"),
        E::MarketMismatch(e) => trade(&e.trade, "MarketMismatch"),
        E::SameSide(e) => trade(&e.trade, "SameSide"),
        E::PostOnlyTaker(e) => trade(&e.trade, "PostOnlyTaker"),
        E::PriceNotHonoured(e) => trade(&e.trade, "PriceNotHonoured"),
        E::Overfill(e) => trade(&e.trade, "Overfill"),
        E::FeeAboveCap(e) => trade(&e.trade, "FeeAboveCap"),
        E::InsufficientBalance(e) => {
            // Which trades debit the user in that token is the contract's netting; voiding
            // every trade of the user in the batch is what surely makes the rest settle.
            let user = e.user.0 .0;
            let voids = trades
                .iter()
                .filter(|q| q.trade.maker_user.0 == user || q.trade.taker_user.0 == user)
                .map(|q| Void {
                    key: q.key(),
                    reason: VoidReason::InsufficientVaultBalance,
                    detail: format!("InsufficientBalance: {} in token {}", e.user, e.token),
                    order: None,
                })
                .collect();
            Verdict::Void(voids)
        }
        E::BadBatchIndex(e) => Verdict::Reindex { expected: e.expected },
        other => Verdict::Retry(format!("{other:?}")),
    }
}

/// The exchange's id of the order `key` names in `trade`.
fn order_of(trade: &QueuedTrade, key: &OrderKey) -> Option<OrderId> {
    trade.party_of(key).map(|(_, order, _)| order)
}

#[cfg(test)]
mod tests {
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
}
