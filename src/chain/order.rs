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
mod tests {
    // Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
    use super::*;

    const TERMS: SigningTerms = SigningTerms { market: 3, max_fee: Bps(30), nonce: 41 };

    fn new_order(order_type: OrderType, tif: TimeInForce) -> NewOrder {
        NewOrder {
            id: OrderId(5),
            user: UserId([0xAB; 20]),
            side: Side::Sell,
            order_type,
            qty: QtyLots(17),
            tif,
            post_only: false,
            stp: StpMode::ExpireTaker,
        }
    }

    #[test]
    fn every_domain_order_round_trips_through_its_signed_form() {
        let cases = [
            new_order(OrderType::Limit { price: PriceTicks(100) }, TimeInForce::Gtc),
            new_order(OrderType::Limit { price: PriceTicks(100) }, TimeInForce::Fok),
            new_order(OrderType::Limit { price: PriceTicks(100) }, TimeInForce::Gtd(TimestampMs(1_700_000_000_000))),
            new_order(OrderType::Market { worst_price: Some(PriceTicks(90)) }, TimeInForce::Ioc),
            new_order(OrderType::Market { worst_price: None }, TimeInForce::Ioc),
        ];
        for order in cases {
            let signed = to_signed_order(&order, TERMS).unwrap();
            assert_eq!(to_new_order(&signed, order.id, order.stp), Ok(order));
        }
    }

    #[test]
    fn the_signed_form_carries_the_codes_and_terms() {
        let order = new_order(OrderType::Limit { price: PriceTicks(100) }, TimeInForce::Gtd(TimestampMs(2_000)));
        let signed = to_signed_order(&order, TERMS).unwrap();
        assert_eq!(signed.trader, Address::repeat_byte(0xAB));
        assert_eq!((signed.market, signed.maxFeeBps, signed.nonce), (3, 30, 41));
        assert_eq!((signed.side, signed.orderType, signed.timeInForce), (SIDE_SELL, ORDER_TYPE_LIMIT, TIF_GTD));
        assert_eq!((signed.price, signed.quantity, signed.expiry), (100, 17, 2));
    }

    #[test]
    fn times_that_cannot_be_signed_exactly_are_refused() {
        let ragged = new_order(OrderType::Limit { price: PriceTicks(1) }, TimeInForce::Gtd(TimestampMs(1_500)));
        assert_eq!(to_signed_order(&ragged, TERMS), Err(OrderCodeError::GtdNotWholeSeconds(1_500)));
        let zero = new_order(OrderType::Limit { price: PriceTicks(1) }, TimeInForce::Gtd(TimestampMs(0)));
        assert_eq!(to_signed_order(&zero, TERMS), Err(OrderCodeError::GtdWithoutExpiry));
    }

    #[test]
    fn unknown_codes_are_refused() {
        let good =
            to_signed_order(&new_order(OrderType::Limit { price: PriceTicks(1) }, TimeInForce::Gtc), TERMS).unwrap();
        let id = OrderId(1);
        let stp = StpMode::default();
        assert_eq!(to_new_order(&Order { side: 2, ..good.clone() }, id, stp), Err(OrderCodeError::Side(2)));
        assert_eq!(to_new_order(&Order { orderType: 9, ..good.clone() }, id, stp), Err(OrderCodeError::OrderType(9)));
        assert_eq!(
            to_new_order(&Order { timeInForce: 4, ..good.clone() }, id, stp),
            Err(OrderCodeError::TimeInForce(4))
        );
        assert_eq!(
            to_new_order(&Order { timeInForce: TIF_GTD, expiry: 0, ..good.clone() }, id, stp),
            Err(OrderCodeError::GtdWithoutExpiry)
        );
        assert_eq!(
            to_new_order(&Order { timeInForce: TIF_GTD, expiry: u64::MAX, ..good }, id, stp),
            Err(OrderCodeError::GtdTooLate(u64::MAX))
        );
    }
}
