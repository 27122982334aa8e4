//! The outbox relay: moves outbox records that a committed append wrote into their queues,
//! then marks them published. A plain async struct; the `OutboxActor` wraps it.
//!
//! Delivery is at least once: a crash between send and `mark_published` re-sends the same
//! records on the next pass with the same `dedup_id`s, which the queue's dedup window or the
//! consumer's source-keyed idempotency absorbs.
//!
//! One relay runs per store at a time (several nodes take a lease first): the relay
//! publishes an append's records together, so the first unpublished record always starts an
//! append and each record's index within its append is known.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{MessageSource, Queue, QueueError, QueueMessage, MAX_SEND_BATCH};
use crate::events::store::MAX_OUTBOX_PER_APPEND;
use crate::events::{EventStore, OutboxEntry, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox store: {0}")]
    Store(#[from] StoreError),
    #[error("sending to {destination}: {source}")]
    Queue { destination: String, source: QueueError },
}

/// Counters of a relay, readable while it runs.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub passes: AtomicU64,
    pub published: AtomicU64,
    pub errors: AtomicU64,
}

pub struct OutboxRelay<S, Q> {
    store: Arc<S>,
    queue: Arc<Q>,
    fetch_limit: usize,
    stats: Arc<RelayStats>,
}

/// Default records fetched per pass.
pub const DEFAULT_FETCH_LIMIT: usize = 4_096;

impl<S: EventStore + 'static, Q: Queue + 'static> OutboxRelay<S, Q> {
    pub fn new(store: Arc<S>, queue: Arc<Q>) -> OutboxRelay<S, Q> {
        OutboxRelay { store, queue, fetch_limit: DEFAULT_FETCH_LIMIT, stats: Arc::default() }
    }

    /// Records fetched per pass by `run` (at least 1).
    pub fn with_fetch_limit(mut self, limit: usize) -> OutboxRelay<S, Q> {
        self.fetch_limit = limit.max(1);
        self
    }

    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// One pass over up to `limit` unpublished records (more if one append alone is
    /// bigger): sends them in commit order, per destination in batches, then marks the sent
    /// appends published. Returns how many records it published.
    ///
    /// If a destination refuses a batch (full, unknown), the later records for that
    /// destination are not sent (their groups keep their order), appends sent completely are
    /// still marked, and the error is returned; the next pass retries the rest.
    pub async fn pass(&self, limit: usize) -> Result<usize, RelayError> {
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        let result = self.pass_inner(limit.max(1)).await.map(|(published, _)| published);
        match &result {
            Ok(n) => {
                self.stats.published.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// `(published, more)`: `more` if the outbox may hold further unpublished records.
    async fn pass_inner(&self, limit: usize) -> Result<(usize, bool), RelayError> {
        let (entries, more) = self.fetch_whole_appends(limit).await?;
        if entries.is_empty() {
            return Ok((0, false));
        }
        let appends = split_appends(&entries);

        // Per destination, in commit order; BTreeMap so destinations are visited in a fixed order.
        let mut by_destination: BTreeMap<&str, Vec<(usize, QueueMessage)>> = BTreeMap::new();
        for (a, append) in appends.iter().enumerate() {
            for (index, entry) in append.iter().enumerate() {
                let source = MessageSource {
                    stream: entry.stream.clone(),
                    version: entry.version,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                };
                let message = QueueMessage {
                    group: entry.record.group.clone(),
                    dedup_id: source.key(),
                    body: entry.record.payload.clone(),
                    source,
                };
                by_destination.entry(entry.record.destination.as_str()).or_default().push((a, message));
            }
        }

        // unsent[a]: records of append `a` not yet accepted by their queue.
        let mut unsent: Vec<usize> = appends.iter().map(|a| a.len()).collect();
        let mut first_error = None;
        for (destination, messages) in by_destination {
            let mut messages = messages.into_iter().peekable();
            while messages.peek().is_some() {
                let batch: Vec<(usize, QueueMessage)> = messages.by_ref().take(MAX_SEND_BATCH).collect();
                let owners: Vec<usize> = batch.iter().map(|(a, _)| *a).collect();
                match self.queue.send_batch(destination, batch.into_iter().map(|(_, m)| m).collect()).await {
                    Ok(_) => owners.iter().for_each(|a| unsent[*a] -= 1),
                    Err(source) => {
                        first_error.get_or_insert(RelayError::Queue { destination: destination.to_owned(), source });
                        break;
                    }
                }
            }
        }

        let done: Vec<u64> = appends
            .iter()
            .zip(&unsent)
            .filter(|(_, unsent)| **unsent == 0)
            .flat_map(|(append, _)| append.iter().map(|e| e.id))
            .collect();
        if !done.is_empty() {
            self.store.mark_published(&done).await?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok((done.len(), more)),
        }
    }

    /// Unpublished records, oldest first, cut after the last append known to be complete.
    async fn fetch_whole_appends(&self, limit: usize) -> Result<(Vec<OutboxEntry>, bool), RelayError> {
        let mut entries = self.store.fetch_unpublished(limit).await?;
        if entries.len() < limit {
            return Ok((entries, false));
        }
        if entries.iter().all(|e| same_append(e, &entries[0])) {
            // One append fills the page: fetch it whole (an append never exceeds the bound).
            let bigger = limit.saturating_add(MAX_OUTBOX_PER_APPEND);
            entries = self.store.fetch_unpublished(bigger).await?;
            if entries.len() < bigger {
                return Ok((entries, false));
            }
        }
        // The page may end inside an append: leave that append for the next pass.
        if let Some(last) = entries.last().cloned() {
            while entries.last().is_some_and(|e| same_append(e, &last)) {
                entries.pop();
            }
        }
        Ok((entries, true))
    }

    /// Runs passes until `shutdown` resolves: right after each `wake` (committers call
    /// `wake.notify_one()` after an append with outbox records; a wake during a pass is kept
    /// for the next one), and every `poll_every` as the safety net after a crash or a refused
    /// send.
    pub async fn run(self, wake: Arc<Notify>, poll_every: Duration, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            // Drain what is there, in bounded passes.
            loop {
                self.stats.passes.fetch_add(1, Ordering::Relaxed);
                match self.pass_inner(self.fetch_limit).await {
                    Ok((n, more)) => {
                        self.stats.published.fetch_add(n as u64, Ordering::Relaxed);
                        if !more || n == 0 {
                            break;
                        }
                    }
                    Err(_) => {
                        // Counted; the poll retries. Logging comes with the actor wrapper.
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll_every) => {}
            }
        }
    }
}

fn same_append(a: &OutboxEntry, b: &OutboxEntry) -> bool {
    a.version == b.version && a.stream == b.stream
}

/// Consecutive entries of one append; an append's records are stored with consecutive ids.
fn split_appends(entries: &[OutboxEntry]) -> Vec<&[OutboxEntry]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        if i == entries.len() || !same_append(&entries[i], &entries[start]) {
            out.push(&entries[start..i]);
            start = i;
        }
    }
    out
}
