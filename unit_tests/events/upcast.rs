//! Unit tests of `src/events/upcast.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::domain::UserEvent;
use crate::domain::{MarketEvent, OrderId, PriceTicks, QtyLots, Side, StpMode, UserId};
use crate::events::payload::{decode_market_event, MARKET_EVENT_TYPES};
use crate::events::user_payload::decode_user_event;
use serde_json::json;

#[test]
fn rested_v1_decodes_with_defaults() {
    let v1 = json!({
        "order_id": 9, "user": format!("0x{}", "0a".repeat(20)), "side": "buy",
        "price_ticks": 100, "qty_lots": 2, "expiry_ms": null
    });
    let event = decode_market_event(RESTED, 1, v1).unwrap();
    assert_eq!(
        event,
        MarketEvent::Rested {
            order: OrderId(9),
            user: UserId([0x0a; 20]),
            side: Side::Buy,
            price: PriceTicks(100),
            qty: QtyLots(2),
            expiry: None,
            post_only: false,
            stp: StpMode::ExpireMaker,
        }
    );
}

#[test]
fn amend_requested_v1_decodes_as_an_unsigned_amend() {
    // Given an amend stored before signed amends existed
    let lock = json!({"side": "buy", "asset": "USDT", "amount": "20", "qty_lots": 2, "limit_ticks": 100, "fee_bps": 0});
    let v1 = json!({
        "market": "BTC-USDT", "order_id": 9, "price_ticks": 101, "qty_lots": 2,
        "previous": lock, "lock": lock
    });
    // When it is read today
    let event = decode_user_event(AMEND_REQUESTED, 1, v1.clone());
    // Then it is the same amend, unsigned
    match event {
        Ok(UserEvent::AmendRequested { order, price, signed, .. }) => {
            assert_eq!((order, price, signed), (OrderId(9), PriceTicks(101), None));
        }
        other => panic!("{v1} decoded to {other:?}"),
    }
}

#[test]
fn upcasting_refuses_the_future_and_non_objects() {
    assert!(matches!(upcast_to_current(RESTED, 3, json!({})), Err(UpcastError::FromTheFuture { .. })));
    assert!(matches!(upcast_to_current(RESTED, 1, json!([])), Err(UpcastError::Malformed { version: 1, .. })));
    assert!(matches!(upcast_to_current("nope", 1, json!({})), Err(UpcastError::UnknownEventType(_))));
}

#[test]
fn every_type_has_a_complete_chain_from_v1() {
    for (event_type, current) in MARKET_EVENT_TYPES {
        for from in 1..*current {
            assert!(
                UPCASTERS.iter().any(|u| u.event_type == *event_type && u.from_version == from),
                "{event_type}: missing v{from} -> v{}",
                from + 1
            );
        }
    }
}
