//! The embedded `EventStore`: one SQLite file in WAL mode, durable on commit
//! (`synchronous=FULL`).
//!
//! Group commit: one writer thread owns the only write connection. It takes every queued
//! write job (up to `max_batch`), runs them in ONE transaction, each inside its own savepoint
//! so a job that fails its own checks (a version conflict) is rolled back alone, commits once
//! (one fsync), and only then replies to each caller. Reads run on separate connections owned
//! by reader threads, so they never wait for a commit. The threads are plain OS threads, so
//! the store works under any async runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::events::envelope::{EventEnvelope, StreamId, GENESIS_HASH};
use crate::events::store::{
    AppendRequest, AppendResult, EventStore, OutboxEntry, RawEvent, SealedEvent, Snapshot, StoreError,
};
use crate::store::sqlite_codec::{
    all_published, decode_commit, decode_commit_raw, decode_commit_sealed, decode_outbox, encode_outbox, is_published,
    set_published, CodecError, CommitWriter,
};

#[derive(Clone, Debug)]
pub struct SqliteConfig {
    pub path: PathBuf,
    /// Most write jobs committed in one transaction.
    pub max_batch: usize,
    /// Reader threads (each with its own connection).
    pub readers: usize,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig { path: path.into(), max_batch: 512, readers: 2 }
    }
}

/// Counters of the writer: `batches` < `jobs` means group commit is sharing fsyncs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Committed transactions.
    pub batches: u64,
    /// Write jobs (appends, snapshot saves, ...) run in them.
    pub jobs: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    jobs: AtomicU64,
}

type WriteJob = Box<dyn PendingJob>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A write job: runs inside the batch transaction, replies after the commit.
trait PendingJob: Send {
    /// Runs the job; false if it failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Replies with the job's result, or with `commit`'s error if the batch did not commit.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Job<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send, F: FnOnce(&Connection) -> Result<T, StoreError> + Send> PendingJob for Job<T, F> {
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.work.take() {
            Some(work) => work(conn),
            None => Err(StoreError::Backend("write job ran twice".into())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match (commit, self.result) {
            (_, Some(Err(e))) => Err(e),
            (Err(e), _) => Err(e),
            (Ok(()), Some(ok)) => ok,
            (Ok(()), None) => Err(StoreError::Backend("write job never ran".into())),
        };
        // The caller may have stopped waiting; nothing to do then.
        let _ = self.reply.send(result);
    }
}

pub struct SqliteEventStore {
    writer: Option<mpsc::SyncSender<WriteJob>>,
    readers: Option<mpsc::SyncSender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// Bound on queued jobs: a full queue makes callers wait (backpressure), never drops.
const QUEUE_DEPTH: usize = 65_536;

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The file's layout version (`PRAGMA user_version`); a file of another layout is refused.
const FORMAT: i64 = 2;

/// One row per append (`commits`), not per event: a group commit of many appends then dirties
/// few pages. The events are packed in `commits.events` (see `sqlite_codec`); `event_ids`
/// keeps event ids unique; one `outbox` row per append holds its records and a bitmap of the
/// ones published, and is deleted once all are.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    last_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS commits (
    seq INTEGER PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    first_version INTEGER NOT NULL,
    last_version INTEGER NOT NULL,
    idempotency_key TEXT,
    events BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS commits_by_stream ON commits (stream_id, last_version);
CREATE TABLE IF NOT EXISTS event_ids (
    event_id BLOB PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    stream TEXT NOT NULL,
    first_version INTEGER NOT NULL,
    last_version INTEGER NOT NULL,
    last_hash BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    records BLOB NOT NULL,
    count INTEGER NOT NULL,
    published BLOB
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    state BLOB NOT NULL,
    state_hash BLOB NOT NULL,
    PRIMARY KEY (stream, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS processed_events (
    consumer TEXT NOT NULL,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (consumer, stream, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease_requests (
    name TEXT PRIMARY KEY,
    asked_by TEXT NOT NULL
) WITHOUT ROWID;
";

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    // Small pages: appends from many streams dirty many scattered b-tree pages per group commit,
    // and the WAL writes each dirty page whole. Takes effect only when the file is created.
    conn.pragma_update(None, "page_size", 1024).map_err(backend)?;
    // Each job runs in a savepoint; its rollback journal stays in memory, not in a temp file.
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
    // Checkpoint the WAL every ~40 MB rather than every 4 MB: checkpoints fsync the main file,
    // and fewer of them leave the commit path to the one WAL fsync per group commit.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000).map_err(backend)?;
    conn.pragma_update(None, "cache_size", -65_536).map_err(backend)?;
    Ok(conn)
}

/// The writer's page cache, in KiB (8 MiB): the b-tree pages appends touch (interior pages,
/// the right edges of `commits` and `outbox`, the streams being written) with room to spare.
/// Deliberately much smaller than the readers': SQLite scans the writer's whole page-cache hash
/// table (one bucket per cached page) at every commit. A b-tree split parks a page under the
/// pending-byte page's number (page 1,048,577 with 1 KiB pages) while it sorts the new
/// siblings, which raises the cache's highest key far past the end of the file, so the
/// truncate-to-file-size at the end of the transaction takes its "scan everything" branch.
/// With 64 MiB (65,536 pages) that scan was ~3% of the server's CPU under load (`perf`,
/// `pcache1TruncateUnsafe` under `pager_end_transaction`); an 8 MiB cache makes it 8x shorter.
/// Durability is unchanged: the cache only holds clean copies of pages between transactions.
const WRITER_CACHE_KIB: i64 = 8_192;

/// A new file gets this layout; a file of another layout is a typed error, never misread.
fn check_format(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(backend)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'", [], |r| r.get(0))
        .map_err(backend)?;
    if version == FORMAT || (version == 0 && tables == 0) {
        return Ok(());
    }
    Err(StoreError::Backend(format!(
        "{} has store layout {version}, this build reads layout {FORMAT}; replay it with a matching build",
        path.display()
    )))
}

impl SqliteEventStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteEventStore, StoreError> {
        SqliteEventStore::open_with(SqliteConfig::new(path.as_ref()))
    }

    pub fn open_with(config: SqliteConfig) -> Result<SqliteEventStore, StoreError> {
        let write_conn = open_connection(&config.path)?;
        write_conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(backend)?;
        check_format(&write_conn, &config.path)?;
        write_conn.execute_batch(SCHEMA).map_err(backend)?;
        write_conn.pragma_update(None, "user_version", FORMAT).map_err(backend)?;
        let counters = Arc::new(Counters::default());
        let mut threads = Vec::new();

        let (write_tx, write_rx) = mpsc::sync_channel::<WriteJob>(QUEUE_DEPTH);
        let max_batch = config.max_batch.max(1);
        let c = Arc::clone(&counters);
        threads.push(
            std::thread::Builder::new()
                .name("hob-sqlite-writer".into())
                .spawn(move || writer_loop(write_conn, write_rx, max_batch, &c))
                .map_err(|e| StoreError::Backend(format!("spawning the writer: {e}")))?,
        );

        let (read_tx, read_rx) = mpsc::sync_channel::<ReadJob>(QUEUE_DEPTH);
        let read_rx = Arc::new(Mutex::new(read_rx));
        for i in 0..config.readers.max(1) {
            let conn = open_connection(&config.path)?;
            let rx = Arc::clone(&read_rx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("hob-sqlite-reader-{i}"))
                    .spawn(move || reader_loop(conn, &rx))
                    .map_err(|e| StoreError::Backend(format!("spawning a reader: {e}")))?,
            );
        }
        Ok(SqliteEventStore { writer: Some(write_tx), readers: Some(read_tx), threads, counters })
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
        }
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: WriteJob = Box::new(Job { work: Some(work), result: None, reply });
        let writer = self.writer.as_ref().ok_or(StoreError::Closed)?;
        writer.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        let readers = self.readers.as_ref().ok_or(StoreError::Closed)?;
        readers.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for SqliteEventStore {
    /// Closing the queues lets the threads finish queued work and exit; joining them means a
    /// reopened store never races the old writer.
    fn drop(&mut self) {
        self.writer.take();
        self.readers.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<WriteJob>, max_batch: usize, counters: &Counters) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch);
        if commit.is_ok() {
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [WriteJob]) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
    let result = (|| {
        for job in batch.iter_mut() {
            conn.execute_batch("SAVEPOINT job").map_err(backend)?;
            if !job.run(conn) {
                conn.execute_batch("ROLLBACK TO job").map_err(backend)?;
            }
            conn.execute_batch("RELEASE job").map_err(backend)?;
        }
        conn.execute_batch("COMMIT").map_err(backend)
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn reader_loop(conn: Connection, rx: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        let job = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job(&conn);
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn ttl_micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}

fn sql_u64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::InvalidRequest(format!("{v} does not fit a stored integer")))
}

fn append_in_tx(conn: &Connection, req: AppendRequest) -> Result<AppendResult, StoreError> {
    req.validate()?;
    let stream_name = req.stream.as_str();
    if let Some(key) = &req.idempotency_key {
        let found = conn
            .query_row(
                "SELECT stream, first_version, last_version, last_hash FROM idempotency WHERE key = ?1",
                [key],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Vec<u8>>(3)?)),
            )
            .optional()
            .map_err(backend)?;
        if let Some((stream, first, last, hash)) = found {
            let corrupt = |reason: &str| StoreError::Corrupt {
                stream: stream.clone(),
                version: last as u64,
                reason: format!("idempotency row {key:?}: {reason}"),
            };
            let original = StreamId::parse(&stream).map_err(|e| corrupt(&e.to_string()))?;
            if original != req.stream {
                return Err(StoreError::IdempotencyKeyReused {
                    key: key.clone(),
                    original_stream: original,
                    stream: req.stream,
                });
            }
            let last_hash: [u8; 32] = hash.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?;
            return Ok(AppendResult {
                stream: original,
                first_version: first as u64,
                last_version: last as u64,
                last_hash,
                deduplicated: true,
            });
        }
    }

    let head = conn
        .prepare_cached("SELECT id, version, last_hash FROM streams WHERE name = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([stream_name], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?)))
                .optional()
        })
        .map_err(backend)?;
    let (stream_id, actual, prev_hash) = match head {
        None => (None, 0u64, GENESIS_HASH),
        Some((id, v, h)) => {
            let hash = h.try_into().map_err(|_| StoreError::Corrupt {
                stream: stream_name.to_owned(),
                version: v as u64,
                reason: "stream head hash is not 32 bytes".into(),
            })?;
            (Some(id), v as u64, hash)
        }
    };
    if actual != req.expected_version {
        return Err(StoreError::VersionConflict { stream: req.stream, expected: req.expected_version, actual });
    }

    let mut unique = conn.prepare_cached("INSERT INTO event_ids (event_id) VALUES (?1)").map_err(backend)?;
    let first_version = actual + 1;
    let first_sql = sql_u64(first_version)?;
    let mut version = actual;
    let mut commit = CommitWriter::new(prev_hash);
    for event in req.events {
        version += 1;
        let event_id = event.event_id;
        match unique.execute([event_id.as_bytes().as_slice()]) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                return Err(StoreError::DuplicateEventId { event_id });
            }
            Err(e) => return Err(backend(e)),
        }
        commit.push(&req.stream, version, &req.idempotency_key, event).map_err(StoreError::InvalidRequest)?;
    }
    let last_hash = commit.last_hash();
    let head_version = sql_u64(version)?;
    let stream_id = match stream_id {
        Some(id) => {
            conn.prepare_cached("UPDATE streams SET version = ?2, last_hash = ?3 WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute(params![id, head_version, last_hash.as_slice()]))
                .map_err(backend)?;
            id
        }
        None => {
            conn.prepare_cached("INSERT INTO streams (name, version, last_hash) VALUES (?1, ?2, ?3)")
                .and_then(|mut stmt| stmt.execute(params![stream_name, head_version, last_hash.as_slice()]))
                .map_err(backend)?;
            conn.last_insert_rowid()
        }
    };
    conn.prepare_cached(
        "INSERT INTO commits (stream_id, first_version, last_version, idempotency_key, events)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![stream_id, first_sql, head_version, req.idempotency_key, commit.finish()])
    })
    .map_err(backend)?;
    if !req.outbox.is_empty() {
        let records = encode_outbox(&req.outbox).map_err(StoreError::InvalidRequest)?;
        conn.prepare_cached("INSERT INTO outbox (stream_id, version, records, count) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut stmt| stmt.execute(params![stream_id, head_version, records, req.outbox.len() as i64]))
            .map_err(backend)?;
    }
    if let Some(key) = &req.idempotency_key {
        conn.prepare_cached(
            "INSERT INTO idempotency (key, stream, first_version, last_version, last_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut stmt| stmt.execute(params![key, stream_name, first_sql, head_version, last_hash.as_slice()]))
        .map_err(backend)?;
    }
    Ok(AppendResult { stream: req.stream, first_version, last_version: version, last_hash, deduplicated: false })
}

/// Events of `stream` from `from_version`, at most `limit`, checked gapless: a removed commit
/// or event is `Corrupt` naming the first version that is not where it should be. `decode`
/// unpacks one commit (first version, idempotency key, packed events) into `out`: full
/// envelopes, or the replay's raw events.
fn read_stream_with<T>(
    conn: &Connection,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
    decode: impl Fn(u64, Option<String>, &[u8], u64, &mut Vec<T>) -> Result<u64, CodecError>,
) -> Result<Vec<T>, StoreError> {
    let from = from_version.max(1);
    let Some((stream_id, head)) = stream_row(conn, stream)? else { return Ok(Vec::new()) };
    // Room for every event the read can return, up front, rather than copying them over as
    // the vector doubles (a page of the audit is 16,384 events). A head the table holds too
    // high is not trusted with the allocation: the read checks the versions it finds.
    const UP_FRONT: u64 = 16_384;
    let expected = head.saturating_sub(from).saturating_add(1).min(UP_FRONT);
    let mut out = Vec::with_capacity(limit.min(usize::try_from(expected).unwrap_or(0)));
    read_commits(conn, stream, stream_id, from, |first, key, blob| {
        if out.len() >= limit {
            return Ok(None);
        }
        decode(first, key, blob, from, &mut out).map(Some)
    })?;
    Ok(out)
}

fn read_stream_sync(
    conn: &Connection,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
) -> Result<Vec<EventEnvelope>, StoreError> {
    read_stream_with(conn, stream, from_version, limit, |first, key, blob, from, out| {
        decode_commit(stream, first, &key, blob, from, limit, out)
    })
}

/// `read_stream_sync` for replay: the payload's stored text, no envelope.
fn read_stream_raw_sync(
    conn: &Connection,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
) -> Result<Vec<RawEvent>, StoreError> {
    read_stream_with(conn, stream, from_version, limit, |first, _, blob, from, out| {
        decode_commit_raw(first, blob, from, limit, out)
    })
}

/// `read_stream_sync` for the auditor: every hashed field, the payload's stored text.
fn read_stream_sealed_sync(
    conn: &Connection,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
) -> Result<Vec<SealedEvent>, StoreError> {
    read_stream_with(conn, stream, from_version, limit, |first, key, blob, from, out| {
        decode_commit_sealed(first, &key, blob, from, limit, out)
    })
}

/// Hands `stream`'s commits holding versions >= `from` to `decode` in order, checking they
/// are gapless; `decode` returns the commit's event count, or None to stop.
fn read_commits(
    conn: &Connection,
    stream: &StreamId,
    stream_id: i64,
    from: u64,
    mut decode: impl FnMut(u64, Option<String>, &[u8]) -> Result<Option<u64>, CodecError>,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT first_version, last_version, idempotency_key, events FROM commits
             WHERE stream_id = ?1 AND last_version >= ?2 ORDER BY last_version",
        )
        .map_err(backend)?;
    let mut rows = stmt.query(params![stream_id, i64::try_from(from).unwrap_or(i64::MAX)]).map_err(backend)?;
    let mut next: Option<u64> = None;
    while let Some(r) = rows.next().map_err(backend)? {
        let first = r.get::<_, i64>(0).map_err(backend)? as u64;
        let last = r.get::<_, i64>(1).map_err(backend)? as u64;
        let corrupt =
            |version: u64, reason: String| StoreError::Corrupt { stream: stream.to_string(), version, reason };
        // The first commit may start before `from`; every later one starts where the last ended.
        let expected = next.unwrap_or(first);
        if first != expected || first == 0 || last < first {
            return Err(corrupt(first.max(expected), format!("version gap: expected {expected}")));
        }
        if next.is_none() && first > from {
            return Err(corrupt(first, format!("version gap: expected {from}")));
        }
        let key: Option<String> = r.get(2).map_err(|e| corrupt(first, format!("idempotency_key: {e}")))?;
        let blob = r.get_ref(3).and_then(|v| Ok(v.as_blob()?)).map_err(|e| corrupt(first, format!("events: {e}")))?;
        let Some(count) = decode(first, key, blob).map_err(|e| corrupt(first + e.index as u64, e.reason))? else {
            break;
        };
        if first + count != last + 1 {
            return Err(corrupt(first + count, format!("commit {first}..={last} holds {count} events")));
        }
        next = Some(last + 1);
    }
    Ok(())
}

/// The stream's row id and head version, if it has any events.
fn stream_row(conn: &Connection, stream: &StreamId) -> Result<Option<(i64, u64)>, StoreError> {
    conn.prepare_cached("SELECT id, version FROM streams WHERE name = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([stream.as_str()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))).optional()
        })
        .map_err(backend)
}

/// Outbox entry ids: the row's id and the record's index in it, so ids grow in commit order.
const OUTBOX_INDEX_BITS: u32 = 16;

fn outbox_id(row: i64, index: usize) -> u64 {
    ((row as u64) << OUTBOX_INDEX_BITS) | index as u64
}

impl EventStore for SqliteEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        request.validate()?;
        self.write(move |conn| append_in_tx(conn, request)).await
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        let stream = stream.clone();
        self.read(move |conn| read_stream_sync(conn, &stream, from_version, usize::MAX)).await
    }

    async fn read_stream_page(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let stream = stream.clone();
        self.read(move |conn| read_stream_sync(conn, &stream, from_version, limit)).await
    }

    async fn read_stream_raw(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let stream = stream.clone();
        self.read(move |conn| read_stream_raw_sync(conn, &stream, from_version, limit)).await
    }

    async fn read_stream_sealed(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<SealedEvent>, StoreError> {
        let stream = stream.clone();
        self.read(move |conn| read_stream_sealed_sync(conn, &stream, from_version, limit)).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let stream = stream.clone();
        self.read(move |conn| {
            let v = conn
                .query_row("SELECT version FROM streams WHERE name = ?1", [stream.as_str()], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(backend)?;
            Ok(v.map_or(0, |v| v as u64))
        })
        .await
    }

    async fn list_streams(&self) -> Result<Vec<StreamId>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT name FROM streams ORDER BY name").map_err(backend)?;
            let names = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(backend)?;
            let mut out = Vec::new();
            for name in names {
                let name = name.map_err(backend)?;
                let id = StreamId::parse(&name).map_err(|e| StoreError::Corrupt {
                    stream: name.clone(),
                    version: 0,
                    reason: e.to_string(),
                })?;
                out.push(id);
            }
            Ok(out)
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (stream, version, state, state_hash) VALUES (?1, ?2, ?3, ?4)",
                params![
                    snapshot.stream.as_str(),
                    sql_u64(snapshot.version)?,
                    snapshot.state,
                    snapshot.state_hash.as_slice()
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn load_latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let stream = stream.clone();
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT version, state, state_hash FROM snapshots WHERE stream = ?1 ORDER BY version DESC LIMIT 1",
                    [stream.as_str()],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((version, state, hash)) = row else { return Ok(None) };
            let state_hash = hash.try_into().map_err(|_| StoreError::Corrupt {
                stream: stream.to_string(),
                version: version as u64,
                reason: "snapshot state_hash is not 32 bytes".into(),
            })?;
            Ok(Some(Snapshot { stream, version: version as u64, state, state_hash }))
        })
        .await
    }

    async fn fetch_unpublished(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.fetch_unpublished_after(0, limit).await
    }

    async fn fetch_unpublished_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT o.id, s.name, o.version, o.records, o.published FROM outbox o
                     JOIN streams s ON s.id = o.stream_id WHERE o.id >= ?1 ORDER BY o.id",
                )
                .map_err(backend)?;
            let first_row = i64::try_from(after >> OUTBOX_INDEX_BITS).unwrap_or(i64::MAX);
            let mut rows = stmt.query([first_row]).map_err(backend)?;
            let mut out = Vec::new();
            while out.len() < limit {
                let Some(r) = rows.next().map_err(backend)? else { break };
                let row: i64 = r.get(0).map_err(backend)?;
                let stream: String = r.get(1).map_err(backend)?;
                let version: i64 = r.get(2).map_err(backend)?;
                let corrupt =
                    |reason: String| StoreError::Corrupt { stream: stream.clone(), version: version as u64, reason };
                let blob = r.get_ref(3).and_then(|v| Ok(v.as_blob()?)).map_err(|e| corrupt(format!("outbox: {e}")))?;
                let mask = r.get_ref(4).map_err(backend)?.as_blob_or_null().map_err(|e| corrupt(e.to_string()))?;
                let records =
                    decode_outbox(blob).map_err(|e| corrupt(format!("outbox record {}: {}", e.index, e.reason)))?;
                let stream_id = StreamId::parse(&stream).map_err(|e| corrupt(e.to_string()))?;
                for (index, record) in records.into_iter().enumerate() {
                    let id = outbox_id(row, index);
                    if id <= after || is_published(mask, index) {
                        continue;
                    }
                    if out.len() == limit {
                        break;
                    }
                    out.push(OutboxEntry { id, stream: stream_id.clone(), version: version as u64, record });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn mark_published(&self, ids: &[u64]) -> Result<(), StoreError> {
        let mut by_row: Vec<(i64, usize)> =
            ids.iter().map(|&id| ((id >> OUTBOX_INDEX_BITS) as i64, (id & 0xFFFF) as usize)).collect();
        by_row.sort_unstable();
        self.write(move |conn| {
            let mut select =
                conn.prepare_cached("SELECT count, published FROM outbox WHERE id = ?1").map_err(backend)?;
            let mut update = conn.prepare_cached("UPDATE outbox SET published = ?2 WHERE id = ?1").map_err(backend)?;
            let mut delete = conn.prepare_cached("DELETE FROM outbox WHERE id = ?1").map_err(backend)?;
            for group in by_row.chunk_by(|a, b| a.0 == b.0) {
                let row = group[0].0;
                let found = select
                    .query_row([row], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?)))
                    .optional()
                    .map_err(backend)?;
                let Some((count, mask)) = found else { continue };
                let count = count.max(0) as usize;
                let mut mask = mask.unwrap_or_default();
                for &(_, index) in group.iter().filter(|(_, i)| *i < count) {
                    set_published(&mut mask, count, index);
                }
                if all_published(&mask, count) {
                    delete.execute([row]).map_err(backend)?;
                } else {
                    update.execute(params![row, mask]).map_err(backend)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn mark_processed(&self, consumer: &str, stream: &StreamId, version: u64) -> Result<bool, StoreError> {
        let (consumer, stream) = (consumer.to_owned(), stream.clone());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "INSERT OR IGNORE INTO processed_events (consumer, stream, version) VALUES (?1, ?2, ?3)",
                    params![consumer, stream.as_str(), sql_u64(version)?],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |conn| {
            let now_us = micros(now);
            let expires = now_us.saturating_add(ttl_micros(ttl));
            // Take it if free, expired, or ours; one statement so the check and the write agree.
            let n = conn
                .execute(
                    "INSERT INTO leases (name, owner, expires_at_us) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at_us = excluded.expires_at_us
                     WHERE leases.owner = excluded.owner OR leases.expires_at_us <= ?4",
                    params![name, owner, expires, now_us],
                )
                .map_err(backend)?;
            if n == 1 {
                conn.execute("DELETE FROM lease_requests WHERE name = ?1", params![name]).map_err(backend)?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |conn| {
            let now_us = micros(now);
            let until = now_us.saturating_add(ttl_micros(ttl));
            // Handed over if another node asked for it: the asker becomes the owner.
            let n = conn
                .execute(
                    "UPDATE leases SET expires_at_us = ?3,
                         owner = coalesce((SELECT asked_by FROM lease_requests WHERE name = ?1), owner)
                     WHERE name = ?1 AND owner = ?2 AND expires_at_us > ?4",
                    params![name, owner, until, now_us],
                )
                .map_err(backend)?;
            // Only the holder's renewal consumes the ask; anyone else's leaves it in place.
            let handed_over = n == 1
                && conn.execute("DELETE FROM lease_requests WHERE name = ?1", params![name]).map_err(backend)? > 0;
            Ok(n == 1 && !handed_over)
        })
        .await
    }

    async fn request_lease(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let (name, by) = (name.to_owned(), by.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO lease_requests (name, asked_by)
                 SELECT ?1, ?2 FROM leases WHERE name = ?1 AND owner <> ?2 AND expires_at_us > ?3
                 ON CONFLICT (name) DO UPDATE SET asked_by = excluded.asked_by",
                params![name, by, micros(now)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute("DELETE FROM leases WHERE name = ?1 AND owner = ?2", params![name, owner])
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn lease_owner(&self, name: &str, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT owner FROM leases WHERE name = ?1 AND expires_at_us > ?2",
                params![name, micros(now)],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
}
