//! The `ViewStore` port: where views and their checkpoints live. A save writes views and
//! checkpoints together or not at all, so a view is never ahead of or behind its
//! checkpoint; each checkpoint moves only from the version the saver read, so two projectors
//! racing on one store cannot both fold the same events.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use serde_json::Value;

use crate::events::StreamId;

/// A view as stored: its kind, its key and its JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredView {
    pub kind: String,
    pub key: String,
    pub json: Value,
}

/// The version of `stream` folded into `projection`'s views (0: none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub projection: String,
    pub stream: StreamId,
    pub version: u64,
}

/// A checkpoint moving from the version the saver read to the one it folded up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointMove {
    pub projection: String,
    pub stream: StreamId,
    pub from: u64,
    pub to: u64,
}

/// What one save writes atomically.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewBatch {
    pub views: Vec<StoredView>,
    pub checkpoints: Vec<CheckpointMove>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewStoreError {
    #[error("checkpoint {projection} / {stream} is at {actual}, the save expected {expected}")]
    CheckpointConflict { projection: String, stream: StreamId, expected: u64, actual: u64 },
    #[error("corrupt view store row ({what}): {reason}")]
    Corrupt { what: String, reason: String },
    #[error("view store backend: {0}")]
    Backend(String),
}

/// Storage for views and per-(projection, stream) checkpoints.
pub trait ViewStore: Send + Sync {
    /// The view `kind` / `key`, if saved.
    fn load(&self, kind: &str, key: &str) -> impl Future<Output = Result<Option<Value>, ViewStoreError>> + Send;

    /// The version of `stream` folded into `projection` (0 if none).
    fn checkpoint(
        &self,
        projection: &str,
        stream: &StreamId,
    ) -> impl Future<Output = Result<u64, ViewStoreError>> + Send;

    /// Writes every view and moves every checkpoint in one atomic step; if any checkpoint is
    /// not at its `from`, nothing is written (`CheckpointConflict`).
    fn save(&self, batch: ViewBatch) -> impl Future<Output = Result<(), ViewStoreError>> + Send;

    /// Every view, sorted by kind then key.
    fn list(&self) -> impl Future<Output = Result<Vec<StoredView>, ViewStoreError>> + Send;

    /// Every checkpoint, sorted by projection then stream.
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, ViewStoreError>> + Send;
}

/// A view store in memory: for tests and for `hob replay --views` without `--out`.
#[derive(Debug, Default)]
pub struct MemoryViewStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    views: BTreeMap<(String, String), Value>,
    checkpoints: BTreeMap<(String, StreamId), u64>,
}

impl MemoryViewStore {
    pub fn new() -> MemoryViewStore {
        MemoryViewStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ViewStore for MemoryViewStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Value>, ViewStoreError> {
        Ok(self.lock().views.get(&(kind.to_owned(), key.to_owned())).cloned())
    }

    async fn checkpoint(&self, projection: &str, stream: &StreamId) -> Result<u64, ViewStoreError> {
        Ok(self.lock().checkpoints.get(&(projection.to_owned(), stream.clone())).copied().unwrap_or(0))
    }

    async fn save(&self, batch: ViewBatch) -> Result<(), ViewStoreError> {
        let mut inner = self.lock();
        for m in &batch.checkpoints {
            let actual = inner.checkpoints.get(&(m.projection.clone(), m.stream.clone())).copied().unwrap_or(0);
            if actual != m.from {
                return Err(ViewStoreError::CheckpointConflict {
                    projection: m.projection.clone(),
                    stream: m.stream.clone(),
                    expected: m.from,
                    actual,
                });
            }
        }
        for m in batch.checkpoints {
            inner.checkpoints.insert((m.projection, m.stream), m.to);
        }
        for v in batch.views {
            inner.views.insert((v.kind, v.key), v.json);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<StoredView>, ViewStoreError> {
        let inner = self.lock();
        Ok(inner
            .views
            .iter()
            .map(|((kind, key), json)| StoredView { kind: kind.clone(), key: key.clone(), json: json.clone() })
            .collect())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ViewStoreError> {
        let inner = self.lock();
        Ok(inner
            .checkpoints
            .iter()
            .map(|((projection, stream), version)| Checkpoint {
                projection: projection.clone(),
                stream: stream.clone(),
                version: *version,
            })
            .collect())
    }
}
