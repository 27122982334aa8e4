//! Unit tests of `src/events/user_payload.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::domain::{Amount, OrderType, Side, StpMode, TimeInForce, TimestampMs, UserId};
use crate::events::upcast::UPCASTERS;
use serde_json::json;

use crate::domain::market::tests::spec;

fn every_variant() -> Vec<UserEvent> {
    let s = spec();
    let lock = OrderLock {
        side: Side::Buy,
        asset: s.quote,
        amount: Amount(u128::MAX),
        qty: QtyLots(5),
        limit: PriceTicks(100),
        fee_rate: Bps(20),
    };
    let order = NewOrder {
        id: OrderId(7),
        user: UserId([0xab; 20]),
        side: Side::Buy,
        order_type: OrderType::Limit { price: PriceTicks(100) },
        qty: QtyLots(5),
        tif: TimeInForce::Gtd(TimestampMs(9)),
        post_only: true,
        stp: StpMode::ExpireBoth,
    };
    let trade = Trade {
        id: TradeId(3),
        maker_order: OrderId(1),
        maker_user: UserId([1; 20]),
        taker_order: OrderId(7),
        taker_user: UserId([0xab; 20]),
        taker_side: Side::Buy,
        price: PriceTicks(100),
        qty: QtyLots(2),
        base_amount: Amount(2_000),
        quote_amount: Amount(2_000),
        maker_fee: Amount(2),
        taker_fee: Amount(4),
    };
    let m = s.id;
    let o = OrderId(7);
    let mut events = vec![
        UserEvent::Deposited { asset: s.quote, amount: Amount(u128::MAX) },
        UserEvent::Withdrawn { asset: s.base, amount: Amount(1) },
        UserEvent::SettlementConfirmed { asset: s.base, amount: Amount(2) },
        UserEvent::OrderPlaced {
            market: m,
            order,
            client_order_id: Some(ClientOrderId::new("abc-1").unwrap()),
            nonce: u64::MAX,
            lock,
            spec: s.clone(),
            auth: Some(OrderAuth::new(r#"{"signature":"0x01"}"#)),
        },
        UserEvent::OrderPlaced { market: m, order, client_order_id: None, nonce: 0, lock, spec: s.clone(), auth: None },
        UserEvent::OrderAcknowledged { market: m, order: o },
        UserEvent::CancelRequested { market: m, order: o },
        UserEvent::CancelRejected { market: m, order: o, reason: RejectReason::UnknownOrder },
        UserEvent::AmendRequested {
            market: m,
            order: o,
            price: PriceTicks(1),
            qty: QtyLots(2),
            previous: lock,
            lock: OrderLock { side: Side::Sell, ..lock },
            signed: None,
        },
        UserEvent::AmendRequested {
            market: m,
            order: o,
            price: PriceTicks(1),
            qty: QtyLots(2),
            previous: lock,
            lock,
            signed: Some(AmendAuth { nonce: 9, auth: OrderAuth::new(r#"{"signature":"0x02"}"#) }),
        },
        UserEvent::AmendApplied { market: m, order: o, price: PriceTicks(1), qty: QtyLots(2), lock },
        UserEvent::AmendReverted { market: m, order: o, reason: RejectReason::MarketHalted, lock },
        UserEvent::FillApplied { market: m, order: o, trade },
        UserEvent::OrderClosed { market: m, order: o, released: Amount(0) },
        UserEvent::TradeVoided {
            market: m,
            order: o,
            trade: TradeId(3),
            reclaimed_asset: s.base,
            reclaimed: Amount(2_000),
            restored_asset: s.quote,
            restored: Amount(u128::MAX),
        },
        UserEvent::DepositCredited {
            deposit: crate::domain::DepositId { tx: [0xab; 32], log_index: 3 },
            asset: s.quote,
            amount: Amount(u128::MAX),
        },
        UserEvent::WithdrawalRequested {
            nonce: 7,
            asset: s.base,
            amount: Amount(9),
            auth: crate::domain::WithdrawalAuth::new("{\"signature\":\"0x00\"}"),
        },
        UserEvent::WithdrawalCompleted { nonce: 7, asset: s.base, amount: Amount(9) },
        UserEvent::WithdrawalFailed { nonce: 8, asset: s.base, amount: Amount(9), reason: "reverted".into() },
    ];
    for &r in ExpireReason::ALL {
        events.push(UserEvent::OrderReleased {
            market: m,
            order: o,
            amount: Amount(5),
            reason: ReleaseReason::Expired(r),
        });
    }
    for &r in CancelReason::ALL {
        events.push(UserEvent::OrderReleased {
            market: m,
            order: o,
            amount: Amount(5),
            reason: ReleaseReason::Cancelled(r),
        });
    }
    for &r in RejectReason::ALL {
        events.push(UserEvent::OrderReleased {
            market: m,
            order: o,
            amount: Amount(5),
            reason: ReleaseReason::Rejected(r),
        });
    }
    events
}

#[test]
fn every_variant_round_trips_through_json_text() {
    let mut types = std::collections::BTreeSet::new();
    for event in every_variant() {
        let encoded = encode_user_event(&event);
        assert_eq!(current_user_schema_version(encoded.event_type), Some(encoded.schema_version));
        types.insert(encoded.event_type);
        let text = serde_json::to_string(&encoded.payload).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(decode_user_event(encoded.event_type, encoded.schema_version, back).unwrap(), event);
    }
    assert_eq!(types.len(), USER_EVENT_TYPES.len(), "every event type is exercised");
}

#[test]
fn amounts_are_decimal_strings_and_users_hex() {
    let placed = every_variant().into_iter().find(|e| matches!(e, UserEvent::OrderPlaced { .. })).unwrap();
    let p = encode_user_event(&placed).payload;
    assert_eq!(p["lock"]["amount"], json!(u128::MAX.to_string()));
    assert_eq!(p["order"]["user"], json!(format!("0x{}", "ab".repeat(20))));
    assert_eq!(encode_user_event(&placed).event_type, "user.OrderPlaced");
}

#[test]
fn invalid_values_are_typed_errors() {
    let p = json!({"asset": "USDT", "amount": "+5"});
    assert!(matches!(decode_user_event(DEPOSITED, 1, p), Err(PayloadError::InvalidAmount { field: "amount", .. })));
    let p = json!({"asset": "no spaces", "amount": "5"});
    assert!(matches!(decode_user_event(DEPOSITED, 1, p), Err(PayloadError::Json { .. })));
    let p = json!({"market": "BTC-USDT", "order_id": 1, "amount": "1", "kind": "bored", "code": "user"});
    assert!(matches!(decode_user_event(ORDER_RELEASED, 1, p), Err(PayloadError::UnknownCode { field: "kind", .. })));
    assert!(matches!(decode_user_event("user.Nope", 1, json!({})), Err(PayloadError::UnknownEventType(_))));
    assert!(matches!(
        decode_user_event(DEPOSITED, 2, json!({"asset": "USDT", "amount": "5"})),
        Err(PayloadError::Upcast(_))
    ));
    let mut placed = encode_user_event(&every_variant()[3]).payload;
    placed["spec"]["base_lot"] = json!("0");
    let err = decode_user_event(ORDER_PLACED, 1, placed).unwrap_err();
    assert!(err.to_string().contains("spec"), "{err}");
}

#[test]
fn every_user_type_has_a_complete_chain_from_v1() {
    for (event_type, current) in USER_EVENT_TYPES {
        for from in 1..*current {
            assert!(UPCASTERS.iter().any(|u| u.event_type == *event_type && u.from_version == from));
        }
    }
}

#[test]
fn a_snapshot_of_a_bad_version_or_shape_is_refused() {
    let state = UserState::new(UserId([1; 20]));
    let mut v: Value = serde_json::from_slice(&encode_user_snapshot(&state)).unwrap();
    assert_eq!(decode_user_snapshot(&encode_user_snapshot(&state)).unwrap(), state);
    v["snapshot_version"] = json!(9);
    assert!(matches!(
        decode_user_snapshot(&serde_json::to_vec(&v).unwrap()),
        Err(UserPayloadError::SnapshotVersion(9))
    ));
    assert!(matches!(decode_user_snapshot(b"{"), Err(UserPayloadError::SnapshotJson(_))));
}
