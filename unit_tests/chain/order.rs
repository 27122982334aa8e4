//! Unit tests of `src/chain/order.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

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
    let good = to_signed_order(&new_order(OrderType::Limit { price: PriceTicks(1) }, TimeInForce::Gtc), TERMS).unwrap();
    let id = OrderId(1);
    let stp = StpMode::default();
    assert_eq!(to_new_order(&Order { side: 2, ..good.clone() }, id, stp), Err(OrderCodeError::Side(2)));
    assert_eq!(to_new_order(&Order { orderType: 9, ..good.clone() }, id, stp), Err(OrderCodeError::OrderType(9)));
    assert_eq!(to_new_order(&Order { timeInForce: 4, ..good.clone() }, id, stp), Err(OrderCodeError::TimeInForce(4)));
    assert_eq!(
        to_new_order(&Order { timeInForce: TIF_GTD, expiry: 0, ..good.clone() }, id, stp),
        Err(OrderCodeError::GtdWithoutExpiry)
    );
    assert_eq!(
        to_new_order(&Order { timeInForce: TIF_GTD, expiry: u64::MAX, ..good }, id, stp),
        Err(OrderCodeError::GtdTooLate(u64::MAX))
    );
}
