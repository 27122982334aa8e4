//! What every actor is given: the store, the clock, the relay's doorbell, counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::events::{Clock, EventEnvelope, PayloadError, RawEvent, StoreError, StreamId};
use crate::queue::MessageSource;

/// The idempotency key of the append a queued record causes in `consumer`'s stream: a
/// redelivered record finds its key taken and takes effect once.
pub fn idempotency_key(consumer: &StreamId, source: &MessageSource) -> String {
    format!("{consumer}<-{}", source.key())
}

#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("another writer owns {0}; the actor stopped and will be rebuilt")]
    Conflict(StreamId),
    #[error("stored event {stream} v{version} does not decode: {source}")]
    Decode { stream: StreamId, version: u64, source: PayloadError },
    #[error("stored event {stream} v{version} does not fit the state: {reason}")]
    Replay { stream: StreamId, version: u64, reason: String },
    #[error("the actor panicked and was stopped; it will be rebuilt from its stream")]
    Panicked,
    #[error("the actor is gone (mailbox closed or full): {0}")]
    Mailbox(String),
    #[error("unknown market {0}")]
    UnknownMarket(String),
    /// Another live node holds the stream's lease (`actors::leases`): its commands belong
    /// there. `owner` is that node's id when the store could tell.
    #[error("{stream} is hosted by node {}", owner.as_deref().unwrap_or("(another node)"))]
    HostedElsewhere { stream: StreamId, owner: Option<String> },
    /// Every order-id slot is held by a live node (`actors::leases::ORDER_ID_SLOTS`).
    #[error("no order-id slot is free: too many nodes share the store")]
    NoOrderIdSlot,
}

/// Counters the operator API reports.
#[derive(Debug, Default)]
pub struct Counters {
    pub panics: AtomicU64,
    pub restarts: AtomicU64,
    pub conflicts: AtomicU64,
    pub appends: AtomicU64,
    pub deduplicated: AtomicU64,
    pub snapshots: AtomicU64,
    pub snapshot_failures: AtomicU64,
    /// Snapshots that did not decode or whose state hash did not match: the actor replayed
    /// its whole stream instead.
    pub snapshots_refused: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct ActorDeps<S> {
    pub store: Arc<S>,
    pub clock: Arc<dyn Clock>,
    /// Rung after every commit that wrote outbox records, so the relay dispatches at once.
    pub outbox_wake: Arc<Notify>,
    /// The settlement queue's message group (the operator wallet).
    pub settlement_group: String,
    /// Take a snapshot after this many events since the last one.
    pub snapshot_every: u64,
    pub counters: Arc<Counters>,
}

impl<S> ActorDeps<S> {
    pub fn now_ms(&self) -> crate::domain::TimestampMs {
        crate::domain::TimestampMs(self.clock.now().timestamp_millis().max(0) as u64)
    }
}

/// Checks that a stream read back is gapless from `from`.
pub fn check_sequence(events: &[EventEnvelope], mut expected: u64) -> Result<(), ActorError> {
    for e in events {
        if e.version != expected {
            return Err(ActorError::Replay {
                stream: e.stream.clone(),
                version: e.version,
                reason: format!("expected version {expected}"),
            });
        }
        expected += 1;
    }
    Ok(())
}

/// Saves a snapshot in the background: a snapshot is an optimisation, so a failure is counted,
/// never fatal, and a crash mid-save leaves the previous snapshot in place (one transaction).
pub fn save_snapshot<S: crate::events::EventStore + 'static>(
    deps: &Arc<ActorDeps<S>>,
    snapshot: crate::events::Snapshot,
) {
    let deps = deps.clone();
    actix_rt::spawn(async move {
        match deps.store.save_snapshot(snapshot).await {
            Ok(()) => Counters::bump(&deps.counters.snapshots),
            Err(e) => {
                tracing::warn!(error = %e, "snapshot not saved; the actor replays more events on its next start");
                Counters::bump(&deps.counters.snapshot_failures)
            }
        }
    });
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Events read per page when an actor replays its stream: bounded memory however long the
/// stream, and pages large enough that the per-query cost vanishes.
pub const REPLAY_PAGE: usize = 16_384;

/// Replays `stream` from version `from` (exclusive) page by page, checking the versions are
/// gapless, handing each stored event to `fold`. Returns (events folded, last version).
pub async fn replay_stream<S: crate::events::EventStore>(
    store: &S,
    stream: &StreamId,
    from: u64,
    mut fold: impl FnMut(RawEvent) -> Result<(), ActorError>,
) -> Result<(u64, u64), ActorError> {
    let (mut count, mut version) = (0u64, from);
    let mut page = store.read_stream_raw(stream, version + 1, REPLAY_PAGE).await?;
    loop {
        for (i, e) in page.iter().enumerate() {
            let expected = version + 1 + i as u64;
            if e.version != expected {
                let reason = format!("expected version {expected}");
                return Err(ActorError::Replay { stream: stream.clone(), version: e.version, reason });
            }
        }
        let full = page.len() == REPLAY_PAGE;
        let next_from = version + 1 + page.len() as u64;
        // The next page is read (on the store's reader thread) while this one is folded: `join`
        // polls the read first, which hands it to the reader, then runs the fold.
        let next = async {
            if full {
                store.read_stream_raw(stream, next_from, REPLAY_PAGE).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let folded = async {
            for stored in std::mem::take(&mut page) {
                version = stored.version;
                count += 1;
                fold(stored)?;
            }
            Ok::<(), ActorError>(())
        };
        let (next, folded) = futures_util::future::join(next, folded).await;
        folded?;
        match next? {
            Some(more) => page = more,
            None => return Ok((count, version)),
        }
    }
}

/// The outcome of an actor's append, the same for every actor: on success the append is
/// counted and the relay woken; on failure the error is typed (a conflict counted) and the
/// caller must stop the actor, whose memory ran ahead of the store.
pub fn settle_append<S>(
    deps: &ActorDeps<S>,
    stream: &StreamId,
    result: Result<crate::events::AppendResult, StoreError>,
) -> Result<crate::events::AppendResult, ActorError> {
    match result {
        Ok(stored) => {
            Counters::bump(&deps.counters.appends);
            deps.outbox_wake.notify_one();
            Ok(stored)
        }
        Err(StoreError::VersionConflict { expected, actual, .. }) => {
            tracing::warn!(%stream, expected, actual, "version conflict: another writer owns the stream; stopping");
            Counters::bump(&deps.counters.conflicts);
            Err(ActorError::Conflict(stream.clone()))
        }
        Err(e) => {
            tracing::error!(%stream, error = %e, "append failed; stopping to rebuild from the stream");
            Err(e.into())
        }
    }
}
