//! Unit tests of `src/audit/chain.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps: a failure should fail the test.
use super::*;
use crate::events::{EventEnvelope, ManualClock, NewEvent};
use chrono::DateTime;
use serde_json::json;
use uuid::Uuid;

fn sealed(n: u64) -> Vec<SealedEvent> {
    let clock = ManualClock::new(DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap());
    let stream = StreamId::parse("market:BTC-USDT").unwrap();
    let mut prev = GENESIS_HASH;
    (1..=n)
        .map(|v| {
            let e = NewEvent::new(&clock, Uuid::nil(), Uuid::nil(), "market.Halted", 1, json!({"b": v, "a": 1}));
            let env = EventEnvelope::seal(stream.clone(), v, prev, Some("k".into()), e);
            prev = env.hash;
            SealedEvent::from_envelope(env)
        })
        .collect()
}

fn walk(events: &[SealedEvent]) -> Result<ChainWalk, Break> {
    let mut w = ChainWalk::new(StreamId::parse("market:BTC-USDT").unwrap());
    for e in events {
        w.next(e)?;
    }
    Ok(w)
}

#[test]
fn an_intact_stream_verifies_and_ends_at_its_head() {
    let w = walk(&sealed(3)).unwrap();
    assert_eq!(w.finish(3), Ok(()));
}

#[test]
fn an_edited_payload_is_named_by_version() {
    let mut events = sealed(3);
    events[1].payload = br#"{"a":1,"b":9}"#.to_vec();
    assert_eq!(walk(&events).err().map(|b| b.version), Some(2));
}

#[test]
fn a_removed_event_is_a_gap_at_the_missing_version() {
    let mut events = sealed(3);
    events.remove(1);
    let err = walk(&events).err().unwrap();
    assert_eq!(err.version, 2);
    assert!(err.reason.contains("gap"), "{}", err.reason);
}

#[test]
fn a_rehashed_edit_still_breaks_the_next_link() {
    let stream = StreamId::parse("market:BTC-USDT").unwrap();
    let mut events = sealed(3);
    events[1].payload = br#"{"a":1,"b":9}"#.to_vec();
    events[1].hash = events[1].compute_hash(&stream);
    assert_eq!(walk(&events).err().map(|b| b.version), Some(3));
}

#[test]
fn a_truncated_tail_is_named_by_the_first_missing_version() {
    let events = sealed(3);
    let w = walk(&events[..2]).unwrap();
    assert_eq!(w.finish(3).err().map(|b| b.version), Some(3));
}
