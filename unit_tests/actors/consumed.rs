//! Unit tests of `src/actors/consumed.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::domain::{MarketId, UserId};

fn source(stream: &StreamId, version: u64, index: u32) -> MessageSource {
    MessageSource { stream: stream.clone(), version, index }
}

#[test]
fn only_records_past_the_last_position_of_their_stream_are_new() {
    let a = StreamId::user(UserId([1; 20]));
    let b = StreamId::market(MarketId::new("BTC-USDT").unwrap());
    let mut consumed = Consumed::default();
    assert!(consumed.is_new(&source(&a, 3, 0)));
    consumed.advance(&source(&a, 3, 1));
    assert!(!consumed.is_new(&source(&a, 3, 1)));
    assert!(!consumed.is_new(&source(&a, 2, 9)));
    assert!(consumed.is_new(&source(&a, 3, 2)));
    assert!(consumed.is_new(&source(&a, 4, 0)));
    assert!(consumed.is_new(&source(&b, 1, 0)));
}

#[test]
fn the_consumed_event_folds_back_to_the_same_positions() {
    let a = StreamId::user(UserId([1; 20]));
    let clock = crate::events::SystemClock;
    let sources = [source(&a, 5, 0), source(&a, 5, 1)];
    let event = Consumed::event(&clock, uuid::Uuid::nil(), &sources);
    let mut folded = Consumed::default();
    folded.apply(&event.payload).unwrap();
    let mut direct = Consumed::default();
    sources.iter().for_each(|s| direct.advance(s));
    assert_eq!(folded, direct);
    assert!(folded.apply(&json!({"sources": [{"stream": "nope", "version": 1, "index": 0}]})).is_err());
}

#[test]
fn a_snapshot_round_trips_and_anything_else_is_refused() {
    let mut consumed = Consumed::default();
    consumed.advance(&source(&StreamId::user(UserId([1; 20])), 3, 1));
    let state = br#"{"book":"\"quoted\""}"#.to_vec();
    let bytes = ActorSnapshot::encode_with(&consumed, state.clone(), json!([[1, "auth"]]));
    let back = ActorSnapshot::decode(&bytes);
    assert_eq!(back, Some(ActorSnapshot { consumed, state, extra: json!([[1, "auth"]]) }));
    assert_eq!(ActorSnapshot::decode(&bytes[..10]), None);
    assert_eq!(ActorSnapshot::decode(b"{\"consumed\":{}}"), None);
}
