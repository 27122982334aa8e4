//! Unit tests of `src/settlement/trades.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::chain::eip712::{domain, Order};
use crate::chain::order::{to_signed_order, SigningTerms};
use crate::domain::{Bps, NewOrder, OrderType, PriceTicks, QtyLots, StpMode, TimeInForce};
use crate::settlement::auth::encode_order_auth;
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;

pub(crate) fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("BTC-USDT").unwrap(),
        base: AssetId::new("BTC").unwrap(),
        quote: AssetId::new("USDT").unwrap(),
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000_000),
        min_notional: Amount(0),
        maker_fee: Bps(10),
        taker_fee: Bps(20),
    }
}

pub(crate) fn key(n: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(n)).expect("a valid scalar")
}

pub(crate) fn user_of(n: u8) -> UserId {
    UserId(key(n).address().0 .0)
}

/// The signed order of `order` by key `n`, nonce = the order id.
pub(crate) fn auth(n: u8, order: &NewOrder) -> OrderAuth {
    let terms = SigningTerms { market: 1, max_fee: Bps(20), nonce: order.id.0 };
    let signed: Order = to_signed_order(order, terms).expect("signable");
    encode_order_auth(&SignedOrder::sign(&key(n), signed, &domain(31_337, Address::ZERO)).expect("signs"))
}

fn order(id: u64, n: u8, side: Side) -> NewOrder {
    NewOrder {
        id: OrderId(id),
        user: user_of(n),
        side,
        order_type: OrderType::Limit { price: PriceTicks(100) },
        qty: QtyLots(10),
        tif: TimeInForce::Gtc,
        post_only: false,
        stp: StpMode::ExpireMaker,
    }
}

/// Trade `id`: key `maker`'s sell (order 10 + id) taken by key `taker`'s buy (order 20 + id)
/// of 4 lots at 100: notional 4,000, maker fee 4, taker fee 8.
pub(crate) fn queued(id: u64, maker: u8, taker: u8) -> QueuedTrade {
    let (sell, buy) = (order(10 + id, maker, Side::Sell), order(20 + id, taker, Side::Buy));
    let trade = Trade {
        id: TradeId(id),
        maker_order: sell.id,
        maker_user: sell.user,
        taker_order: buy.id,
        taker_user: buy.user,
        taker_side: Side::Buy,
        price: PriceTicks(100),
        qty: QtyLots(4),
        base_amount: Amount(4_000),
        quote_amount: Amount(4_000),
        maker_fee: Amount(4),
        taker_fee: Amount(8),
    };
    QueuedTrade { market: spec().id, trade, maker_auth: Some(auth(maker, &sell)), taker_auth: Some(auth(taker, &buy)) }
}

#[test]
fn a_trade_goes_on_chain_with_both_signed_orders_and_the_market_rates() {
    let q = queued(1, 1, 2);
    let t = q.to_settle(&spec()).unwrap();
    assert_eq!((t.price, t.qty, t.maker_fee, t.taker_fee), (PriceTicks(100), QtyLots(4), Bps(10), Bps(20)));
    assert_eq!(t.maker.order.trader.0 .0, user_of(1).0);
    assert_eq!(t.taker.order.nonce, 21);
    assert_eq!(q.key(), TradeKey { market: spec().id, trade: TradeId(1) });
}

#[test]
fn each_party_receives_into_settling_what_settlement_makes_available() {
    let [buyer, seller] = queued(1, 1, 2).parties(&spec());
    assert_eq!((buyer.user, buyer.order, buyer.receives), (user_of(2), OrderId(21), (spec().base, Amount(4_000))));
    assert_eq!((seller.user, seller.receives), (user_of(1), (spec().quote, Amount(4_000 - 4))));
}

#[test]
fn a_trade_that_cannot_be_settled_says_why() {
    let mut unsigned = queued(1, 1, 2);
    unsigned.maker_auth = None;
    assert_eq!(unsigned.to_settle(&spec()), Err(Unsettleable::Unsigned("maker")));
    let mut garbled = queued(1, 1, 2);
    garbled.taker_auth = Some(OrderAuth::new("{"));
    assert!(matches!(garbled.to_settle(&spec()), Err(Unsettleable::BadAuth { role: "taker", .. })));
    let mut swapped = queued(1, 1, 2);
    swapped.taker_auth = swapped.maker_auth.clone();
    assert_eq!(swapped.to_settle(&spec()), Err(Unsettleable::WrongTrader("taker")));
    let mut other_fees = queued(1, 1, 2);
    other_fees.trade.taker_fee = Amount(9);
    assert_eq!(other_fees.to_settle(&spec()), Err(Unsettleable::FeeMismatch));
}

#[test]
fn a_signed_order_names_its_party() {
    let q = queued(1, 1, 2);
    let [maker, taker] = q.order_keys().unwrap();
    assert_eq!(q.party_of(&maker), Some((user_of(1), OrderId(11), Side::Sell)));
    assert_eq!(q.party_of(&taker), Some((user_of(2), OrderId(21), Side::Buy)));
    assert_eq!(q.party_of(&OrderKey { trader: Address::ZERO, nonce: 1 }), None);
}
