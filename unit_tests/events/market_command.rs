//! Unit tests of `src/events/market_command.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::domain::{OrderType, Side, StpMode, TimeInForce, UserId};

#[test]
fn every_command_round_trips() {
    let user = UserId([7; 20]);
    let commands = [
        MarketCommand::Place(NewOrder {
            id: OrderId(9),
            user,
            side: Side::Sell,
            order_type: OrderType::Limit { price: PriceTicks(101) },
            qty: QtyLots(3),
            tif: TimeInForce::Gtd(crate::domain::TimestampMs(5)),
            post_only: true,
            stp: StpMode::ExpireBoth,
        }),
        MarketCommand::Cancel { order: OrderId(9), user },
        MarketCommand::Amend { order: OrderId(9), user, price: PriceTicks(100), qty: QtyLots(1) },
        MarketCommand::ExpireDue,
        MarketCommand::Halt,
        MarketCommand::Resume,
    ];
    for c in commands {
        assert_eq!(decode_market_command(&encode_market_command(&c)).unwrap(), c);
    }
    assert!(decode_market_command(&serde_json::json!({"op": "cancel", "order_id": 1, "user": "bob"})).is_err());
}

#[test]
fn a_signed_amend_carries_its_new_signed_order_and_an_unsigned_one_none() {
    // Given an amend and a new signed order
    let amend =
        MarketCommand::Amend { order: OrderId(9), user: UserId([7; 20]), price: PriceTicks(100), qty: QtyLots(1) };
    let auth = OrderAuth::new(r#"{"signature":"0x02"}"#);
    // When each form is queued and read back
    let signed = decode_market_record(&encode_market_record(&amend, Some(&auth))).unwrap();
    let unsigned = decode_market_record(&encode_market_record(&amend, None)).unwrap();
    // Then the signed order rides with the signed one only
    assert_eq!(signed, (amend, Some(auth)));
    assert_eq!(unsigned, (amend, None));
}
