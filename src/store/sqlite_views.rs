//! The SQLite `ViewStore`: tables `views(kind, key, json)` and
//! `view_checkpoints(projection, stream, version)` in one file (its own by default, so view
//! writes never contend with the event store's group-commit writer). A save is one
//! transaction: views and checkpoints land together or not at all. Calls run on tokio's
//! blocking pool so they never stall an async worker.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::events::StreamId;
use crate::projections::view_store::{Checkpoint, StoredView, ViewBatch, ViewStore, ViewStoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS views (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS view_checkpoints (
    projection TEXT NOT NULL,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (projection, stream)
);
";

fn backend(e: impl std::fmt::Display) -> ViewStoreError {
    ViewStoreError::Backend(e.to_string())
}

#[derive(Clone)]
pub struct SqliteViewStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteViewStore {
    /// Opens (creating if needed) the view store at `path`: WAL, durable on commit.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteViewStore, ViewStoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteViewStore { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ViewStoreError> + Send + 'static,
    ) -> Result<T, ViewStoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }
}

fn read_checkpoint(conn: &Connection, projection: &str, stream: &str) -> Result<u64, ViewStoreError> {
    let version: Option<i64> = conn
        .query_row(
            "SELECT version FROM view_checkpoints WHERE projection = ?1 AND stream = ?2",
            params![projection, stream],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    let version = version.unwrap_or(0);
    u64::try_from(version).map_err(|_| ViewStoreError::Corrupt {
        what: format!("checkpoint {projection} / {stream}"),
        reason: format!("negative version {version}"),
    })
}

impl ViewStore for SqliteViewStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Value>, ViewStoreError> {
        let (kind, key) = (kind.to_owned(), key.to_owned());
        self.with(move |conn| {
            let text: Option<String> = conn
                .query_row("SELECT json FROM views WHERE kind = ?1 AND key = ?2", params![kind, key], |row| row.get(0))
                .optional()
                .map_err(backend)?;
            text.map(|t| {
                serde_json::from_str(&t).map_err(|e| ViewStoreError::Corrupt {
                    what: format!("view {kind} / {key}"),
                    reason: e.to_string(),
                })
            })
            .transpose()
        })
        .await
    }

    async fn checkpoint(&self, projection: &str, stream: &StreamId) -> Result<u64, ViewStoreError> {
        let (projection, stream) = (projection.to_owned(), stream.as_str().to_owned());
        self.with(move |conn| read_checkpoint(conn, &projection, &stream)).await
    }

    async fn save(&self, batch: ViewBatch) -> Result<(), ViewStoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            for m in &batch.checkpoints {
                let actual = read_checkpoint(&tx, &m.projection, m.stream.as_str())?;
                if actual != m.from {
                    // Dropping `tx` rolls back.
                    return Err(ViewStoreError::CheckpointConflict {
                        projection: m.projection.clone(),
                        stream: m.stream.clone(),
                        expected: m.from,
                        actual,
                    });
                }
                let to = i64::try_from(m.to).map_err(backend)?;
                tx.execute(
                    "INSERT INTO view_checkpoints (projection, stream, version) VALUES (?1, ?2, ?3)
                     ON CONFLICT (projection, stream) DO UPDATE SET version = excluded.version",
                    params![m.projection, m.stream.as_str(), to],
                )
                .map_err(backend)?;
            }
            for v in &batch.views {
                let json = serde_json::to_string(&v.json).map_err(backend)?;
                tx.execute(
                    "INSERT INTO views (kind, key, json) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, key) DO UPDATE SET json = excluded.json",
                    params![v.kind, v.key, json],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<StoredView>, ViewStoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT kind, key, json FROM views ORDER BY kind, key").map_err(backend)?;
            let rows = stmt
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)))
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (kind, key, text) = row.map_err(backend)?;
                let json = serde_json::from_str(&text).map_err(|e| ViewStoreError::Corrupt {
                    what: format!("view {kind} / {key}"),
                    reason: e.to_string(),
                })?;
                out.push(StoredView { kind, key, json });
            }
            Ok(out)
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ViewStoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT projection, stream, version FROM view_checkpoints ORDER BY projection, stream")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)))
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (projection, stream, version) = row.map_err(backend)?;
                let corrupt = |reason: String| ViewStoreError::Corrupt {
                    what: format!("checkpoint {projection} / {stream}"),
                    reason,
                };
                let stream_id = StreamId::parse(&stream).map_err(|e| corrupt(e.to_string()))?;
                let version = u64::try_from(version).map_err(|_| corrupt(format!("negative version {version}")))?;
                out.push(Checkpoint { projection, stream: stream_id, version });
            }
            Ok(out)
        })
        .await
    }
}
