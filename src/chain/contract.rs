//! Rust bindings of the committed contract artifacts (`contracts/out/*.json`, compiled by
//! `contracts/compile.js`), and the reading of the exchange's revert reasons. The artifacts
//! carry the bytecode too, so `HobExchange::deploy` needs no compiler.

use alloy::primitives::Address;

use super::eip712;

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    HobExchange,
    "contracts/out/HobExchange.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    TestToken,
    "contracts/out/TestToken.json"
);

pub use HobExchange::HobExchangeErrors;

impl From<eip712::Order> for HobExchange::Order {
    fn from(o: eip712::Order) -> HobExchange::Order {
        HobExchange::Order {
            trader: o.trader,
            market: o.market,
            side: o.side,
            orderType: o.orderType,
            timeInForce: o.timeInForce,
            postOnly: o.postOnly,
            price: o.price,
            quantity: o.quantity,
            maxFeeBps: o.maxFeeBps,
            nonce: o.nonce,
            expiry: o.expiry,
        }
    }
}

/// What a reverted `settleBatch` blames, in the batch's own indices (see
/// [`super::batch::EncodedBatch`]): the operator voids exactly that and resubmits the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettlementBlame {
    /// The order at this index may never settle (bad signature, expired, nonce invalidated,
    /// badly encoded): void every trade that uses it.
    Order(usize),
    /// This trade breaks one of its orders' terms (price, quantity, fee cap, sides, market).
    Trade(usize),
    /// The user's net debit in this token exceeds their vault balance.
    Balance { user: Address, token: Address },
    /// The chain expected another batch index: this batch (or an earlier one) already
    /// settled, or one is missing. Nothing in the batch is at fault.
    BatchIndex { expected: u64, got: u64 },
    /// The batch as a whole was refused (paused, not an operator, malformed, unknown market).
    Batch,
}

/// Classifies a decoded exchange error.
pub fn blame(error: &HobExchangeErrors) -> SettlementBlame {
    use HobExchangeErrors as E;
    let index = |i: &alloy::primitives::U256| i.saturating_to::<usize>();
    match error {
        E::BadSignature(e) => SettlementBlame::Order(index(&e.order)),
        E::OrderExpired(e) => SettlementBlame::Order(index(&e.order)),
        E::NonceInvalidated(e) => SettlementBlame::Order(index(&e.order)),
        E::BadOrderEncoding(e) => SettlementBlame::Order(index(&e.order)),
        E::BadTradeEncoding(e) => SettlementBlame::Trade(index(&e.trade)),
        E::MarketMismatch(e) => SettlementBlame::Trade(index(&e.trade)),
        E::SameSide(e) => SettlementBlame::Trade(index(&e.trade)),
        E::PostOnlyTaker(e) => SettlementBlame::Trade(index(&e.trade)),
        E::PriceNotHonoured(e) => SettlementBlame::Trade(index(&e.trade)),
        E::Overfill(e) => SettlementBlame::Trade(index(&e.trade)),
        E::FeeAboveCap(e) => SettlementBlame::Trade(index(&e.trade)),
        E::InsufficientBalance(e) => SettlementBlame::Balance { user: e.user, token: e.token },
        E::BadBatchIndex(e) => SettlementBlame::BatchIndex { expected: e.expected, got: e.got },
        _ => SettlementBlame::Batch,
    }
}

/// The exchange's custom error inside a failed call or transaction, if that is why it failed
/// (other failures: transport, gas, a node refusing the transaction, give `None`).
pub fn decode_revert(error: &alloy::contract::Error) -> Option<HobExchangeErrors> {
    error.as_decoded_interface_error::<HobExchangeErrors>()
}

#[cfg(test)]
#[path = "../../unit_tests/chain/contract.rs"]
mod tests;
