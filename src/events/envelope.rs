//! The envelope around every stored event, the stream names, the injected clock, and the
//! per-stream hash chain: each event's hash covers its own fields and the previous event's
//! hash, so editing, removing or reordering any stored event breaks the chain.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{MarketId, UserId};

/// The `prev_hash` of a stream's first event.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// A stream's name: `market:{id}`, `user:{0xaddr}`, `operator:{0xaddr}`, `admin`,
/// `admin-operator:{0xaddr}` or `chain:{id}`. Always in canonical form (addresses lowercase), so equal streams have equal
/// names and the same bytes feed the hash.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid stream id {got:?}: expected market:{{id}}, user:{{0xaddr}}, operator:{{0xaddr}}, admin, admin-operator:{{0xaddr}} or chain:{{id}}"
)]
pub struct StreamIdError {
    pub got: String,
}

impl StreamId {
    pub fn market(id: MarketId) -> StreamId {
        StreamId(format!("market:{id}"))
    }

    pub fn user(id: UserId) -> StreamId {
        StreamId(format!("user:{id}"))
    }

    /// A settlement operator, by its 20-byte address.
    pub fn operator(address: UserId) -> StreamId {
        StreamId(format!("operator:{address}"))
    }

    pub fn admin() -> StreamId {
        StreamId("admin".to_owned())
    }

    /// The admin operator (market registration, pause on-chain), by its wallet's address.
    pub fn admin_operator(address: UserId) -> StreamId {
        StreamId(format!("admin-operator:{address}"))
    }

    /// A chain, by its EVM chain id.
    pub fn chain(chain_id: u64) -> StreamId {
        StreamId(format!("chain:{chain_id}"))
    }

    /// Parses a stream name; only the canonical form is accepted.
    pub fn parse(s: &str) -> Result<StreamId, StreamIdError> {
        let bad = || StreamIdError { got: s.chars().take(80).collect() };
        let canonical = if s == "admin" {
            StreamId::admin()
        } else if let Some(id) = s.strip_prefix("market:") {
            StreamId::market(MarketId::new(id).map_err(|_| bad())?)
        } else if let Some(addr) = s.strip_prefix("user:") {
            StreamId::user(UserId::from_hex(addr).map_err(|_| bad())?)
        } else if let Some(addr) = s.strip_prefix("admin-operator:") {
            StreamId::admin_operator(UserId::from_hex(addr).map_err(|_| bad())?)
        } else if let Some(addr) = s.strip_prefix("operator:") {
            StreamId::operator(UserId::from_hex(addr).map_err(|_| bad())?)
        } else if let Some(id) = s.strip_prefix("chain:") {
            if !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            StreamId::chain(id.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        if canonical.0 != s {
            return Err(bad());
        }
        Ok(canonical)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({:?})", self.0)
    }
}

/// Where event times come from; injected so tests and simulations own time. Times are kept
/// to the microsecond, the precision the hash and the stores use.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Truncates to whole microseconds (the stored precision), so an envelope read back equals
/// the one written.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_micros(Utc::now())
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(to_micros(start)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = to_micros(t);
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut t = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *t = to_micros(*t + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a caller hands to the store: everything but the position in the stream and the hashes,
/// which the store computes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Value,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id, timed by `clock`.
    pub fn new(
        clock: &dyn Clock,
        correlation_id: Uuid,
        causation_id: Uuid,
        event_type: impl Into<String>,
        schema_version: u16,
        payload: Value,
    ) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            occurred_at: to_micros(clock.now()),
            correlation_id,
            causation_id,
            event_type: event_type.into(),
            schema_version,
            payload,
        }
    }

    /// A market event at its current schema version.
    pub fn market(
        clock: &dyn Clock,
        correlation_id: Uuid,
        causation_id: Uuid,
        event: &crate::domain::MarketEvent,
    ) -> NewEvent {
        let e = super::payload::encode_market_event(event);
        NewEvent::new(clock, correlation_id, causation_id, e.event_type, e.schema_version, e.payload)
    }
}

/// A stored event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventEnvelope {
    pub stream: StreamId,
    /// 1 for a stream's first event, then gapless.
    pub version: u64,
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub idempotency_key: Option<String>,
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Value,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl EventEnvelope {
    /// Places `event` at `version` after an event whose hash is `prev_hash`, and hashes it.
    pub fn seal(
        stream: StreamId,
        version: u64,
        prev_hash: [u8; 32],
        idempotency_key: Option<String>,
        event: NewEvent,
    ) -> EventEnvelope {
        let mut env = EventEnvelope::seal_unhashed(stream, version, prev_hash, idempotency_key, event);
        env.hash = env.compute_hash();
        env
    }

    /// The envelope with its hash still zero, for a caller that hashes it with
    /// `hash_with_payload` from a canonical payload it already has.
    pub fn seal_unhashed(
        stream: StreamId,
        version: u64,
        prev_hash: [u8; 32],
        idempotency_key: Option<String>,
        event: NewEvent,
    ) -> EventEnvelope {
        EventEnvelope {
            stream,
            version,
            event_id: event.event_id,
            occurred_at: to_micros(event.occurred_at),
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            idempotency_key,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
            prev_hash,
            hash: [0; 32],
        }
    }

    /// SHA-256 over the canonical encoding: a domain tag, then every field but `hash` in a
    /// fixed order, variable-length ones prefixed by their length as u64 big-endian, the
    /// payload as canonical JSON. Length prefixes make the encoding injective, so two
    /// different envelopes never feed the hash the same bytes.
    pub fn compute_hash(&self) -> [u8; 32] {
        self.hash_with_payload(&canonical_json(&self.payload))
    }

    /// The hash, given the payload's canonical encoding (which the store also keeps as the
    /// stored text, so it is computed once per event).
    pub fn hash_with_payload(&self, canonical_payload: &[u8]) -> [u8; 32] {
        hash_fields(&HashedFields {
            stream: self.stream.as_str(),
            version: self.version,
            event_id: self.event_id,
            occurred_at_micros: self.occurred_at.timestamp_micros(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            idempotency_key: self.idempotency_key.as_deref(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            canonical_payload,
            prev_hash: self.prev_hash,
        })
    }
}

/// Everything an event's hash covers, borrowed: the auditor hashes stored events from their
/// stored text without building an envelope or a JSON value.
pub struct HashedFields<'a> {
    pub stream: &'a str,
    pub version: u64,
    pub event_id: Uuid,
    pub occurred_at_micros: i64,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub idempotency_key: Option<&'a str>,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub canonical_payload: &'a [u8],
    pub prev_hash: [u8; 32],
}

/// The event hash of `EventEnvelope::compute_hash`, from its fields.
pub fn hash_fields(f: &HashedFields<'_>) -> [u8; 32] {
    fn bytes(h: &mut Sha256, b: &[u8]) {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    }
    let mut h = Sha256::new();
    bytes(&mut h, b"hob.event.v1");
    bytes(&mut h, f.stream.as_bytes());
    h.update(f.version.to_be_bytes());
    h.update(f.event_id.as_bytes());
    h.update(f.occurred_at_micros.to_be_bytes());
    h.update(f.correlation_id.as_bytes());
    h.update(f.causation_id.as_bytes());
    match f.idempotency_key {
        None => h.update([0u8]),
        Some(key) => {
            h.update([1u8]);
            bytes(&mut h, key.as_bytes());
        }
    }
    bytes(&mut h, f.event_type.as_bytes());
    h.update(f.schema_version.to_be_bytes());
    bytes(&mut h, f.canonical_payload);
    h.update(f.prev_hash);
    h.finalize().into()
}

/// JSON with object keys sorted (by their UTF-8 bytes) at every depth and no whitespace.
/// serde_json here preserves insertion order, so sorting must be explicit.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(key.clone()), out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // Scalars have one serde_json text form each; writing to a Vec cannot fail.
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("{stream}: expected version {expected}, found {found}")]
    VersionGap { stream: StreamId, expected: u64, found: u64 },
    #[error("{stream} v{version}: prev_hash does not match the previous event's hash")]
    BrokenLink { stream: StreamId, version: u64 },
    #[error("{stream} v{version}: stored hash does not match the event's contents")]
    BadHash { stream: StreamId, version: u64 },
    #[error("{stream} v{version}: event belongs to another stream than {expected}")]
    WrongStream { stream: StreamId, version: u64, expected: StreamId },
}

impl ChainError {
    pub fn stream(&self) -> &StreamId {
        match self {
            ChainError::VersionGap { stream, .. }
            | ChainError::BrokenLink { stream, .. }
            | ChainError::BadHash { stream, .. }
            | ChainError::WrongStream { stream, .. } => stream,
        }
    }
}

/// Checks a run of consecutive events of one stream: gapless versions, each event's own hash,
/// and each link. A run starting at version 1 must start from the genesis hash; a run
/// starting later trusts its first `prev_hash` (verify from version 1 for the full guarantee).
pub fn verify_chain(events: &[EventEnvelope]) -> Result<(), ChainError> {
    let Some(first) = events.first() else { return Ok(()) };
    let mut prev_hash = if first.version <= 1 { GENESIS_HASH } else { first.prev_hash };
    for (expected_version, e) in (first.version.max(1)..).zip(events) {
        if e.stream != first.stream {
            return Err(ChainError::WrongStream {
                stream: e.stream.clone(),
                version: e.version,
                expected: first.stream.clone(),
            });
        }
        if e.version != expected_version {
            return Err(ChainError::VersionGap {
                stream: e.stream.clone(),
                expected: expected_version,
                found: e.version,
            });
        }
        if e.prev_hash != prev_hash {
            return Err(ChainError::BrokenLink { stream: e.stream.clone(), version: e.version });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::BadHash { stream: e.stream.clone(), version: e.version });
        }
        prev_hash = e.hash;
    }
    Ok(())
}

#[cfg(test)]
#[path = "../../unit_tests/events/envelope.rs"]
mod tests;
