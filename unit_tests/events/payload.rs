//! Unit tests of `src/events/payload.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use serde_json::json;

fn user(b: u8) -> UserId {
    UserId([b; 20])
}

fn every_variant() -> Vec<MarketEvent> {
    let order = NewOrder {
        id: OrderId(7),
        user: user(0xab),
        side: Side::Buy,
        order_type: OrderType::Limit { price: PriceTicks(100) },
        qty: QtyLots(5),
        tif: TimeInForce::Gtd(TimestampMs(1_700_000_000_000)),
        post_only: true,
        stp: StpMode::ExpireBoth,
    };
    let market = NewOrder {
        order_type: OrderType::Market { worst_price: None },
        tif: TimeInForce::Ioc,
        side: Side::Sell,
        ..order
    };
    let mut events = vec![
        MarketEvent::Accepted(order),
        MarketEvent::Accepted(market),
        MarketEvent::Accepted(NewOrder { tif: TimeInForce::Fok, ..market }),
        MarketEvent::Accepted(NewOrder {
            tif: TimeInForce::Gtc,
            order_type: OrderType::Market { worst_price: Some(PriceTicks(9)) },
            ..market
        }),
        MarketEvent::Rested {
            order: OrderId(7),
            user: user(1),
            side: Side::Sell,
            price: PriceTicks(101),
            qty: QtyLots(3),
            expiry: None,
            post_only: false,
            stp: StpMode::ExpireTaker,
        },
        MarketEvent::Traded(Trade {
            id: TradeId(1),
            maker_order: OrderId(1),
            maker_user: user(1),
            taker_order: OrderId(2),
            taker_user: user(2),
            taker_side: Side::Buy,
            price: PriceTicks(100),
            qty: QtyLots(2),
            base_amount: Amount(u128::MAX),
            quote_amount: Amount(123_456_789_012_345_678_901_234_567),
            maker_fee: Amount(0),
            taker_fee: Amount(42),
        }),
        MarketEvent::Filled { order: OrderId(2) },
        MarketEvent::Amended { order: OrderId(1), price: PriceTicks(5), qty: QtyLots(1), keeps_priority: true },
        MarketEvent::Halted,
        MarketEvent::Resumed,
    ];
    for &reason in ExpireReason::ALL {
        events.push(MarketEvent::Expired { order: OrderId(3), remaining: QtyLots(4), reason });
    }
    for &reason in CancelReason::ALL {
        events.push(MarketEvent::Cancelled { order: OrderId(3), remaining: QtyLots(4), reason });
    }
    for &reason in RejectReason::ALL {
        events.push(MarketEvent::Rejected { order: OrderId(3), reason });
    }
    events
}

#[test]
fn every_variant_round_trips_through_json_text() {
    for event in every_variant() {
        let encoded = encode_market_event(&event);
        assert_eq!(current_schema_version(encoded.event_type), Some(encoded.schema_version));
        let text = serde_json::to_string(&encoded.payload).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        let decoded = decode_market_event(encoded.event_type, encoded.schema_version, back).unwrap();
        assert_eq!(decoded, event);
    }
}

#[test]
fn the_replay_path_decodes_stored_text_exactly_as_the_value_path() {
    for event in every_variant() {
        let e = encode_market_event(&event);
        let text = crate::events::envelope::canonical_json(&e.payload);
        assert_eq!(decode_market_event_bytes(e.event_type, e.schema_version, &text).ok(), Some(event));
    }
    // An older schema version takes the upcasting path.
    let v1 = br#"{"order_id":1,"user":"0x0707070707070707070707070707070707070707","side":"buy","price_ticks":5,"qty_lots":2,"expiry_ms":null}"#;
    let from_text = decode_market_event_bytes(RESTED, 1, v1);
    let from_value = decode_market_event(RESTED, 1, serde_json::from_slice(v1).unwrap());
    assert!(from_value.is_ok(), "{from_value:?}");
    assert_eq!(from_text.ok(), from_value.ok());
    assert!(matches!(decode_market_event_bytes(FILLED, 1, b"not json"), Err(PayloadError::Json { .. })));
    assert!(matches!(decode_market_event_bytes("market.Nope", 1, b"{}"), Err(PayloadError::UnknownEventType(_))));
}

#[test]
fn amounts_are_decimal_strings_and_users_hex() {
    let event = every_variant().into_iter().find(|e| matches!(e, MarketEvent::Traded(_))).unwrap();
    let p = encode_market_event(&event).payload;
    assert_eq!(p["base_amount"], json!(u128::MAX.to_string()));
    assert_eq!(p["maker_user"], json!(format!("0x{}", "01".repeat(20))));
}

#[test]
fn invalid_values_are_typed_errors() {
    let event = every_variant().into_iter().find(|e| matches!(e, MarketEvent::Traded(_))).unwrap();
    let mut p = encode_market_event(&event).payload;
    p["taker_fee"] = json!("+5");
    assert!(matches!(
        decode_market_event(TRADED, 1, p.clone()),
        Err(PayloadError::InvalidAmount { field: "taker_fee", .. })
    ));
    p["taker_fee"] = json!("340282366920938463463374607431768211456"); // u128::MAX + 1
    assert!(matches!(decode_market_event(TRADED, 1, p.clone()), Err(PayloadError::InvalidAmount { .. })));
    p["taker_fee"] = json!("1");
    p["maker_user"] = json!("0x12");
    assert!(matches!(
        decode_market_event(TRADED, 1, p.clone()),
        Err(PayloadError::InvalidUser { field: "maker_user", .. })
    ));
    let bad_reason = json!({"order_id": 1, "reason": "bored"});
    assert!(matches!(decode_market_event(REJECTED, 1, bad_reason), Err(PayloadError::UnknownCode { .. })));
    assert!(matches!(decode_market_event("market.Nope", 1, json!({})), Err(PayloadError::UnknownEventType(_))));
    assert!(matches!(decode_market_event(FILLED, 1, json!({"order": 1})), Err(PayloadError::Json { .. })));
    assert!(matches!(decode_market_event(FILLED, 9, json!({"order_id": 1})), Err(PayloadError::Upcast(_))));
}
