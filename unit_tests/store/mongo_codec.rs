//! Unit tests of `src/store/mongo_codec.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap` that fails is the test failing.
use super::*;
use crate::events::envelope::{verify_chain, GENESIS_HASH};
use serde_json::json;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::from_u128(u128::from(n)),
        occurred_at: DateTime::from_timestamp_micros(1_700_000_000_000_000 + n as i64).unwrap(),
        correlation_id: Uuid::from_u128(7),
        causation_id: Uuid::from_u128(8),
        event_type: "test.Happened".into(),
        schema_version: 1,
        payload: json!({ "n": n, "big": u64::MAX, "b": [1, 2] }),
    }
}

#[test]
fn events_round_trip_into_a_chain_the_shared_verifier_accepts() {
    let s = StreamId::parse("market:BTC-USDT").unwrap();
    let mut prev = GENESIS_HASH;
    let mut out = Vec::new();
    for v in 1..=3 {
        let key = (v == 2).then(|| "k".to_owned());
        let (doc, hash) = encode_event(&s, v, prev, &key, event(v)).unwrap();
        let env = decode_event(&s, &doc).unwrap();
        // The same hash as the shared sealing code computes for the same event.
        assert_eq!(EventEnvelope::seal(s.clone(), v, prev, key, event(v)).hash, hash);
        assert_eq!(env.hash, hash);
        assert_eq!(decode_raw(&s, &doc).unwrap(), RawEvent::from_envelope(env.clone()));
        out.push(env);
        prev = hash;
    }
    assert_eq!(verify_chain(&out), Ok(()));
    assert_eq!(out[0].payload["big"], json!(u64::MAX));
}

#[test]
fn a_bad_field_is_corrupt_naming_stream_version_and_field() {
    let s = StreamId::parse("market:BTC-USDT").unwrap();
    let (mut doc, _) = encode_event(&s, 4, GENESIS_HASH, &None, event(4)).unwrap();
    doc.insert("payload", "{not json");
    let err = decode_event(&s, &doc).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { stream, version: 4, reason }
        if stream == s.as_str() && reason.contains("payload")),
        "{err:?}"
    );
    assert!(matches!(decode_raw(&s, &doc), Err(StoreError::Corrupt { version: 4, .. })));
    doc.insert("hash", bytes_bson(&[1, 2, 3]));
    doc.insert("payload", "{}");
    let err = decode_event(&s, &doc).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { version: 4, reason, .. } if reason.contains("hash")), "{err:?}");
}
