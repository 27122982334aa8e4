//! The simulated disk: a `MemoryEventStore` that outlives every crash, seen through a
//! `CrashingStore` that dies at a planned write. Dead, it refuses every call, as a killed
//! process would make nothing more durable; the runner then drops the whole engine and starts
//! a new one on the same memory.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::events::{
    AppendRequest, AppendResult, EventEnvelope, EventStore, OutboxEntry, Snapshot, StoreError, StreamId,
};
use crate::store::MemoryEventStore;

/// Where the next crash hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The process dies just before the `n`-th append from now (0: the next) is written.
    BeforeAppend(u32),
    /// The `n`-th append from now commits, then the process dies before anyone hears of it.
    AfterAppend(u32),
    /// The process dies while writing the next snapshot.
    MidSnapshot,
}

pub struct CrashingStore {
    disk: Arc<MemoryEventStore>,
    dead: AtomicBool,
    /// Appends left before the crash; negative: none planned.
    appends_left: AtomicI64,
    commit_then_die: AtomicBool,
    die_on_snapshot: AtomicBool,
}

fn died() -> StoreError {
    StoreError::Backend("simulated crash: the process is dead".into())
}

impl CrashingStore {
    pub fn new(disk: Arc<MemoryEventStore>) -> CrashingStore {
        CrashingStore {
            disk,
            dead: AtomicBool::new(false),
            appends_left: AtomicI64::new(-1),
            commit_then_die: AtomicBool::new(false),
            die_on_snapshot: AtomicBool::new(false),
        }
    }

    pub fn disk(&self) -> &Arc<MemoryEventStore> {
        &self.disk
    }

    pub fn plan(&self, point: CrashPoint) {
        match point {
            CrashPoint::BeforeAppend(n) | CrashPoint::AfterAppend(n) => {
                self.commit_then_die.store(matches!(point, CrashPoint::AfterAppend(_)), Ordering::SeqCst);
                self.appends_left.store(i64::from(n), Ordering::SeqCst);
            }
            CrashPoint::MidSnapshot => self.die_on_snapshot.store(true, Ordering::SeqCst),
        }
    }

    /// The process dies now.
    pub fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    fn alive(&self) -> Result<(), StoreError> {
        if self.is_dead() {
            Err(died())
        } else {
            Ok(())
        }
    }
}

impl EventStore for CrashingStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.alive()?;
        let planned = self.appends_left.load(Ordering::SeqCst) >= 0;
        if planned && self.appends_left.fetch_sub(1, Ordering::SeqCst) == 0 {
            self.kill();
            if self.commit_then_die.load(Ordering::SeqCst) {
                // Durable, but the reply is lost with the process.
                let _ = self.disk.append(request).await;
            }
            return Err(died());
        }
        self.disk.append(request).await
    }

    async fn read_stream(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.alive()?;
        self.disk.read_stream(stream, from).await
    }

    async fn read_stream_page(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.alive()?;
        self.disk.read_stream_page(stream, from, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.alive()?;
        self.disk.stream_version(stream).await
    }

    async fn list_streams(&self) -> Result<Vec<StreamId>, StoreError> {
        self.alive()?;
        self.disk.list_streams().await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.alive()?;
        if self.die_on_snapshot.swap(false, Ordering::SeqCst) {
            // The snapshot's transaction never commits.
            self.kill();
            return Err(died());
        }
        self.disk.save_snapshot(snapshot).await
    }

    async fn load_latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.alive()?;
        self.disk.load_latest_snapshot(stream).await
    }

    async fn fetch_unpublished(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.alive()?;
        self.disk.fetch_unpublished(limit).await
    }

    async fn fetch_unpublished_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.alive()?;
        self.disk.fetch_unpublished_after(after, limit).await
    }

    async fn mark_published(&self, ids: &[u64]) -> Result<(), StoreError> {
        self.alive()?;
        self.disk.mark_published(ids).await
    }

    async fn mark_processed(&self, consumer: &str, stream: &StreamId, version: u64) -> Result<bool, StoreError> {
        self.alive()?;
        self.disk.mark_processed(consumer, stream, version).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.alive()?;
        self.disk.acquire_lease(name, owner, ttl, now).await
    }

    async fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.alive()?;
        self.disk.renew_lease(name, owner, ttl, now).await
    }

    async fn request_lease(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.alive()?;
        self.disk.request_lease(name, by, now).await
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        self.alive()?;
        self.disk.release_lease(name, owner).await
    }
}
