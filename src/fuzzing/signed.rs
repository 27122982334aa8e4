//! Signed orders: the `OrderAuth` text carried from the API to settlement, and the EIP-712
//! `Order` inside it. Decoding returns a typed error or an order that re-encodes to itself;
//! recovering its signer and turning it into a domain order never panic, and a domain order
//! that came from a signed order signs back to the same fields.

use alloy::primitives::Address;

use crate::chain::order::{to_new_order, to_signed_order, SigningTerms};
use crate::domain::{Bps, OrderAuth, OrderId, StpMode};
use crate::settlement::auth::{decode_order_auth, encode_order_auth};

pub fn signed_order(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(signed) = decode_order_auth(&OrderAuth::new(text)) else { return };
    let again = decode_order_auth(&encode_order_auth(&signed));
    assert_eq!(again.as_ref(), Ok(&signed), "a decoded signed order re-encodes to itself");

    let domain = crate::chain::eip712::domain(56, Address::repeat_byte(0x11));
    // Any signer, or a typed error: the bytes are the attacker's.
    let _ = signed.signer(&domain);

    let order = &signed.order;
    let Ok(domain_order) = to_new_order(order, OrderId(1), StpMode::ExpireTaker) else { return };
    let terms = SigningTerms { market: order.market, max_fee: Bps(order.maxFeeBps), nonce: order.nonce };
    let Ok(back) = to_signed_order(&domain_order, terms) else {
        panic!("a domain order made from a signed order cannot be signed again: {domain_order:?}")
    };
    assert_eq!(
        (back.trader, back.side, back.orderType, back.timeInForce, back.postOnly, back.quantity),
        (order.trader, order.side, order.orderType, order.timeInForce, order.postOnly, order.quantity),
        "a signed order's terms survive the trip through the domain"
    );
}
