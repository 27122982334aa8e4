//! Unit tests of `src/client/orders.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps: a failure should fail the test.
use super::*;
use alloy::primitives::Address;
use std::str::FromStr;

fn btc_usdt() -> MarketTerms {
    MarketTerms {
        market: "BTC-USDT".into(),
        base: "BTC".into(),
        quote: "USDT".into(),
        domain: eip712::domain(31337, Address::repeat_byte(7)),
        chain_market_id: 1,
        max_fee_bps: 20,
        tick_size: Decimal::from_str("0.01").unwrap(),
        lot_size: Decimal::from_str("0.0001").unwrap(),
        min_qty: Decimal::from_str("0.0001").unwrap(),
        min_notional: Decimal::ZERO,
    }
}

#[test]
fn given_a_limit_buy_when_signed_then_the_request_and_the_signed_order_say_the_same_and_the_key_signed_it() {
    let (terms, key) = (btc_usdt(), PrivateKeySigner::random());
    let order = LimitOrder {
        side: WireSide::Buy,
        price_ticks: 10_000,
        qty_lots: 100,
        tif: WireTif::Ioc,
        nonce: 7,
        client_order_id: Some("t1".into()),
    };
    let request = signed_place(&terms, &key, &order).unwrap();
    assert_eq!((request.price.as_deref(), request.qty.as_str(), request.nonce), (Some("100"), "0.01", 7));
    let signed = request.signed_order.unwrap();
    let message = &signed.order;
    assert_eq!(message["trader"], key.address().to_checksum(None));
    assert_eq!((message["side"].as_str(), message["timeInForce"].as_str()), (Some("0"), Some("1")));
    assert_eq!((message["price"].as_str(), message["quantity"].as_str()), (Some("10000"), Some("100")));
    assert_eq!((message["nonce"].as_str(), message["maxFeeBps"].as_str()), (Some("7"), Some("20")));
    let order = Order {
        trader: key.address(),
        market: 1,
        side: 0,
        orderType: 0,
        timeInForce: 1,
        postOnly: false,
        price: 10_000,
        quantity: 100,
        maxFeeBps: 20,
        nonce: 7,
        expiry: 0,
    };
    let signature: alloy::primitives::Signature = signed.signature.parse().unwrap();
    assert_eq!(eip712::recover_signer(&order, &terms.domain, &signature).unwrap(), key.address());
}

#[test]
fn given_a_gtd_order_when_signed_then_it_is_refused() {
    let order = LimitOrder {
        side: WireSide::Sell,
        price_ticks: 1,
        qty_lots: 1,
        tif: WireTif::Gtd,
        nonce: 1,
        client_order_id: None,
    };
    assert!(matches!(signed_place(&btc_usdt(), &PrivateKeySigner::random(), &order), Err(ClientError::Invalid(_))));
}

#[test]
fn given_prices_and_sizes_when_put_on_the_grid_then_only_exact_multiples_pass() {
    let terms = btc_usdt();
    let d = |s: &str| Decimal::from_str(s).unwrap();
    assert_eq!(terms.ticks(d("100")).unwrap(), 10_000);
    assert_eq!(terms.lots(d("0.01")).unwrap(), 100);
    assert!(terms.ticks(d("100.001")).is_err(), "off the grid");
    assert!(terms.lots(d("0")).is_err(), "not positive");
    assert!(terms.lots(d("-1")).is_err(), "not positive");
}
