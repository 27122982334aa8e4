//! The `EventStore` port: what the actors, the outbox relay and the consumers need from
//! storage, and nothing about how an adapter provides it. Every adapter passes the suite in
//! `conformance.rs`.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::envelope::{EventEnvelope, NewEvent, StreamId};

/// Most events one append may carry; a bigger append is refused, never split.
pub const MAX_EVENTS_PER_APPEND: usize = 4_096;
/// Most outbox records one append may carry.
pub const MAX_OUTBOX_PER_APPEND: usize = 16_384;

/// A message to deliver once the append is durable: the relay sends `payload` to queue
/// `destination`, message group `group` (per-group order is kept).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRecord {
    pub destination: String,
    pub group: String,
    pub payload: Value,
}

/// An outbox record as stored, tagged with the stream and the last version of the append
/// that wrote it (the consumer's deduplication key).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    /// Increases in commit order.
    pub id: u64,
    pub stream: StreamId,
    pub version: u64,
    pub record: OutboxRecord,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    pub stream: StreamId,
    /// The stream's version the caller decided against (0 for a new stream).
    pub expected_version: u64,
    pub events: Vec<NewEvent>,
    pub outbox: Vec<OutboxRecord>,
    /// A repeated key returns the first append's result and writes nothing.
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendResult {
    pub stream: StreamId,
    pub first_version: u64,
    pub last_version: u64,
    pub last_hash: [u8; 32],
    /// True when this is the stored result of an earlier append with the same key.
    pub deduplicated: bool,
}

/// A stored event as an actor's replay needs it: its position, type and stored payload bytes,
/// without the envelope's ids and hashes (the auditor checks those) and without building a
/// generic JSON value, so replay decodes straight into the wire types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub version: u64,
    pub event_type: String,
    pub schema_version: u16,
    /// The payload as JSON text.
    pub payload: Vec<u8>,
}

impl RawEvent {
    pub fn from_envelope(e: EventEnvelope) -> RawEvent {
        RawEvent {
            version: e.version,
            // A `Value` always serializes.
            payload: serde_json::to_vec(&e.payload).unwrap_or_default(),
            event_type: e.event_type,
            schema_version: e.schema_version,
        }
    }

    /// The payload as a generic JSON value, for the few bookkeeping events read that way.
    pub fn value(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.payload).map_err(|e| format!("{}: {e}", self.event_type))
    }
}

/// A stored event with everything its hash covers, the payload as its stored canonical text:
/// the auditor's read, which checks hashes without building a JSON value per event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedEvent {
    pub version: u64,
    pub event_id: uuid::Uuid,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: uuid::Uuid,
    pub causation_id: uuid::Uuid,
    pub idempotency_key: Option<String>,
    pub event_type: String,
    pub schema_version: u16,
    /// The payload as canonical JSON text (what the hash covers).
    pub payload: Vec<u8>,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl SealedEvent {
    pub fn from_envelope(e: EventEnvelope) -> SealedEvent {
        SealedEvent {
            version: e.version,
            event_id: e.event_id,
            occurred_at: e.occurred_at,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            payload: super::envelope::canonical_json(&e.payload),
            idempotency_key: e.idempotency_key,
            event_type: e.event_type,
            schema_version: e.schema_version,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }

    /// The hash this event should carry as version `self.version` of `stream`.
    pub fn compute_hash(&self, stream: &StreamId) -> [u8; 32] {
        super::envelope::hash_fields(&super::envelope::HashedFields {
            stream: stream.as_str(),
            version: self.version,
            event_id: self.event_id,
            occurred_at_micros: self.occurred_at.timestamp_micros(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            idempotency_key: self.idempotency_key.as_deref(),
            event_type: &self.event_type,
            schema_version: self.schema_version,
            canonical_payload: &self.payload,
            prev_hash: self.prev_hash,
        })
    }

    /// The replay's view of the event.
    pub fn raw(&self) -> RawEvent {
        RawEvent {
            version: self.version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload: self.payload.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub stream: StreamId,
    /// The version of the last event folded into `state`.
    pub version: u64,
    pub state: Vec<u8>,
    pub state_hash: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{stream}: expected version {expected}, stream is at {actual}")]
    VersionConflict { stream: StreamId, expected: u64, actual: u64 },
    #[error("idempotency key {key:?} was used for stream {original_stream}, not {stream}")]
    IdempotencyKeyReused { key: String, original_stream: StreamId, stream: StreamId },
    #[error("event id {event_id} is already stored")]
    DuplicateEventId { event_id: uuid::Uuid },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("corrupt row in {stream} v{version}: {reason}")]
    Corrupt { stream: String, version: u64, reason: String },
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("the store is closed")]
    Closed,
}

impl AppendRequest {
    /// Checks done before any write, identical in every adapter.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Err(StoreError::InvalidRequest("an append needs at least one event".into()));
        }
        if self.events.len() > MAX_EVENTS_PER_APPEND {
            return Err(StoreError::InvalidRequest(format!(
                "{} events in one append, limit {MAX_EVENTS_PER_APPEND}",
                self.events.len()
            )));
        }
        if self.outbox.len() > MAX_OUTBOX_PER_APPEND {
            return Err(StoreError::InvalidRequest(format!(
                "{} outbox records in one append, limit {MAX_OUTBOX_PER_APPEND}",
                self.outbox.len()
            )));
        }
        Ok(())
    }
}

/// Storage for event streams, their outbox, consumers' deduplication and leases.
///
/// Futures are `Send` so the store can be awaited from any tokio or actix task.
pub trait EventStore: Send + Sync {
    /// Appends atomically: the events (versions `expected_version + 1 ..`, hash-chained), the
    /// outbox records and the idempotency row are all stored, or none is. Resolves only once
    /// the write is durable.
    fn append(&self, request: AppendRequest) -> impl Future<Output = Result<AppendResult, StoreError>> + Send;

    /// Events of `stream` with version >= `from_version`, in version order.
    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send;

    /// At most `limit` events of `stream` from `from_version` on, in version order: replay in
    /// pages keeps memory bounded however long the stream is.
    fn read_stream_page(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send {
        async move {
            // Portable fallback; adapters override it with a bounded query.
            let mut events = self.read_stream(stream, from_version).await?;
            events.truncate(limit);
            Ok(events)
        }
    }

    /// Like `read_stream_page`, as `RawEvent`s: the replay path.
    fn read_stream_raw(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RawEvent>, StoreError>> + Send {
        async move {
            // Portable fallback; adapters that store JSON text hand it over as it is.
            let page = self.read_stream_page(stream, from_version, limit).await?;
            Ok(page.into_iter().map(RawEvent::from_envelope).collect())
        }
    }

    /// Like `read_stream_page`, as `SealedEvent`s: the auditor's path.
    fn read_stream_sealed(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SealedEvent>, StoreError>> + Send {
        async move {
            // Portable fallback; adapters that store canonical JSON text hand it over as it is.
            let page = self.read_stream_page(stream, from_version, limit).await?;
            Ok(page.into_iter().map(SealedEvent::from_envelope).collect())
        }
    }

    /// The stream's current version (0 if it has no events).
    fn stream_version(&self, stream: &StreamId) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every stream with at least one event, sorted by name.
    fn list_streams(&self) -> impl Future<Output = Result<Vec<StreamId>, StoreError>> + Send;

    /// Stores a snapshot; saving the same stream and version again replaces it.
    fn save_snapshot(&self, snapshot: Snapshot) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The snapshot with the highest version, if any.
    fn load_latest_snapshot(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Up to `limit` unpublished outbox entries, oldest first.
    fn fetch_unpublished(&self, limit: usize) -> impl Future<Output = Result<Vec<OutboxEntry>, StoreError>> + Send;

    /// Up to `limit` unpublished outbox entries with an id above `after`, oldest first: a
    /// relay that remembers what it already sent reads only what is new.
    fn fetch_unpublished_after(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, StoreError>> + Send {
        async move {
            // Portable fallback; adapters override it with an indexed range query.
            let mut entries = self.fetch_unpublished(limit.saturating_add(after as usize)).await?;
            entries.retain(|e| e.id > after);
            entries.truncate(limit);
            Ok(entries)
        }
    }

    /// Marks entries published; unknown or already published ids are ignored.
    fn mark_published(&self, ids: &[u64]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that `consumer` applied `(stream, version)`; true if it had not before.
    fn mark_processed(
        &self,
        consumer: &str,
        stream: &StreamId,
        version: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes lease `name` for `owner` until `now + ttl` if it is free, expired, or already
    /// `owner`'s; true on success.
    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Extends `owner`'s unexpired lease to `now + ttl`; false if `owner` does not hold it.
    /// If another node asked for the lease (`request_lease`), the renewal hands it over
    /// instead, in the same write: the asker holds it until `now + ttl`, and the answer is
    /// false (the caller's actor stops, as for a lost lease).
    fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Asks the live holder of lease `name` to hand it to `by` at its next renewal. Nothing
    /// happens if the lease is free, expired or already `by`'s; a later ask replaces an
    /// earlier one, and taking the lease (`acquire_lease`) clears it.
    fn request_lease(
        &self,
        name: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the lease up; false if `owner` did not hold it.
    fn release_lease(&self, name: &str, owner: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Who holds lease `name` unexpired at `now`, to name the owner in a refusal. Advisory
    /// only (it may change the moment it is read); `None` when free or when the adapter does
    /// not say, which is why a default exists for test doubles.
    fn lease_owner(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        let _ = (name, now);
        async { Ok(None) }
    }
}
