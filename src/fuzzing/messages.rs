//! Client messages: WebSocket frames and REST order bodies. Whatever a client sends is
//! refused with a typed error or becomes an order on the market's grid whose price and size
//! print back to the same ticks and lots; a signed order is verified without panicking.

use std::sync::OnceLock;

use alloy::primitives::Address;
use serde_json::Value;

use crate::api::catalog::{Catalog, MarketEntry};
use crate::api::sessions::Sessions;
use crate::api::signing::{verify_order, SigningContext};
use crate::api::trading::order_terms_in;
use crate::api::wire::PlaceOrderRequest;
use crate::api::ws::protocol::ClientMessage;
use crate::config::{AuthConfig, Config};
use crate::domain::{AssetId, OrderType, UserId};

/// The demo configuration's markets, built once per process.
fn catalog() -> Option<&'static Catalog> {
    static CATALOG: OnceLock<Option<Catalog>> = OnceLock::new();
    CATALOG
        .get_or_init(|| {
            let config = Config::default();
            let defs = config.validate().ok()?;
            let assets = config.assets.iter().filter_map(|a| AssetId::new(&a.symbol).ok().map(|id| (id, a.decimals)));
            Catalog::new(&defs, assets).ok()
        })
        .as_ref()
}

/// A WebSocket text frame, decoded as the connection decodes it.
pub fn ws_client_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(value) = serde_json::from_str::<Value>(text) else { return };
    match serde_json::from_value::<ClientMessage>(value) {
        Ok(ClientMessage::Place { order, .. }) => place(&order),
        Ok(ClientMessage::Batch { ops, .. }) => {
            for op in ops {
                if let Ok(order) = serde_json::from_value::<PlaceOrderRequest>(op) {
                    place(&order);
                }
            }
        }
        Ok(_) | Err(_) => {}
    }
}

/// The body of `POST /api/v1/orders`.
pub fn rest_place_order(data: &[u8]) {
    if let Ok(order) = serde_json::from_slice::<PlaceOrderRequest>(data) {
        place(&order);
    }
}

fn place(request: &PlaceOrderRequest) {
    let Some(catalog) = catalog() else { return };
    let Ok(terms) = order_terms_in(catalog, request) else { return };
    let Ok(market) = catalog.market(&request.market) else {
        panic!("order terms were made for an unknown market {:?}", request.market)
    };
    assert_round_trip(market, "qty", terms.qty.0, market.qty_str(terms.qty), |m, t| m.qty("qty", t).map(|q| q.0));
    let price = match terms.order_type {
        OrderType::Limit { price } => Some(price),
        OrderType::Market { worst_price } => worst_price,
    };
    if let Some(price) = price {
        let text = market.price_str(price);
        assert_round_trip(market, "price", price.0, text, |m, t| m.price("price", t).map(|p| p.0));
    }
    if let Some(signed) = &request.signed_order {
        let auth = AuthConfig::default();
        let domain = crate::chain::eip712::domain(auth.chain_id, Address::ZERO);
        let sessions = Sessions::new(auth);
        let ctx = SigningContext { domain: &domain, sessions: &sessions, now_s: 1_700_000_000 };
        // Refusing is fine; a forged signature by a random user must only never panic.
        let _ = verify_order(&ctx, UserId([7; 20]), market, &terms, signed);
    }
}

fn assert_round_trip<E>(
    market: &MarketEntry,
    what: &str,
    units: u64,
    text: String,
    parse: impl Fn(&MarketEntry, &str) -> Result<u64, E>,
) {
    let back = parse(market, &text).ok();
    assert_eq!(back, Some(units), "{what} {units} prints as {text:?}, which must parse back to it");
}
