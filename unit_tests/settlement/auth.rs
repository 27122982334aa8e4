//! Unit tests of `src/settlement/auth.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::chain::eip712::domain;
use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;

fn signed() -> SignedOrder {
    let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(3)).expect("a valid scalar");
    let order = Order {
        trader: key.address(),
        market: u32::MAX,
        side: 1,
        orderType: 0,
        timeInForce: 3,
        postOnly: true,
        price: u64::MAX,
        quantity: 9_007_199_254_740_993,
        maxFeeBps: 30,
        nonce: 7,
        expiry: 1_900_000_000,
    };
    SignedOrder::sign(&key, order, &domain(31_337, Address::repeat_byte(9))).expect("signs")
}

#[test]
fn a_signed_order_round_trips_through_its_text_exactly() {
    let original = signed();
    let text = encode_order_auth(&original);
    assert_eq!(decode_order_auth(&text), Ok(original.clone()));
    let value: Value = serde_json::from_str(text.as_str()).unwrap();
    assert_eq!(value["order"]["quantity"], "9007199254740993", "integers are decimal strings");
    assert_eq!(value["signature"].as_str().map(str::len), Some(2 + 2 * SIGNATURE_BYTES));
    let signer = original.signer(&domain(31_337, Address::repeat_byte(9))).unwrap();
    assert_eq!(signer, original.order.trader, "the decoded signature still recovers the trader");
}

#[test]
fn a_parity_bit_v_reads_as_27_or_28() {
    let original = signed();
    let mut value: Value = serde_json::from_str(encode_order_auth(&original).as_str()).unwrap();
    let mut bytes = original.signature.as_bytes();
    bytes[64] -= 27;
    value["signature"] = json!(format!("0x{}", alloy::hex::encode(bytes)));
    assert_eq!(decode_order_auth(&OrderAuth::new(value.to_string())), Ok(original));
}

#[test]
fn malformed_texts_are_typed_errors() {
    let good: Value = serde_json::from_str(encode_order_auth(&signed()).as_str()).unwrap();
    let with = |path: &[&str], v: Value| {
        let mut changed = good.clone();
        let mut at = &mut changed;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = v;
        decode_order_auth(&OrderAuth::new(changed.to_string()))
    };
    assert!(matches!(decode_order_auth(&OrderAuth::new("{")), Err(AuthError::Json(_))));
    assert_eq!(with(&["order"], json!(null)), Err(AuthError::Field("order")));
    assert_eq!(with(&["order", "trader"], json!("0x12")), Err(AuthError::Field("trader")));
    assert_eq!(with(&["order", "postOnly"], json!("yes")), Err(AuthError::Field("postOnly")));
    assert_eq!(with(&["order", "price"], json!(100)), Err(AuthError::Field("price")));
    assert_eq!(with(&["order", "side"], json!("256")), Err(AuthError::Integer { field: "side", value: "256".into() }));
    assert_eq!(with(&["order", "nonce"], json!("-1")), Err(AuthError::Integer { field: "nonce", value: "-1".into() }));
    assert_eq!(with(&["signature"], json!("0x1234")), Err(AuthError::Signature));
    assert_eq!(with(&["signature"], json!("zz")), Err(AuthError::Signature));
}
