//! Signed order entry: the checks between a request that carries an EIP-712 `Order` and the
//! engine. The order the request describes is rebuilt in its signed form
//! (`chain::order::to_signed_order`) and compared field by field with what was signed, so a
//! mismatch is named rather than surfacing as "wrong signer"; then the signer is recovered
//! and must be the trader or an agent the trader authorised. Only then is the signed text
//! (`settlement::auth`) attached to the order, to travel with it to settlement, where the
//! contract checks the same signature again.
//!
//! Replay is the engine's question: the order's nonce is the request's nonce, and the user's
//! actor refuses a used one (`nonce_used`) atomically with placing the order.

use alloy::sol_types::Eip712Domain;

use crate::api::catalog::MarketEntry;
use crate::api::error::ApiError;
use crate::api::sessions::Sessions;
use crate::api::wire::SignedOrderWire;
use crate::chain::eip712::Order;
use crate::chain::order::{to_signed_order, SigningTerms};
use crate::domain::{Bps, NewOrder, OrderAuth, OrderId, OrderType, PriceTicks, QtyLots, UserId};
use crate::engine::PlaceOrder;
use crate::settlement::auth::{decode_signed_order, encode_order_auth};

/// What the server signs orders against.
pub struct SigningContext<'a> {
    pub domain: &'a Eip712Domain,
    pub sessions: &'a Sessions,
    pub now_s: u64,
}

/// Checks `signed` against the order `terms` that `user` asked for in `market`; returns the
/// signed text to attach to the order.
pub fn verify_order(
    ctx: &SigningContext<'_>,
    user: UserId,
    market: &MarketEntry,
    terms: &PlaceOrder,
    signed: &SignedOrderWire,
) -> Result<OrderAuth, ApiError> {
    let asked = NewOrder {
        id: OrderId(0),
        user,
        side: terms.side,
        order_type: terms.order_type,
        qty: terms.qty,
        tif: terms.tif,
        post_only: terms.post_only,
        stp: terms.stp,
    };
    verify_signed(ctx, user, market, &asked, terms.nonce, signed)
}

/// Checks a signed amend's new order: it must be `open` (the order as placed: same market,
/// side, type, time in force, post-only, expiry, trader) at the new `price` with the new open
/// quantity `qty` as its `quantity` and `nonce` as its nonce. The contract fills each signed
/// order at most to its `quantity`, counted per nonce, so a fresh nonce signed for the open
/// remainder is exactly what the trades after the amend may fill.
pub fn verify_amend(
    ctx: &SigningContext<'_>,
    market: &MarketEntry,
    open: &NewOrder,
    (price, qty, nonce): (PriceTicks, QtyLots, u64),
    signed: &SignedOrderWire,
) -> Result<OrderAuth, ApiError> {
    let asked = NewOrder { order_type: OrderType::Limit { price }, qty, ..*open };
    verify_signed(ctx, open.user, market, &asked, nonce, signed)
}

/// The checks shared by placements and amends: expiry, fee cap, every signed field against
/// `asked`, then the signer.
fn verify_signed(
    ctx: &SigningContext<'_>,
    user: UserId,
    market: &MarketEntry,
    asked: &NewOrder,
    nonce: u64,
    signed: &SignedOrderWire,
) -> Result<OrderAuth, ApiError> {
    let signed = decode_signed_order(&signed.order, &signed.signature)
        .map_err(|e| ApiError::bad_request("malformed_signed_order", e.to_string()))?;
    let order = &signed.order;
    if order.expiry != 0 && order.expiry <= ctx.now_s {
        return Err(ApiError::bad_request(
            "order_expired",
            format!("the signed order expired at {} s; now is {} s", order.expiry, ctx.now_s),
        ));
    }
    let fee_cap = market.def.spec.maker_fee.0.max(market.def.spec.taker_fee.0);
    if order.maxFeeBps < fee_cap {
        return Err(ApiError::bad_request(
            "fee_cap_too_low",
            format!("maxFeeBps {} is below the market's fee of {fee_cap} bps", order.maxFeeBps),
        ));
    }
    let signing_terms = SigningTerms { market: market.def.chain_market_id, max_fee: Bps(order.maxFeeBps), nonce };
    let expected =
        to_signed_order(asked, signing_terms).map_err(|e| ApiError::bad_request("unsignable_order", e.to_string()))?;
    if let Some((field, signed_value, asked_value)) = first_difference(order, &expected) {
        return Err(ApiError::bad_request(
            "signed_field_mismatch",
            format!("the signed {field} is {signed_value}, the request's is {asked_value}"),
        ));
    }
    let signer = signed.signer(ctx.domain).map_err(|e| ApiError::unauthorized_code("bad_signature", e.to_string()))?;
    if signer != order.trader && !ctx.sessions.is_agent(user, signer, ctx.now_s) {
        return Err(ApiError::forbidden(
            "wrong_signer",
            format!("signed by {signer}, which is neither {user} nor an agent it authorised"),
        ));
    }
    Ok(encode_order_auth(&signed))
}

/// The first field where the signed order and the requested one differ, with both values.
/// `maxFeeBps` is the signer's bound, checked against the market's fees instead.
fn first_difference(signed: &Order, asked: &Order) -> Option<(&'static str, String, String)> {
    let fields: [(&'static str, String, String); 10] = [
        ("trader", signed.trader.to_string(), asked.trader.to_string()),
        ("market", signed.market.to_string(), asked.market.to_string()),
        ("side", signed.side.to_string(), asked.side.to_string()),
        ("orderType", signed.orderType.to_string(), asked.orderType.to_string()),
        ("timeInForce", signed.timeInForce.to_string(), asked.timeInForce.to_string()),
        ("postOnly", signed.postOnly.to_string(), asked.postOnly.to_string()),
        ("price", signed.price.to_string(), asked.price.to_string()),
        ("quantity", signed.quantity.to_string(), asked.quantity.to_string()),
        ("nonce", signed.nonce.to_string(), asked.nonce.to_string()),
        ("expiry", signed.expiry.to_string(), asked.expiry.to_string()),
    ];
    fields.into_iter().find(|(_, s, a)| s != a)
}
