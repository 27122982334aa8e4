//! The byte layouts of the SQLite store's two packed columns: a commit's events and an
//! append's outbox records. One row per append (not per event or record) is what lets a group
//! commit touch few pages; these layouts are what goes inside the row.
//!
//! Commit (`commits.events`), all integers big-endian:
//!
//! ```text
//! prev_hash[32]                         hash of the event before the commit's first
//! per event:
//!   event_id[16] occurred_at_us:i64 correlation_id[16] causation_id[16]
//!   event_type_len:u16 event_type schema_version:u16
//!   payload_len:u32 payload (canonical JSON)  hash[32]
//! ```
//!
//! Versions are implicit (`first_version + index`), as is each event's `prev_hash` (the hash
//! before it), so an edited or removed event still breaks the chain exactly as before.
//!
//! Outbox (`outbox.records`): per record `destination_len:u16 destination group_len:u16 group
//! payload_len:u32 payload (JSON)`.

use chrono::DateTime;
use serde_json::Value;
use uuid::Uuid;

use crate::events::envelope::{canonical_json, EventEnvelope, StreamId};
use crate::events::store::{OutboxRecord, RawEvent, SealedEvent};
use crate::events::NewEvent;

/// Why a packed column does not decode; the caller names stream and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// Index of the event (or record) the error is in.
    pub index: usize,
    pub reason: String,
}

/// Builds a commit blob event by event, hashing each as it goes.
pub struct CommitWriter {
    buf: Vec<u8>,
    prev_hash: [u8; 32],
}

impl CommitWriter {
    pub fn new(prev_hash: [u8; 32]) -> CommitWriter {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&prev_hash);
        CommitWriter { buf, prev_hash }
    }

    /// Adds `event` at `version` of `stream`; returns its hash.
    pub fn push(
        &mut self,
        stream: &StreamId,
        version: u64,
        idempotency_key: &Option<String>,
        event: NewEvent,
    ) -> Result<[u8; 32], String> {
        let payload = canonical_json(&event.payload);
        let type_len = u16::try_from(event.event_type.len()).map_err(|_| "event type too long".to_string())?;
        let payload_len = u32::try_from(payload.len()).map_err(|_| "payload too large".to_string())?;
        let env = EventEnvelope::seal_unhashed(stream.clone(), version, self.prev_hash, idempotency_key.clone(), event);
        let hash = env.hash_with_payload(&payload);
        let b = &mut self.buf;
        b.extend_from_slice(env.event_id.as_bytes());
        b.extend_from_slice(&env.occurred_at.timestamp_micros().to_be_bytes());
        b.extend_from_slice(env.correlation_id.as_bytes());
        b.extend_from_slice(env.causation_id.as_bytes());
        b.extend_from_slice(&type_len.to_be_bytes());
        b.extend_from_slice(env.event_type.as_bytes());
        b.extend_from_slice(&env.schema_version.to_be_bytes());
        b.extend_from_slice(&payload_len.to_be_bytes());
        b.extend_from_slice(&payload);
        b.extend_from_slice(&hash);
        self.prev_hash = hash;
        Ok(hash)
    }

    pub fn last_hash(&self) -> [u8; 32] {
        self.prev_hash
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A cursor over a packed column; every read names what was missing.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else { return Err(format!("truncated at {what}")) };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        // `take(N)` returned exactly N bytes, so the conversion cannot fail.
        self.take(N, what).map(|b| b.try_into().unwrap_or([0; N]))
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.array::<2>(what).map(u16::from_be_bytes)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array::<4>(what).map(u32::from_be_bytes)
    }

    fn str(&mut self, n: usize, what: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n, what)?).map_err(|e| format!("{what}: {e}"))
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Decodes a commit of `stream` whose first event is `first_version`, keeping the events with
/// version >= `from` (at most `limit` of them). Every event is decoded (not only the kept
/// ones) so the chain of implicit `prev_hash`es is right.
pub fn decode_commit(
    stream: &StreamId,
    first_version: u64,
    idempotency_key: &Option<String>,
    bytes: &[u8],
    from: u64,
    limit: usize,
    out: &mut Vec<EventEnvelope>,
) -> Result<u64, CodecError> {
    walk_commit(first_version, bytes, |packed| {
        if packed.version < from || out.len() >= limit {
            return Ok(());
        }
        let payload: Value = serde_json::from_slice(packed.payload).map_err(|x| format!("payload: {x}"))?;
        out.push(EventEnvelope {
            stream: stream.clone(),
            version: packed.version,
            event_id: packed.event_id,
            occurred_at: packed.occurred_at,
            correlation_id: packed.correlation_id,
            causation_id: packed.causation_id,
            idempotency_key: idempotency_key.clone(),
            event_type: packed.event_type.to_owned(),
            schema_version: packed.schema_version,
            payload,
            prev_hash: packed.prev_hash,
            hash: packed.hash,
        });
        Ok(())
    })
}

/// Like `decode_commit`, keeping only what replay needs and the payload as its stored text.
pub fn decode_commit_raw(
    first_version: u64,
    bytes: &[u8],
    from: u64,
    limit: usize,
    out: &mut Vec<RawEvent>,
) -> Result<u64, CodecError> {
    walk_commit(first_version, bytes, |packed| {
        if packed.version >= from && out.len() < limit {
            out.push(RawEvent {
                version: packed.version,
                event_type: packed.event_type.to_owned(),
                schema_version: packed.schema_version,
                payload: packed.payload.to_vec(),
            });
        }
        Ok(())
    })
}

/// One event of a commit, borrowed from the packed bytes.
/// Unpacks one commit's events from version `from` on as `SealedEvent`s (the auditor's read):
/// every hashed field, the payload's stored text as it is.
pub fn decode_commit_sealed(
    first_version: u64,
    idempotency_key: &Option<String>,
    bytes: &[u8],
    from: u64,
    limit: usize,
    out: &mut Vec<SealedEvent>,
) -> Result<u64, CodecError> {
    walk_commit(first_version, bytes, |packed| {
        if packed.version >= from && out.len() < limit {
            out.push(SealedEvent {
                version: packed.version,
                event_id: packed.event_id,
                occurred_at: packed.occurred_at,
                correlation_id: packed.correlation_id,
                causation_id: packed.causation_id,
                idempotency_key: idempotency_key.clone(),
                event_type: packed.event_type.to_owned(),
                schema_version: packed.schema_version,
                payload: packed.payload.to_vec(),
                prev_hash: packed.prev_hash,
                hash: packed.hash,
            });
        }
        Ok(())
    })
}

struct Packed<'a> {
    version: u64,
    event_id: Uuid,
    occurred_at: DateTime<chrono::Utc>,
    correlation_id: Uuid,
    causation_id: Uuid,
    event_type: &'a str,
    schema_version: u16,
    payload: &'a [u8],
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// Walks every event of a commit in order (all of them, so each one's implicit `prev_hash` is
/// right), handing each to `visit`; returns how many there were.
fn walk_commit(
    first_version: u64,
    bytes: &[u8],
    mut visit: impl FnMut(Packed<'_>) -> Result<(), String>,
) -> Result<u64, CodecError> {
    let mut r = Reader { bytes, at: 0 };
    let err = |index: usize| move |reason: String| CodecError { index, reason };
    let mut prev_hash: [u8; 32] = r.array("prev_hash").map_err(err(0))?;
    let mut index = 0usize;
    while !r.done() {
        let version = first_version + index as u64;
        let e = err(index);
        let event_id = Uuid::from_bytes(r.array("event_id").map_err(e)?);
        let micros = i64::from_be_bytes(r.array("occurred_at").map_err(e)?);
        let occurred_at =
            DateTime::from_timestamp_micros(micros).ok_or_else(|| e("occurred_at out of range".to_string()))?;
        let correlation_id = Uuid::from_bytes(r.array("correlation_id").map_err(e)?);
        let causation_id = Uuid::from_bytes(r.array("causation_id").map_err(e)?);
        let type_len = r.u16("event_type length").map_err(e)? as usize;
        let event_type = r.str(type_len, "event_type").map_err(e)?;
        let schema_version = r.u16("schema_version").map_err(e)?;
        let payload_len = r.u32("payload length").map_err(e)? as usize;
        let payload = r.take(payload_len, "payload").map_err(e)?;
        let hash: [u8; 32] = r.array("hash").map_err(e)?;
        let packed = Packed {
            version,
            event_id,
            occurred_at,
            correlation_id,
            causation_id,
            event_type,
            schema_version,
            payload,
            prev_hash,
            hash,
        };
        visit(packed).map_err(e)?;
        prev_hash = hash;
        index += 1;
    }
    Ok(index as u64)
}

/// Packs an append's outbox records into one column.
pub fn encode_outbox(records: &[OutboxRecord]) -> Result<Vec<u8>, String> {
    let mut b = Vec::with_capacity(64 * records.len());
    for r in records {
        let payload = serde_json::to_vec(&r.payload).map_err(|e| e.to_string())?;
        let d = u16::try_from(r.destination.len()).map_err(|_| "destination too long".to_string())?;
        let g = u16::try_from(r.group.len()).map_err(|_| "group too long".to_string())?;
        let p = u32::try_from(payload.len()).map_err(|_| "payload too large".to_string())?;
        b.extend_from_slice(&d.to_be_bytes());
        b.extend_from_slice(r.destination.as_bytes());
        b.extend_from_slice(&g.to_be_bytes());
        b.extend_from_slice(r.group.as_bytes());
        b.extend_from_slice(&p.to_be_bytes());
        b.extend_from_slice(&payload);
    }
    Ok(b)
}

pub fn decode_outbox(bytes: &[u8]) -> Result<Vec<OutboxRecord>, CodecError> {
    let mut r = Reader { bytes, at: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let e = |reason: String| CodecError { index: out.len(), reason };
        let d = r.u16("destination length").map_err(e)? as usize;
        let destination = r.str(d, "destination").map_err(e)?.to_owned();
        let g = r.u16("group length").map_err(e)? as usize;
        let group = r.str(g, "group").map_err(e)?.to_owned();
        let p = r.u32("payload length").map_err(e)? as usize;
        let payload =
            serde_json::from_slice(r.take(p, "payload").map_err(e)?).map_err(|x| e(format!("payload: {x}")))?;
        out.push(OutboxRecord { destination, group, payload });
    }
    Ok(out)
}

/// Which records of an outbox row are published: one bit per record.
pub fn is_published(mask: Option<&[u8]>, index: usize) -> bool {
    mask.and_then(|m| m.get(index / 8)).is_some_and(|byte| byte & (1 << (index % 8)) != 0)
}

/// Sets `index`'s bit, growing the mask to `count` records.
pub fn set_published(mask: &mut Vec<u8>, count: usize, index: usize) {
    mask.resize(count.div_ceil(8), 0);
    if let Some(byte) = mask.get_mut(index / 8) {
        *byte |= 1 << (index % 8);
    }
}

pub fn all_published(mask: &[u8], count: usize) -> bool {
    (0..count).all(|i| is_published(Some(mask), i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::envelope::{verify_chain, GENESIS_HASH};
    use serde_json::json;

    fn event(n: u64) -> NewEvent {
        NewEvent {
            event_id: Uuid::from_u128(n as u128),
            occurred_at: DateTime::from_timestamp_micros(1_700_000_000_000_000 + n as i64).unwrap_or_default(),
            correlation_id: Uuid::from_u128(7),
            causation_id: Uuid::from_u128(8),
            event_type: "test.Happened".into(),
            schema_version: 1,
            payload: json!({ "n": n, "b": [1, 2] }),
        }
    }

    fn commit(stream: &StreamId, first: u64, n: u64, prev: [u8; 32]) -> (Vec<u8>, [u8; 32]) {
        let mut w = CommitWriter::new(prev);
        for i in 0..n {
            w.push(stream, first + i, &None, event(first + i)).map_err(|e| e.to_string()).unwrap_or_default();
        }
        let last = w.last_hash();
        (w.finish(), last)
    }

    #[test]
    fn a_commit_decodes_to_a_valid_chain_across_commits() {
        let s = StreamId::parse("market:BTC-USDT").unwrap_or_else(|_| unreachable!());
        let (a, last) = commit(&s, 1, 3, GENESIS_HASH);
        let (b, _) = commit(&s, 4, 2, last);
        let mut out = Vec::new();
        assert_eq!(decode_commit(&s, 1, &None, &a, 1, usize::MAX, &mut out), Ok(3));
        assert_eq!(decode_commit(&s, 4, &None, &b, 1, usize::MAX, &mut out), Ok(2));
        assert_eq!(out.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert_eq!(verify_chain(&out), Ok(()));
        assert_eq!(out[1].payload, json!({ "n": 2, "b": [1, 2] }));
    }

    #[test]
    fn a_commit_read_from_a_version_keeps_the_chain_of_the_skipped_events() {
        let s = StreamId::parse("market:BTC-USDT").unwrap_or_else(|_| unreachable!());
        let (a, _) = commit(&s, 1, 5, GENESIS_HASH);
        let mut all = Vec::new();
        decode_commit(&s, 1, &None, &a, 1, usize::MAX, &mut all).unwrap_or_default();
        let mut page = Vec::new();
        decode_commit(&s, 1, &None, &a, 3, 2, &mut page).unwrap_or_default();
        assert_eq!(page, all[2..4].to_vec());
    }

    #[test]
    fn a_truncated_commit_names_the_event() {
        let s = StreamId::parse("market:BTC-USDT").unwrap_or_else(|_| unreachable!());
        let (a, _) = commit(&s, 1, 3, GENESIS_HASH);
        let mut out = Vec::new();
        let err = decode_commit(&s, 1, &None, &a[..a.len() - 5], 1, usize::MAX, &mut out).unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err.reason.contains("hash"), "{}", err.reason);
    }

    #[test]
    fn outbox_records_round_trip_and_masks_count_records() {
        let records = vec![
            OutboxRecord { destination: "market".into(), group: "market:BTC-USDT".into(), payload: json!({"a": 1}) },
            OutboxRecord { destination: "user".into(), group: "user:0x01".into(), payload: json!([true]) },
        ];
        let bytes = encode_outbox(&records).unwrap_or_default();
        assert_eq!(decode_outbox(&bytes), Ok(records));
        let mut mask = Vec::new();
        set_published(&mut mask, 10, 9);
        assert!(is_published(Some(&mask), 9) && !is_published(Some(&mask), 0) && !is_published(None, 9));
        assert!(!all_published(&mask, 10));
        for i in 0..9 {
            set_published(&mut mask, 10, i);
        }
        assert!(all_published(&mask, 10));
    }
}
