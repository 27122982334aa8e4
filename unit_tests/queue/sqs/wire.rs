//! Unit tests of `src/queue/sqs/wire.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps: a failure should fail the test.
use serde_json::json;

use super::*;
use crate::domain::MarketId;

fn message(group: &str, body: Value) -> QueueMessage {
    let stream = StreamId::market(MarketId::new("BTC-USDT").unwrap());
    QueueMessage {
        group: group.into(),
        dedup_id: "market:BTC-USDT:7:1".into(),
        body,
        source: MessageSource { stream, version: 7, index: 1 },
    }
}

#[test]
fn a_message_survives_the_round_trip() {
    let sent = message("market:BTC-USDT", json!({"order": 12, "qty": "1.5"}));
    assert_eq!(decode(&encode(&sent).unwrap()).unwrap(), sent);
}

#[test]
fn what_sqs_would_refuse_is_refused_before_sending() {
    assert!(encode(&message("", json!({}))).is_err(), "empty group");
    assert!(encode(&message("market BTC", json!({}))).is_err(), "space in group");
    assert!(encode(&message(&"g".repeat(129), json!({}))).is_err());
    assert!(encode(&message("g", json!("x".repeat(MAX_BODY_BYTES)))).is_err(), "body too large");
}

#[test]
fn a_foreign_body_is_not_a_message() {
    assert!(decode("hello").is_err());
    let mut wire: Value = serde_json::from_str(&encode(&message("g", json!(1))).unwrap()).unwrap();
    wire["stream"] = json!("nowhere:1");
    assert!(decode(&wire.to_string()).is_err());
}
