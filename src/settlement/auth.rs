//! The text of a `domain::OrderAuth`: the user's signed order as the API verified it, carried
//! with the order to its market and with each of its trades to settlement.
//!
//! It is JSON with two fields: `order`, the EIP-712 `Order` exactly as a wallet signs it
//! (`chain::eip712::MessageJson`: the trader's address, every integer a decimal string), and
//! `signature`, the 65-byte `r || s || v` signature in `0x` hex (`v` 27 or 28; 0 or 1 are
//! read too). The API writes it with [`encode_order_auth`]; settlement reads it back with
//! [`decode_order_auth`] and puts the order on-chain, where the contract checks the signature
//! again. Decoding checks the shape only: who signed is the API's and the contract's question.
//!
//! ```json
//! {"order":{"trader":"0x…","market":"1","side":"0","orderType":"0","timeInForce":"0",
//!           "postOnly":false,"price":"100","quantity":"10","maxFeeBps":"30","nonce":"7",
//!           "expiry":"0"},
//!  "signature":"0x…130 hex digits…"}
//! ```

use alloy::primitives::{Address, Signature};
use serde_json::{json, Map, Value};

use crate::chain::eip712::{MessageJson, Order, SignedOrder};
use crate::domain::OrderAuth;

/// Bytes of an `r || s || v` signature.
pub const SIGNATURE_BYTES: usize = 65;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("signed order is not JSON: {0}")]
    Json(String),
    #[error("signed order: missing or malformed field {0:?}")]
    Field(&'static str),
    #[error("signed order: {field} {value:?} is not a decimal integer that fits")]
    Integer { field: &'static str, value: String },
    #[error("signed order: the signature must be {SIGNATURE_BYTES} bytes of 0x hex")]
    Signature,
}

/// The text of a signed order.
pub fn encode_order_auth(signed: &SignedOrder) -> OrderAuth {
    let signature = format!("0x{}", alloy::hex::encode(signed.signature.as_bytes()));
    let text = json!({ "order": signed.order.message_json(), "signature": signature });
    OrderAuth::new(text.to_string())
}

/// The signed order a text names.
pub fn decode_order_auth(auth: &OrderAuth) -> Result<SignedOrder, AuthError> {
    let value: Value = serde_json::from_str(auth.as_str()).map_err(|e| AuthError::Json(e.to_string()))?;
    let order = value.get("order").ok_or(AuthError::Field("order"))?;
    let signature = value.get("signature").and_then(Value::as_str).ok_or(AuthError::Field("signature"))?;
    decode_signed_order(order, signature)
}

/// The signed order from its two parts as a request carries them (the `order` message and the
/// hex signature): the same checks and errors as [`decode_order_auth`], without first writing
/// the parts out as text to parse them back (the order path did that for every order).
pub fn decode_signed_order(order: &Value, signature: &str) -> Result<SignedOrder, AuthError> {
    let order = order.as_object().ok_or(AuthError::Field("order"))?;
    Ok(SignedOrder { order: order_from_json(order)?, signature: signature_from_hex(signature)? })
}

fn order_from_json(o: &Map<String, Value>) -> Result<Order, AuthError> {
    let trader = o.get("trader").and_then(Value::as_str).ok_or(AuthError::Field("trader"))?;
    let post_only = o.get("postOnly").and_then(Value::as_bool).ok_or(AuthError::Field("postOnly"))?;
    Ok(Order {
        trader: trader.parse::<Address>().map_err(|_| AuthError::Field("trader"))?,
        market: integer(o, "market")?,
        side: integer(o, "side")?,
        orderType: integer(o, "orderType")?,
        timeInForce: integer(o, "timeInForce")?,
        postOnly: post_only,
        price: integer(o, "price")?,
        quantity: integer(o, "quantity")?,
        maxFeeBps: integer(o, "maxFeeBps")?,
        nonce: integer(o, "nonce")?,
        expiry: integer(o, "expiry")?,
    })
}

/// A field holding a decimal string (as wallets are given it: JSON numbers lose precision
/// above 2^53) that fits `T`.
pub(crate) fn integer<T: std::str::FromStr>(o: &Map<String, Value>, field: &'static str) -> Result<T, AuthError> {
    let text = o.get(field).and_then(Value::as_str).ok_or(AuthError::Field(field))?;
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let bad = || AuthError::Integer { field, value: text.chars().take(40).collect() };
    if !digits {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

pub(crate) fn signature_from_hex(text: &str) -> Result<Signature, AuthError> {
    let hex = text.strip_prefix("0x").ok_or(AuthError::Signature)?;
    let bytes = alloy::hex::decode(hex).map_err(|_| AuthError::Signature)?;
    if bytes.len() != SIGNATURE_BYTES {
        return Err(AuthError::Signature);
    }
    // Reads v as 27/28 (wallets) or as the parity bit itself (some signers).
    Signature::try_from(bytes.as_slice()).map_err(|_| AuthError::Signature)
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/auth.rs"]
mod tests;
