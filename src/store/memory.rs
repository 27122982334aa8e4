//! `MemoryEventStore`: the `EventStore` port in memory, for the deterministic simulation
//! (`crate::sim`) and for tests that need no file. Every call completes at once under one
//! lock, with no thread and no I/O, so a seeded run replays exactly; it passes the same
//! conformance suite as SQLite. Nothing survives the process, which is why a simulated crash
//! keeps the store and drops everything else.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::events::envelope::{EventEnvelope, StreamId, GENESIS_HASH};
use crate::events::store::{AppendRequest, AppendResult, EventStore, OutboxEntry, Snapshot, StoreError};

#[derive(Default)]
struct Inner {
    streams: BTreeMap<StreamId, Vec<EventEnvelope>>,
    idempotency: BTreeMap<String, AppendResult>,
    event_ids: HashSet<Uuid>,
    /// Unpublished outbox entries by id.
    outbox: BTreeMap<u64, OutboxEntry>,
    next_outbox_id: u64,
    snapshots: BTreeMap<(StreamId, u64), Snapshot>,
    processed: BTreeSet<(String, StreamId, u64)>,
    leases: BTreeMap<String, (String, DateTime<Utc>)>,
    /// Lease name -> the node that asked for it (`request_lease`).
    lease_requests: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct MemoryEventStore {
    inner: Mutex<Inner>,
}

impl MemoryEventStore {
    pub fn new() -> MemoryEventStore {
        MemoryEventStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain collections behind, each still valid:
        // every write below is a single insert or a whole-append commit at the end.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every event of every stream, by stream then version: what an auditor or a
    /// determinism check compares.
    pub fn all_events(&self) -> Vec<EventEnvelope> {
        self.lock().streams.values().flatten().cloned().collect()
    }
}

fn expires(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX)
}

impl Inner {
    fn version(&self, stream: &StreamId) -> u64 {
        self.streams.get(stream).map_or(0, |events| events.len() as u64)
    }

    fn append(&mut self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        request.validate()?;
        if let Some(key) = &request.idempotency_key {
            if let Some(original) = self.idempotency.get(key) {
                if original.stream != request.stream {
                    return Err(StoreError::IdempotencyKeyReused {
                        key: key.clone(),
                        original_stream: original.stream.clone(),
                        stream: request.stream,
                    });
                }
                return Ok(AppendResult { deduplicated: true, ..original.clone() });
            }
        }
        let actual = self.version(&request.stream);
        if actual != request.expected_version {
            return Err(StoreError::VersionConflict {
                stream: request.stream,
                expected: request.expected_version,
                actual,
            });
        }
        let mut seen = HashSet::new();
        for event in &request.events {
            if self.event_ids.contains(&event.event_id) || !seen.insert(event.event_id) {
                return Err(StoreError::DuplicateEventId { event_id: event.event_id });
            }
        }
        // Every check passed: from here on the append is written whole.
        let stream = request.stream;
        let events = self.streams.entry(stream.clone()).or_default();
        let mut prev_hash = events.last().map_or(GENESIS_HASH, |e| e.hash);
        let first_version = actual + 1;
        for (i, event) in request.events.into_iter().enumerate() {
            self.event_ids.insert(event.event_id);
            let sealed = EventEnvelope::seal(
                stream.clone(),
                first_version + i as u64,
                prev_hash,
                request.idempotency_key.clone(),
                event,
            );
            prev_hash = sealed.hash;
            events.push(sealed);
        }
        let last_version = events.len() as u64;
        for record in request.outbox {
            self.next_outbox_id += 1;
            let id = self.next_outbox_id;
            self.outbox.insert(id, OutboxEntry { id, stream: stream.clone(), version: last_version, record });
        }
        let result = AppendResult { stream, first_version, last_version, last_hash: prev_hash, deduplicated: false };
        if let Some(key) = request.idempotency_key {
            self.idempotency.insert(key, result.clone());
        }
        Ok(result)
    }

    fn page(&self, stream: &StreamId, from_version: u64, limit: usize) -> Vec<EventEnvelope> {
        let Some(events) = self.streams.get(stream) else { return Vec::new() };
        let skip = from_version.saturating_sub(1).min(events.len() as u64) as usize;
        events[skip..].iter().take(limit).cloned().collect()
    }
}

impl EventStore for MemoryEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.lock().append(request)
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        Ok(self.lock().page(stream, from_version, usize::MAX))
    }

    async fn read_stream_page(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        Ok(self.lock().page(stream, from_version, limit))
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        Ok(self.lock().version(stream))
    }

    async fn list_streams(&self) -> Result<Vec<StreamId>, StoreError> {
        let mut streams: Vec<StreamId> =
            self.lock().streams.iter().filter(|(_, e)| !e.is_empty()).map(|(s, _)| s.clone()).collect();
        streams.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(streams)
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.lock().snapshots.insert((snapshot.stream.clone(), snapshot.version), snapshot);
        Ok(())
    }

    async fn load_latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let inner = self.lock();
        let latest = inner.snapshots.range((stream.clone(), 0)..=(stream.clone(), u64::MAX)).next_back();
        Ok(latest.map(|(_, s)| s.clone()))
    }

    async fn fetch_unpublished(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self.lock().outbox.values().take(limit).cloned().collect())
    }

    async fn fetch_unpublished_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let inner = self.lock();
        Ok(inner.outbox.range(after.saturating_add(1)..).take(limit).map(|(_, e)| e.clone()).collect())
    }

    async fn mark_published(&self, ids: &[u64]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for id in ids {
            inner.outbox.remove(id);
        }
        Ok(())
    }

    async fn mark_processed(&self, consumer: &str, stream: &StreamId, version: u64) -> Result<bool, StoreError> {
        Ok(self.lock().processed.insert((consumer.to_owned(), stream.clone(), version)))
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let free = match inner.leases.get(name) {
            None => true,
            Some((holder, until)) => holder == owner || *until <= now,
        };
        if free {
            inner.leases.insert(name.to_owned(), (owner.to_owned(), expires(now, ttl)));
            inner.lease_requests.remove(name);
        }
        Ok(free)
    }

    async fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let asked = inner.lease_requests.get(name).cloned();
        match inner.leases.get_mut(name) {
            Some((holder, until)) if holder == owner && *until > now => {
                *until = expires(now, ttl);
                if let Some(by) = asked {
                    *holder = by;
                    inner.lease_requests.remove(name);
                    return Ok(false);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn request_lease(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let held_by_another = inner.leases.get(name).is_some_and(|(holder, until)| holder != by && *until > now);
        if held_by_another {
            inner.lease_requests.insert(name.to_owned(), by.to_owned());
        }
        Ok(())
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.leases.get(name) {
            Some((holder, _)) if holder == owner => {
                inner.leases.remove(name);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn lease_owner(&self, name: &str, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        let inner = self.lock();
        Ok(inner.leases.get(name).filter(|(_, until)| *until > now).map(|(holder, _)| holder.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn passes_the_event_store_conformance_suite() {
        crate::events::conformance::run_all(MemoryEventStore::new).await;
    }
}
