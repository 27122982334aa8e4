//! The signed order's small-integer codes and the conversions between it and hob's domain
//! order ([`NewOrder`]). The codes are part of what users sign, so they never change.
//!
//! Times differ in unit: the domain counts milliseconds, the chain seconds. A GTD order's
//! expiry is signed in whole seconds; a domain GTD time that is not a whole second is refused,
//! never rounded, since rounding would move the moment the user signed for.

use alloy::primitives::Address;

use super::eip712::Order;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::order::{NewOrder, OrderType, Side, StpMode, TimeInForce};
use crate::domain::units::{Bps, PriceTicks, QtyLots, TimestampMs};

pub const SIDE_BUY: u8 = 0;
pub const SIDE_SELL: u8 = 1;
pub const ORDER_TYPE_LIMIT: u8 = 0;
pub const ORDER_TYPE_MARKET: u8 = 1;
pub const TIF_GTC: u8 = 0;
pub const TIF_IOC: u8 = 1;
pub const TIF_FOK: u8 = 2;
pub const TIF_GTD: u8 = 3;

const MS_PER_S: u64 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderCodeError {
    #[error("side must be 0 (buy) or 1 (sell), got {0}")]
    Side(u8),
    #[error("orderType must be 0 (limit) or 1 (market), got {0}")]
    OrderType(u8),
    #[error("timeInForce must be 0 (GTC), 1 (IOC), 2 (FOK) or 3 (GTD), got {0}")]
    TimeInForce(u8),
    #[error("a GTD order needs a non-zero expiry")]
    GtdWithoutExpiry,
    #[error("a GTD time must be a whole second to be signed, got {0} ms")]
    GtdNotWholeSeconds(u64),
    #[error("a GTD time of {0} s does not fit in milliseconds")]
    GtdTooLate(u64),
}

/// What a signed order carries beyond the domain's [`NewOrder`]: the on-chain market id, the
/// fee cap and the order's nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningTerms {
    pub market: u32,
    pub max_fee: Bps,
    pub nonce: u64,
}

/// The order a wallet signs for `order`. A GTD order's signature expires with it; other
/// orders sign expiry 0 (never) and are cancelled on-chain by nonce invalidation.
pub fn to_signed_order(order: &NewOrder, terms: SigningTerms) -> Result<Order, OrderCodeError> {
    let (order_type, price) = match order.order_type {
        OrderType::Limit { price } => (ORDER_TYPE_LIMIT, price.0),
        OrderType::Market { worst_price } => (ORDER_TYPE_MARKET, worst_price.map_or(0, |p| p.0)),
    };
    let (time_in_force, expiry) = match order.tif {
        TimeInForce::Gtc => (TIF_GTC, 0),
        TimeInForce::Ioc => (TIF_IOC, 0),
        TimeInForce::Fok => (TIF_FOK, 0),
        TimeInForce::Gtd(at) => {
            if at.0 % MS_PER_S != 0 {
                return Err(OrderCodeError::GtdNotWholeSeconds(at.0));
            }
            if at.0 == 0 {
                return Err(OrderCodeError::GtdWithoutExpiry);
            }
            (TIF_GTD, at.0 / MS_PER_S)
        }
    };
    Ok(Order {
        trader: Address::from(order.user.0),
        market: terms.market,
        side: match order.side {
            Side::Buy => SIDE_BUY,
            Side::Sell => SIDE_SELL,
        },
        orderType: order_type,
        timeInForce: time_in_force,
        postOnly: order.post_only,
        price,
        quantity: order.qty.0,
        maxFeeBps: terms.max_fee.0,
        nonce: terms.nonce,
        expiry,
    })
}

/// The domain order a signed order asks for, under the exchange's id `id`. Self-trade
/// prevention is not signed; it is `stp`, the API's choice.
pub fn to_new_order(order: &Order, id: OrderId, stp: StpMode) -> Result<NewOrder, OrderCodeError> {
    let side = match order.side {
        SIDE_BUY => Side::Buy,
        SIDE_SELL => Side::Sell,
        other => return Err(OrderCodeError::Side(other)),
    };
    let order_type = match order.orderType {
        ORDER_TYPE_LIMIT => OrderType::Limit { price: PriceTicks(order.price) },
        ORDER_TYPE_MARKET => OrderType::Market { worst_price: (order.price != 0).then_some(PriceTicks(order.price)) },
        other => return Err(OrderCodeError::OrderType(other)),
    };
    let tif = match order.timeInForce {
        TIF_GTC => TimeInForce::Gtc,
        TIF_IOC => TimeInForce::Ioc,
        TIF_FOK => TimeInForce::Fok,
        TIF_GTD if order.expiry == 0 => return Err(OrderCodeError::GtdWithoutExpiry),
        TIF_GTD => TimeInForce::Gtd(TimestampMs(
            order.expiry.checked_mul(MS_PER_S).ok_or(OrderCodeError::GtdTooLate(order.expiry))?,
        )),
        other => return Err(OrderCodeError::TimeInForce(other)),
    };
    Ok(NewOrder {
        id,
        user: UserId(order.trader.into_array()),
        side,
        order_type,
        qty: QtyLots(order.quantity),
        tif,
        post_only: order.postOnly,
        stp,
    })
}

#[cfg(test)]
#[path = "../../unit_tests/chain/order.rs"]
mod tests;
