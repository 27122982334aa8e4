//! Signed limit orders: the `place` request a trader sends over REST or the WebSocket, with
//! the EIP-712 `Order` it describes signed by the trader's key (README.md, "Signing"). The
//! request and the signed message are built from the same numbers, so they cannot disagree.

use alloy::signers::local::PrivateKeySigner;
use rust_decimal::Decimal;

use crate::api::wire::{PlaceOrderRequest, SignedOrderWire, WireOrderType, WireSide, WireStp, WireTif};
use crate::chain::eip712::{self, MessageJson, Order};
use crate::client::{ClientError, MarketTerms};

// The contract's encodings of the signed fields (HobExchange.sol, `Order`).
const SIDE_BUY: u8 = 0;
const SIDE_SELL: u8 = 1;
const ORDER_TYPE_LIMIT: u8 = 0;
const TIF_GTC: u8 = 0;
const TIF_IOC: u8 = 1;
const TIF_FOK: u8 = 2;

/// A limit order on a market's grid: the price in ticks, the size in lots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitOrder {
    pub side: WireSide,
    pub price_ticks: u64,
    pub qty_lots: u64,
    /// GTC, IOC or FOK; a GTD order needs an expiry this client does not sign.
    pub tif: WireTif,
    /// One the trader never used, within its window of the 100 highest (README, "Signing").
    pub nonce: u64,
    pub client_order_id: Option<String>,
}

/// The `place` request for `order` on `terms`' market, signed by `key`.
pub fn signed_place(
    terms: &MarketTerms,
    key: &PrivateKeySigner,
    order: &LimitOrder,
) -> Result<PlaceOrderRequest, ClientError> {
    let time_in_force = match order.tif {
        WireTif::Gtc => TIF_GTC,
        WireTif::Ioc => TIF_IOC,
        WireTif::Fok => TIF_FOK,
        WireTif::Gtd => return Err(ClientError::Invalid("GTD orders are not supported by this client".into())),
    };
    let signed = Order {
        trader: key.address(),
        market: terms.chain_market_id,
        side: if order.side == WireSide::Buy { SIDE_BUY } else { SIDE_SELL },
        orderType: ORDER_TYPE_LIMIT,
        timeInForce: time_in_force,
        postOnly: false,
        price: order.price_ticks,
        quantity: order.qty_lots,
        maxFeeBps: terms.max_fee_bps,
        nonce: order.nonce,
        expiry: 0,
    };
    let signature = eip712::sign(key, &signed, &terms.domain).map_err(|e| ClientError::Sign(e.to_string()))?;
    Ok(PlaceOrderRequest {
        market: terms.market.clone(),
        side: order.side,
        order_type: WireOrderType::Limit,
        price: Some(terms.price_text(order.price_ticks)),
        worst_price: None,
        qty: terms.qty_text(order.qty_lots),
        tif: Some(order.tif),
        expires_at: None,
        post_only: false,
        stp: WireStp::ExpireMaker,
        client_order_id: order.client_order_id.clone(),
        nonce: order.nonce,
        signed_order: Some(SignedOrderWire {
            order: signed.message_json(),
            signature: format!("0x{}", alloy::hex::encode(signature.as_bytes())),
        }),
    })
}

impl MarketTerms {
    /// `price_ticks` as the decimal the API takes.
    pub fn price_text(&self, price_ticks: u64) -> String {
        (Decimal::from(price_ticks) * self.tick_size).normalize().to_string()
    }

    /// `qty_lots` as the decimal the API takes.
    pub fn qty_text(&self, qty_lots: u64) -> String {
        (Decimal::from(qty_lots) * self.lot_size).normalize().to_string()
    }

    /// A decimal price in ticks; a price off the grid is refused, never rounded.
    pub fn ticks(&self, price: Decimal) -> Result<u64, ClientError> {
        steps(price, self.tick_size).ok_or_else(|| {
            ClientError::Invalid(format!(
                "price {price} is not a positive multiple of {}'s tick {}",
                self.market, self.tick_size
            ))
        })
    }

    /// A decimal size in lots; a size off the grid is refused, never rounded.
    pub fn lots(&self, qty: Decimal) -> Result<u64, ClientError> {
        steps(qty, self.lot_size).ok_or_else(|| {
            ClientError::Invalid(format!(
                "size {qty} is not a positive multiple of {}'s lot {}",
                self.market, self.lot_size
            ))
        })
    }
}

/// How many `step`s make `value`, if a positive whole number of them does.
fn steps(value: Decimal, step: Decimal) -> Option<u64> {
    if step <= Decimal::ZERO || value <= Decimal::ZERO {
        return None;
    }
    let n = value.checked_div(step)?;
    if n.fract() != Decimal::ZERO {
        return None;
    }
    u64::try_from(n).ok()
}

#[cfg(test)]
#[path = "../../unit_tests/client/orders.rs"]
mod tests;
