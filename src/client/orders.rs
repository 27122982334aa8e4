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
mod tests {
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
}
