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
#[path = "../../unit_tests/settlement/verdict.rs"]
mod tests;
