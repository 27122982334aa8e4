//! The store `hob serve` was configured with, chosen at start: the embedded SQLite file or a
//! MongoDB replica set. Each call goes to the adapter as it is, so each keeps its own bounded
//! queries and fast paths.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::mongo::MongoEventStore;
use super::mongo_views::MongoViewStore;
use super::sqlite::SqliteEventStore;
use super::sqlite_views::SqliteViewStore;
use crate::events::{
    AppendRequest, AppendResult, EventEnvelope, EventStore, OutboxEntry, RawEvent, Snapshot, StoreError, StreamId,
};
use crate::projections::{Checkpoint, StoredView, ViewBatch, ViewStore, ViewStoreError};

pub enum AnyEventStore {
    Sqlite(SqliteEventStore),
    Mongo(MongoEventStore),
}

pub enum AnyViewStore {
    Sqlite(SqliteViewStore),
    Mongo(MongoViewStore),
}

/// The same call on whichever adapter `$store` holds.
macro_rules! each {
    ($store:expr, $enum:ident, $inner:ident => $call:expr) => {
        match $store {
            $enum::Sqlite($inner) => $call.await,
            $enum::Mongo($inner) => $call.await,
        }
    };
}

impl EventStore for AnyEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        each!(self, AnyEventStore, s => s.append(request))
    }

    async fn read_stream(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        each!(self, AnyEventStore, s => s.read_stream(stream, from))
    }

    async fn read_stream_page(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        each!(self, AnyEventStore, s => s.read_stream_page(stream, from, limit))
    }

    async fn read_stream_raw(&self, stream: &StreamId, from: u64, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        each!(self, AnyEventStore, s => s.read_stream_raw(stream, from, limit))
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        each!(self, AnyEventStore, s => s.stream_version(stream))
    }

    async fn list_streams(&self) -> Result<Vec<StreamId>, StoreError> {
        each!(self, AnyEventStore, s => s.list_streams())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        each!(self, AnyEventStore, s => s.save_snapshot(snapshot))
    }

    async fn load_latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        each!(self, AnyEventStore, s => s.load_latest_snapshot(stream))
    }

    async fn fetch_unpublished(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        each!(self, AnyEventStore, s => s.fetch_unpublished(limit))
    }

    async fn fetch_unpublished_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        each!(self, AnyEventStore, s => s.fetch_unpublished_after(after, limit))
    }

    async fn mark_published(&self, ids: &[u64]) -> Result<(), StoreError> {
        each!(self, AnyEventStore, s => s.mark_published(ids))
    }

    async fn mark_processed(&self, consumer: &str, stream: &StreamId, version: u64) -> Result<bool, StoreError> {
        each!(self, AnyEventStore, s => s.mark_processed(consumer, stream, version))
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        each!(self, AnyEventStore, s => s.acquire_lease(name, owner, ttl, now))
    }

    async fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        each!(self, AnyEventStore, s => s.renew_lease(name, owner, ttl, now))
    }

    async fn request_lease(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        each!(self, AnyEventStore, s => s.request_lease(name, by, now))
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        each!(self, AnyEventStore, s => s.release_lease(name, owner))
    }

    async fn lease_owner(&self, name: &str, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        each!(self, AnyEventStore, s => s.lease_owner(name, now))
    }
}

impl ViewStore for AnyViewStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Value>, ViewStoreError> {
        each!(self, AnyViewStore, v => v.load(kind, key))
    }

    async fn checkpoint(&self, projection: &str, stream: &StreamId) -> Result<u64, ViewStoreError> {
        each!(self, AnyViewStore, v => v.checkpoint(projection, stream))
    }

    async fn save(&self, batch: ViewBatch) -> Result<(), ViewStoreError> {
        each!(self, AnyViewStore, v => v.save(batch))
    }

    async fn list(&self) -> Result<Vec<StoredView>, ViewStoreError> {
        each!(self, AnyViewStore, v => v.list())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ViewStoreError> {
        each!(self, AnyViewStore, v => v.checkpoints())
    }
}
