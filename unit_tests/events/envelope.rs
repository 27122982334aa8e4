//! Unit tests of `src/events/envelope.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use serde_json::json;

fn chain(n: u64) -> Vec<EventEnvelope> {
    let clock = ManualClock::new(DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap());
    let stream = StreamId::parse("market:BTC-USDT").unwrap();
    let mut prev = GENESIS_HASH;
    (1..=n)
        .map(|v| {
            let mut e = NewEvent::new(&clock, Uuid::nil(), Uuid::nil(), "market.Halted", 1, json!({"n": v}));
            e.event_id = Uuid::from_u128(u128::from(v));
            let env = EventEnvelope::seal(stream.clone(), v, prev, None, e);
            prev = env.hash;
            env
        })
        .collect()
}

#[test]
fn canonical_json_sorts_keys_at_every_depth() {
    let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[{"d":1,"c":2}],"x":"é"}}"#).unwrap();
    let b: Value = serde_json::from_str(r#"{"a":{"x":"é","y":[{"c":2,"d":1}]},"b":1}"#).unwrap();
    assert_eq!(canonical_json(&a), canonical_json(&b));
    assert_eq!(String::from_utf8(canonical_json(&a)).unwrap(), r#"{"a":{"x":"é","y":[{"c":2,"d":1}]},"b":1}"#);
    assert_ne!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
}

#[test]
fn hash_covers_every_field_and_ignores_key_order() {
    let base = chain(1).remove(0);
    let mut reordered = base.clone();
    reordered.payload = serde_json::from_str(r#"{"n":1}"#).unwrap();
    assert_eq!(reordered.compute_hash(), base.hash);
    let mutations: Vec<fn(&mut EventEnvelope)> = vec![
        |e| e.stream = StreamId::admin(),
        |e| e.version = 2,
        |e| e.event_id = Uuid::max(),
        |e| e.occurred_at += TimeDelta::microseconds(1),
        |e| e.correlation_id = Uuid::max(),
        |e| e.causation_id = Uuid::max(),
        |e| e.idempotency_key = Some(String::new()),
        |e| e.event_type.push('x'),
        |e| e.schema_version = 2,
        |e| e.payload = json!({"n": 2}),
        |e| e.prev_hash[31] = 1,
    ];
    for m in mutations {
        let mut e = base.clone();
        m(&mut e);
        assert_ne!(e.compute_hash(), base.hash, "{e:?}");
    }
    // Deterministic: the same fields always hash the same.
    assert_eq!(base.hash, chain(1)[0].hash);
}

#[test]
fn verify_chain_names_stream_and_version() {
    let good = chain(4);
    verify_chain(&good).unwrap();
    verify_chain(&good[2..]).unwrap();
    let stream = good[0].stream.clone();

    let mut edited = good.clone();
    edited[2].payload = json!({"n": 99});
    assert_eq!(verify_chain(&edited), Err(ChainError::BadHash { stream: stream.clone(), version: 3 }));

    let mut removed = good.clone();
    removed.remove(1);
    assert_eq!(verify_chain(&removed), Err(ChainError::VersionGap { stream: stream.clone(), expected: 2, found: 3 }));

    let mut relinked = good.clone();
    relinked[1].prev_hash = [7; 32];
    relinked[1].hash = relinked[1].compute_hash();
    assert_eq!(verify_chain(&relinked), Err(ChainError::BrokenLink { stream, version: 2 }));
}

#[test]
fn stream_ids_are_validated_and_canonical() {
    for ok in ["market:BTC-USDT", "admin", "chain:1", "user:0x00000000000000000000000000000000000000ab"] {
        assert_eq!(StreamId::parse(ok).unwrap().as_str(), ok);
    }
    for bad in [
        "",
        "market:",
        "market:a b",
        "user:0x12",
        "user:0x00000000000000000000000000000000000000AB",
        "chain:+1",
        "chain:x",
        "admin:1",
        "foo:1",
    ] {
        assert!(StreamId::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(StreamId::user(UserId([0xab; 20])).as_str(), format!("user:0x{}", "ab".repeat(20)));
}

#[test]
fn manual_clock_moves_only_when_told() {
    let t0 = DateTime::from_timestamp_micros(5).unwrap();
    let clock = ManualClock::new(t0);
    assert_eq!(clock.now(), t0);
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(clock.now(), t0 + TimeDelta::seconds(1));
}
