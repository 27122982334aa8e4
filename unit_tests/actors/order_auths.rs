//! Unit tests of `src/actors/order_auths.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

use super::*;
use crate::domain::{CancelReason, PriceTicks, QtyLots, RejectReason, RestingOrder, Side, StpMode, UserId};
use crate::events::SystemClock;

#[test]
fn a_signed_order_is_recorded_replayed_and_forgotten_when_its_life_ends() {
    let auth = OrderAuth::new(r#"{"signature":"0xab"}"#);
    let event = OrderAuths::event(&SystemClock, Uuid::nil(), OrderId(7), &auth);
    let mut replayed = OrderAuths::default();
    replayed.apply(&event.payload).unwrap_or_default();
    assert_eq!(replayed.get(OrderId(7)), Some(&auth));
    let snapshot = replayed.to_snapshot();
    assert_eq!(OrderAuths::from_snapshot(&snapshot), Some(replayed.clone()));
    replayed.forget_ended(
        &MarketEvent::Cancelled { order: OrderId(7), remaining: QtyLots(1), reason: CancelReason::User },
        &OrderBook::default(),
    );
    assert!(replayed.is_empty());
    assert_eq!(OrderAuths::from_snapshot(&Value::Null), Some(OrderAuths::default()));
    assert_eq!(OrderAuths::from_snapshot(&json!({"x": 1})), None);
}

#[test]
fn a_refused_amend_keeps_the_live_orders_signed_order_and_a_refused_placement_drops_its_own() {
    // Given order 7 resting with its signed order, and order 8's signed order recorded
    // before its placement was decided
    let mut book = OrderBook::default();
    let resting = RestingOrder {
        id: OrderId(7),
        user: UserId([1; 20]),
        side: Side::Sell,
        price: PriceTicks(100),
        qty: QtyLots(3),
        expiry: None,
        post_only: false,
        stp: StpMode::ExpireMaker,
    };
    book.insert(resting).unwrap();
    let mut auths = OrderAuths::default();
    auths.insert(OrderId(7), OrderAuth::new("seven"));
    auths.insert(OrderId(8), OrderAuth::new("eight"));
    // When the market refuses an amend of 7 (halted) and the placement of 8
    let rejected = |order| MarketEvent::Rejected { order: OrderId(order), reason: RejectReason::MarketHalted };
    auths.forget_ended(&rejected(7), &book);
    auths.forget_ended(&rejected(8), &book);
    // Then 7, still in the book, keeps its signed order for its next trades; 8 has none
    assert_eq!(auths.get(OrderId(7)), Some(&OrderAuth::new("seven")));
    assert_eq!(auths.get(OrderId(8)), None);
}

#[test]
fn a_signed_amend_replaces_the_orders_signed_order_live_on_replay_and_in_snapshots() {
    // Given order 7 signed under nonce 1, and order 8 signed too
    let (old, new) = (OrderAuth::new(r#"{"nonce":"1"}"#), OrderAuth::new(r#"{"nonce":"2"}"#));
    let other = OrderAuth::new(r#"{"nonce":"5"}"#);
    let stored = [
        OrderAuths::event(&SystemClock, Uuid::nil(), OrderId(7), &old),
        OrderAuths::event(&SystemClock, Uuid::nil(), OrderId(8), &other),
    ];
    let mut live = OrderAuths::default();
    live.insert(OrderId(7), old.clone());
    live.insert(OrderId(8), other.clone());
    // When an amend of order 7 is applied with a new signed order under nonce 2
    let amend = OrderAuths::event(&SystemClock, Uuid::nil(), OrderId(7), &new);
    live.insert(OrderId(7), new.clone());
    // Then order 7's trades from now on carry the new one, order 8's are untouched
    assert_eq!(live.get(OrderId(7)), Some(&new));
    assert_eq!(live.get(OrderId(8)), Some(&other));
    assert_eq!(live.len(), 2);
    // And replaying the stream in order, or restoring a snapshot, gives the same state
    let mut replayed = OrderAuths::default();
    for event in stored.iter().chain([&amend]) {
        replayed.apply(&event.payload).unwrap();
    }
    assert_eq!(replayed, live);
    assert_eq!(OrderAuths::from_snapshot(&live.to_snapshot()), Some(live));
}
