//! The MongoDB store's document layouts, and the checked conversions both ways. One document
//! per event in `events`:
//!
//! ```text
//! { _id: event_id (UUID binary), stream, version (int64), occurred_at_us (int64),
//!   correlation_id, causation_id (UUID binary), idempotency_key (string or null),
//!   event_type, schema_version (int32), payload (canonical JSON text),
//!   prev_hash, hash (32-byte binary) }
//! ```
//!
//! The payload is kept as its canonical JSON text rather than as a BSON sub-document: the
//! text is exactly what the hash covers (the same bytes the SQLite store keeps), replay hands
//! it over without re-encoding, and BSON cannot hold every JSON number (a u64 above
//! `i64::MAX`) nor keep key order. Reading a document checks every field; a bad one is
//! `StoreError::Corrupt` naming stream and version.

use chrono::DateTime;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, Document};
use uuid::Uuid;

use crate::events::envelope::{canonical_json, EventEnvelope, StreamId};
use crate::events::store::{OutboxEntry, OutboxRecord, RawEvent, Snapshot, StoreError};
use crate::events::NewEvent;

/// Stores a u64 counter (version, outbox id) as BSON's int64; a value above `i64::MAX` is
/// refused rather than wrapped.
pub fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::InvalidRequest(format!("{v} does not fit a stored integer")))
}

pub fn uuid_bson(id: Uuid) -> Bson {
    Bson::Binary(Binary { subtype: BinarySubtype::Uuid, bytes: id.as_bytes().to_vec() })
}

pub fn bytes_bson(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: bytes.to_vec() })
}

/// Reads fields of one stored document; every failure names the field.
pub struct Fields<'a>(pub &'a Document);

impl<'a> Fields<'a> {
    pub fn str(&self, key: &str) -> Result<&'a str, String> {
        self.0.get_str(key).map_err(|e| format!("{key}: {e}"))
    }

    pub fn u64(&self, key: &str) -> Result<u64, String> {
        let v = match self.0.get(key) {
            Some(Bson::Int64(v)) => *v,
            Some(Bson::Int32(v)) => i64::from(*v),
            other => return Err(format!("{key}: expected an integer, found {other:?}")),
        };
        u64::try_from(v).map_err(|_| format!("{key}: negative {v}"))
    }

    pub fn bytes(&self, key: &str) -> Result<&'a [u8], String> {
        self.0.get_binary_generic(key).map(Vec::as_slice).or_else(|_| match self.0.get(key) {
            Some(Bson::Binary(b)) => Ok(b.bytes.as_slice()),
            other => Err(format!("{key}: expected binary, found {other:?}")),
        })
    }

    pub fn hash(&self, key: &str) -> Result<[u8; 32], String> {
        self.bytes(key)?.try_into().map_err(|_| format!("{key}: not 32 bytes"))
    }

    pub fn uuid(&self, key: &str) -> Result<Uuid, String> {
        Uuid::from_slice(self.bytes(key)?).map_err(|e| format!("{key}: {e}"))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, String> {
        match self.0.get(key) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("{key}: expected a string or null, found {other:?}")),
        }
    }
}

/// Places `event` at `version` after `prev_hash` and hashes it exactly as every store does
/// (`EventEnvelope::hash_with_payload` over the canonical payload); returns the document and
/// the event's hash.
pub fn encode_event(
    stream: &StreamId,
    version: u64,
    prev_hash: [u8; 32],
    idempotency_key: &Option<String>,
    event: NewEvent,
) -> Result<(Document, [u8; 32]), StoreError> {
    let payload = canonical_json(&event.payload);
    let env = EventEnvelope::seal_unhashed(stream.clone(), version, prev_hash, idempotency_key.clone(), event);
    let hash = env.hash_with_payload(&payload);
    // Canonical JSON is serde_json output, which is always UTF-8.
    let payload = String::from_utf8(payload).map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
    let schema_version = i32::from(env.schema_version);
    let doc = doc! {
        "_id": uuid_bson(env.event_id),
        "stream": stream.as_str(),
        "version": to_i64(version)?,
        "occurred_at_us": env.occurred_at.timestamp_micros(),
        "correlation_id": uuid_bson(env.correlation_id),
        "causation_id": uuid_bson(env.causation_id),
        "idempotency_key": env.idempotency_key.map_or(Bson::Null, Bson::String),
        "event_type": env.event_type,
        "schema_version": schema_version,
        "payload": payload,
        "prev_hash": bytes_bson(&prev_hash),
        "hash": bytes_bson(&hash),
    };
    Ok((doc, hash))
}

fn corrupt(stream: &StreamId, version: u64) -> impl Fn(String) -> StoreError + '_ {
    move |reason| StoreError::Corrupt { stream: stream.to_string(), version, reason }
}

/// The version a document claims, for naming it in errors before anything else is read.
fn claimed_version(doc: &Document) -> u64 {
    Fields(doc).u64("version").unwrap_or(0)
}

fn schema_version(f: &Fields<'_>) -> Result<u16, String> {
    let v = f.u64("schema_version")?;
    u16::try_from(v).map_err(|_| format!("schema_version: {v} out of range"))
}

/// A stored event of `stream` back into its envelope.
pub fn decode_event(stream: &StreamId, doc: &Document) -> Result<EventEnvelope, StoreError> {
    let bad = corrupt(stream, claimed_version(doc));
    let f = Fields(doc);
    let stored_stream = f.str("stream").map_err(&bad)?;
    if stored_stream != stream.as_str() {
        return Err(bad(format!("stored under stream {stored_stream:?}")));
    }
    let micros = doc.get_i64("occurred_at_us").map_err(|e| format!("occurred_at_us: {e}"));
    let occurred_at = micros
        .and_then(|m| DateTime::from_timestamp_micros(m).ok_or_else(|| "occurred_at_us out of range".to_string()))
        .map_err(&bad)?;
    let payload = f.str("payload").map_err(&bad)?;
    Ok(EventEnvelope {
        stream: stream.clone(),
        version: f.u64("version").map_err(&bad)?,
        event_id: f.uuid("_id").map_err(&bad)?,
        occurred_at,
        correlation_id: f.uuid("correlation_id").map_err(&bad)?,
        causation_id: f.uuid("causation_id").map_err(&bad)?,
        idempotency_key: f.opt_str("idempotency_key").map_err(&bad)?,
        event_type: f.str("event_type").map_err(&bad)?.to_owned(),
        schema_version: schema_version(&f).map_err(&bad)?,
        payload: serde_json::from_str(payload).map_err(|e| bad(format!("payload: {e}")))?,
        prev_hash: f.hash("prev_hash").map_err(&bad)?,
        hash: f.hash("hash").map_err(&bad)?,
    })
}

/// What replay needs of a stored event, the payload as its stored text (checked to be JSON,
/// so a corrupt payload is named here and not later by a decoder).
pub fn decode_raw(stream: &StreamId, doc: &Document) -> Result<RawEvent, StoreError> {
    let bad = corrupt(stream, claimed_version(doc));
    let f = Fields(doc);
    let payload = f.str("payload").map_err(&bad)?;
    serde_json::from_str::<serde::de::IgnoredAny>(payload).map_err(|e| bad(format!("payload: {e}")))?;
    Ok(RawEvent {
        version: f.u64("version").map_err(&bad)?,
        event_type: f.str("event_type").map_err(&bad)?.to_owned(),
        schema_version: schema_version(&f).map_err(&bad)?,
        payload: payload.as_bytes().to_vec(),
    })
}

/// One outbox record; `_id` is its id (see `mongo.rs` for how ids follow commit order).
pub fn encode_outbox(id: u64, stream: &StreamId, version: u64, record: &OutboxRecord) -> Result<Document, StoreError> {
    let payload = serde_json::to_string(&record.payload).map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
    Ok(doc! {
        "_id": to_i64(id)?,
        "stream": stream.as_str(),
        "version": to_i64(version)?,
        "destination": record.destination.as_str(),
        "group": record.group.as_str(),
        "payload": payload,
        "published": false,
    })
}

pub fn decode_outbox(doc: &Document) -> Result<OutboxEntry, StoreError> {
    let f = Fields(doc);
    let stream_name = f.str("stream").unwrap_or("?").to_owned();
    let bad = |reason: String| StoreError::Corrupt {
        stream: stream_name.clone(),
        version: claimed_version(doc),
        reason: format!("outbox record {:?}: {reason}", doc.get("_id")),
    };
    let stream = StreamId::parse(&stream_name).map_err(|e| bad(e.to_string()))?;
    let payload = f.str("payload").map_err(&bad)?;
    Ok(OutboxEntry {
        id: f.u64("_id").map_err(&bad)?,
        stream,
        version: f.u64("version").map_err(&bad)?,
        record: OutboxRecord {
            destination: f.str("destination").map_err(&bad)?.to_owned(),
            group: f.str("group").map_err(&bad)?.to_owned(),
            payload: serde_json::from_str(payload).map_err(|e| bad(format!("payload: {e}")))?,
        },
    })
}

pub fn encode_snapshot(snapshot: &Snapshot) -> Result<Document, StoreError> {
    Ok(doc! {
        "stream": snapshot.stream.as_str(),
        "version": to_i64(snapshot.version)?,
        "state": bytes_bson(&snapshot.state),
        "state_hash": bytes_bson(&snapshot.state_hash),
    })
}

pub fn decode_snapshot(stream: &StreamId, doc: &Document) -> Result<Snapshot, StoreError> {
    let version = claimed_version(doc);
    let bad = |reason: String| StoreError::Corrupt {
        stream: stream.to_string(),
        version,
        reason: format!("snapshot: {reason}"),
    };
    let f = Fields(doc);
    Ok(Snapshot {
        stream: stream.clone(),
        version: f.u64("version").map_err(&bad)?,
        state: f.bytes("state").map_err(&bad)?.to_vec(),
        state_hash: f.hash("state_hash").map_err(&bad)?,
    })
}

#[cfg(test)]
#[path = "../../unit_tests/store/mongo_codec.rs"]
mod tests;
