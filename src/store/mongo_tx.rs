//! Multi-document transactions on MongoDB as both Mongo stores run them: majority write
//! concern (an acknowledged write survives a primary failover), snapshot reads (every check
//! inside the transaction sees one point in time), and the driver's error labels deciding
//! what is retried.
//!
//! The retry loop itself lives with each caller (a generic async closure over a borrowed
//! session would not give the `Send` futures the ports promise); this module holds the
//! pieces: begin, commit with its own retry, classify an error, back off.

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::error::{Error, ErrorKind, WriteFailure, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::{ReadConcern, WriteConcern};
use mongodb::{Client, ClientSession};

/// Most attempts of one transaction. Every append that carries outbox records updates the same
/// counter document, so under contention transactions abort each other with write conflicts;
/// the bound turns a livelock into a clear error.
pub const MAX_ATTEMPTS: u32 = 64;

/// Most retries of a commit whose outcome is unknown (the commit command is idempotent).
const MAX_COMMIT_RETRIES: u32 = 8;

/// MongoDB's duplicate key error code.
const DUPLICATE_KEY: i32 = 11_000;

/// What to do after a failed operation inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The transaction was aborted by a conflict or a transient fault: run it again from the
    /// start. A duplicate key is retried too: the next attempt's reads see the winner and turn
    /// it into the typed answer (version conflict, duplicate event id, stored idempotent result).
    Retry,
    /// Anything else: give up with a backend error.
    Fatal,
}

pub fn classify(e: &Error) -> Failure {
    if e.contains_label(TRANSIENT_TRANSACTION_ERROR) || is_duplicate_key(e) {
        Failure::Retry
    } else {
        Failure::Fatal
    }
}

/// True for a unique-index violation, whichever way the driver reports it.
pub fn is_duplicate_key(e: &Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(m) => m.write_errors.iter().flatten().any(|w| w.code == DUPLICATE_KEY),
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// Refuses a server that cannot run multi-document transactions (a standalone mongod): better
/// a clear error at start than every append failing. A replica set member answers `hello`
/// with its `setName`, a sharded cluster's router with `msg: "isdbgrid"`.
pub async fn require_transactions(client: &Client) -> Result<(), String> {
    let hello = client.database("admin").run_command(doc! { "hello": 1 }).await.map_err(|e| e.to_string())?;
    if hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid") {
        return Ok(());
    }
    Err("the server is a standalone mongod, without multi-document transactions: \
         hob needs a replica set (or Atlas, or a sharded cluster)"
        .into())
}

/// A session with a transaction started: majority writes, snapshot reads.
pub async fn begin(client: &Client) -> Result<ClientSession, Error> {
    let mut session = client.start_session().await?;
    session.start_transaction().write_concern(WriteConcern::majority()).read_concern(ReadConcern::snapshot()).await?;
    Ok(session)
}

/// Commits, retrying while the outcome is unknown (a network error or a write-concern
/// timeout during commit); a transient failure is handed back for the caller to rerun.
pub async fn commit(session: &mut ClientSession) -> Result<(), Error> {
    let mut tries = 0;
    loop {
        match session.commit_transaction().await {
            Ok(()) => return Ok(()),
            Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && tries < MAX_COMMIT_RETRIES => {
                tries += 1;
                tokio::time::sleep(backoff(tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Ends the transaction without writing; errors are ignored because the server already
/// aborts a transaction that failed, and an unfinished one dies with its session anyway.
pub async fn abort(mut session: ClientSession) {
    let _ = session.abort_transaction().await;
}

/// Exponential backoff with jitter, so transactions that conflicted do not collide again in
/// lockstep: up to 1 ms, 2 ms, 4 ms ... capped at 64 ms.
pub fn backoff(attempt: u32) -> Duration {
    let cap_us = 1_000u64 << attempt.min(6);
    // Sub-second clock bits are jitter enough here and need no random source.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    Duration::from_micros(cap_us / 2 + u64::from(nanos) % (cap_us / 2))
}
