//! The outbox relay: moves outbox records that a committed append wrote into their queues,
//! then marks them published. A plain async struct; the `OutboxActor` wraps it.
//!
//! Delivery is at least once: a crash between send and `mark_published` re-sends the same
//! records on the next pass with the same `dedup_id`s, which the queue's dedup window or the
//! consumer's source-keyed idempotency absorbs.
//!
//! When is a record "published"? That depends on whether the queue outlives the process
//! (`Queue::durable`):
//!
//! - Durable queue (SQS): a record is safe once the queue accepted it, so the relay marks it
//!   published right after the send (`PublishMode::OnSend`).
//! - Non-durable queue (the in-process default): a record the queue accepted is still only
//!   in memory; marking it on send would lose it for good if the process died before a
//!   consumer applied it (marked published, queue gone). So the relay marks an append
//!   published only after the consumers confirmed every one of its records
//!   (`PublishMode::OnConsume` with a shared `ConsumeTracker`). Until then it remembers in
//!   memory what it has sent, so a pass does not send it again; after a restart that memory
//!   is gone, every append not fully consumed is still unpublished and is sent again, and the
//!   consumers' source-keyed idempotency makes the second delivery a no-op.
//!
//!   The unit of marking stays the whole append, never a single record: a record's `index`
//!   (part of its dedup id and of the consumers' idempotency key) is its position among the
//!   *unpublished* records of its append as fetched, so marking one record of an append
//!   while its siblings stay unpublished would shift their indexes after a restart and turn a
//!   redelivery into a second effect.
//!
//!   Records for destinations nobody in this process consumes (today: the admin queue, and
//!   the settlement queue when no operator runs here) count as confirmed once sent, as in
//!   `OnSend`; a crash can lose those from memory. A consumer started in-process adds its
//!   destination to the tracker (`consume_in_process`).
//!
//! One relay runs per store at a time (several nodes take a lease first): the relay
//! publishes an append's records together, so the first unpublished record always starts an
//! append and each record's index within its append is known.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::{MessageSource, Queue, QueueError, QueueMessage, MAX_SEND_BATCH};
use crate::events::store::MAX_OUTBOX_PER_APPEND;
use crate::events::{EventStore, OutboxEntry, StoreError, StreamId};

/// When the relay marks outbox records published (see the module doc).
#[derive(Clone, Default)]
pub enum PublishMode {
    /// Right after the queue accepted them: for durable queues.
    #[default]
    OnSend,
    /// Once the consumers confirmed every record of the append through the tracker: for
    /// queues that live in this process's memory.
    OnConsume(Arc<ConsumeTracker>),
}

/// What a relay in `PublishMode::OnConsume` has sent and the consumers have not yet all
/// confirmed, per append, in memory only. Shared by the relay (registers and sends) and the
/// consumers (confirm after their handler took effect).
///
/// Its size is bounded by the relay's fetch window: the relay only ever sees the oldest
/// unpublished records, and an append leaves the tracker once it is marked published.
pub struct ConsumeTracker {
    /// Destinations whose records wait for a consumer's confirmation.
    confirmed_by_consumer: Mutex<HashSet<String>>,
    /// Rung when an append became complete, so the relay marks it without waiting a poll.
    wake: Arc<Notify>,
    state: Mutex<HashMap<(StreamId, u64), Pending>>,
}

/// One append's records as the tracker knows them.
struct Pending {
    /// Outbox ids, by index within the append.
    ids: Vec<u64>,
    /// Indexes accepted by their queue (never sent again in this process).
    sent: Vec<bool>,
    /// Indexes not yet confirmed; the append is complete when this is empty.
    waiting: HashSet<u32>,
}

impl ConsumeTracker {
    /// `confirmed_by_consumer`: destinations consumed in this process, whose consumers call
    /// `confirm`; `wake`: the relay's doorbell.
    pub fn new<'a>(confirmed_by_consumer: impl IntoIterator<Item = &'a str>, wake: Arc<Notify>) -> ConsumeTracker {
        ConsumeTracker {
            confirmed_by_consumer: Mutex::new(confirmed_by_consumer.into_iter().map(str::to_owned).collect()),
            wake,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(StreamId, u64), Pending>> {
        // Every update is a single statement on the map, so a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A consumer applied the record `source` (its handler's effect is durable). Unknown
    /// sources (a redelivery of an append already marked, another relay's record) are
    /// ignored.
    pub fn confirm(&self, source: &MessageSource) {
        let mut state = self.lock();
        if let Some(pending) = state.get_mut(&(source.stream.clone(), source.version)) {
            if pending.waiting.remove(&source.index) && pending.waiting.is_empty() {
                drop(state);
                self.wake.notify_one();
            }
        }
    }

    /// A consumer of `destination` started in this process (the settlement operator, after
    /// the engine): from now on its records wait for the consumer's confirmation. Records
    /// already sent keep the rule they were sent under, so start consumers before traffic.
    pub fn consume_in_process(&self, destination: &str) {
        // A poisoned lock only means a panic mid-insert; the set is still a set.
        self.confirmed_by_consumer.lock().unwrap_or_else(|e| e.into_inner()).insert(destination.to_owned());
    }

    /// Appends sent and unconfirmed (complete ones waiting for their mark included).
    pub fn pending_appends(&self) -> usize {
        self.lock().len()
    }

    /// Registers an append (if new) and returns the indexes not yet sent.
    fn unsent(&self, append: &[OutboxEntry]) -> Vec<usize> {
        let Some(first) = append.first() else { return Vec::new() };
        let mut state = self.lock();
        let pending = state.entry((first.stream.clone(), first.version)).or_insert_with(|| Pending {
            ids: append.iter().map(|e| e.id).collect(),
            sent: vec![false; append.len()],
            waiting: (0..append.len()).map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect(),
        });
        (0..pending.sent.len()).filter(|i| !pending.sent[*i]).collect()
    }

    /// The queue accepted record `index` of the append; a destination without a consumer in
    /// this process counts as confirmed now.
    fn sent(&self, source: &MessageSource, destination: &str) {
        let mut state = self.lock();
        if let Some(pending) = state.get_mut(&(source.stream.clone(), source.version)) {
            if let Some(sent) = pending.sent.get_mut(source.index as usize) {
                *sent = true;
            }
            let consumed_here =
                self.confirmed_by_consumer.lock().unwrap_or_else(|e| e.into_inner()).contains(destination);
            if !consumed_here {
                pending.waiting.remove(&source.index);
            }
        }
    }

    /// Takes the complete appends out; returns their outbox ids to mark published.
    fn take_complete(&self) -> Vec<u64> {
        let mut state = self.lock();
        let mut ids = Vec::new();
        state.retain(|_, pending| {
            if pending.waiting.is_empty() {
                ids.extend_from_slice(&pending.ids);
                false
            } else {
                true
            }
        });
        ids
    }
}

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
    mode: PublishMode,
    /// `OnConsume`: the highest outbox id below which every append was sent whole by this
    /// process (0 after a start, so a restart re-sends everything unconsumed).
    sent_through: AtomicU64,
}

/// Default records fetched per pass.
pub const DEFAULT_FETCH_LIMIT: usize = 4_096;

impl<S: EventStore + 'static, Q: Queue + 'static> OutboxRelay<S, Q> {
    pub fn new(store: Arc<S>, queue: Arc<Q>) -> OutboxRelay<S, Q> {
        OutboxRelay {
            store,
            queue,
            fetch_limit: DEFAULT_FETCH_LIMIT,
            stats: Arc::default(),
            mode: PublishMode::OnSend,
            sent_through: AtomicU64::new(0),
        }
    }

    /// When records count as published (default `OnSend`); the engine picks `OnConsume` for
    /// a queue that is not `durable()`.
    pub fn with_mode(mut self, mode: PublishMode) -> OutboxRelay<S, Q> {
        self.mode = mode;
        self
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
    /// appends published. Returns how many records it published (in `OnConsume` mode: how
    /// many it marked published plus how many it sent).
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
        match &self.mode {
            PublishMode::OnSend => self.pass_on_send(limit).await,
            PublishMode::OnConsume(tracker) => self.pass_on_consume(tracker, limit).await,
        }
    }

    /// `PublishMode::OnConsume`: marks the appends the consumers completed, then sends what
    /// was not sent yet. Returns `(marked + sent, more)`.
    async fn pass_on_consume(&self, tracker: &ConsumeTracker, limit: usize) -> Result<(usize, bool), RelayError> {
        // Marked before the fetch, so a complete append is not fetched and sent again. If the
        // mark fails the append is simply unpublished and unknown: the next pass re-sends it
        // and the consumers' idempotency absorbs it.
        let complete = tracker.take_complete();
        if !complete.is_empty() {
            self.store.mark_published(&complete).await?;
        }
        // Appends up to the cursor were sent whole in this process: only newer ones are read.
        let after = self.sent_through.load(Ordering::Relaxed);
        let (entries, more) = self.fetch_whole_appends(after, limit).await?;
        let appends = split_appends(&entries);
        let mut by_destination: BTreeMap<&str, Vec<QueueMessage>> = BTreeMap::new();
        for append in &appends {
            for index in tracker.unsent(append) {
                let entry = &append[index];
                let message = message_of(entry, index);
                by_destination.entry(entry.record.destination.as_str()).or_default().push(message);
            }
        }
        let mut sent = 0;
        let mut first_error = None;
        for (destination, messages) in by_destination {
            let mut messages = messages.into_iter().peekable();
            while messages.peek().is_some() {
                let batch: Vec<QueueMessage> = messages.by_ref().take(MAX_SEND_BATCH).collect();
                let sources: Vec<MessageSource> = batch.iter().map(|m| m.source.clone()).collect();
                match self.queue.send_batch(destination, batch).await {
                    Ok(_) => {
                        sources.iter().for_each(|s| tracker.sent(s, destination));
                        sent += sources.len();
                    }
                    Err(source) => {
                        // The rest of this destination waits for the next pass, so its
                        // groups keep their order.
                        first_error.get_or_insert(RelayError::Queue { destination: destination.to_owned(), source });
                        break;
                    }
                }
            }
        }
        // Advance the cursor over the prefix of appends sent whole; a partly sent one (a queue
        // refused a batch) is read again next pass.
        for append in &appends {
            if !tracker.unsent(append).is_empty() {
                break;
            }
            if let Some(last) = append.last() {
                self.sent_through.fetch_max(last.id, Ordering::Relaxed);
            }
        }
        // Appends whose records all went to unconsumed destinations are complete already.
        let complete = tracker.take_complete();
        if !complete.is_empty() {
            self.store.mark_published(&complete).await?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok((complete.len() + sent, more)),
        }
    }

    /// `PublishMode::OnSend`: send, then mark every append sent completely.
    async fn pass_on_send(&self, limit: usize) -> Result<(usize, bool), RelayError> {
        let (entries, more) = self.fetch_whole_appends(0, limit).await?;
        if entries.is_empty() {
            return Ok((0, false));
        }
        let appends = split_appends(&entries);

        // Per destination, in commit order; BTreeMap so destinations are visited in a fixed order.
        let mut by_destination: BTreeMap<&str, Vec<(usize, QueueMessage)>> = BTreeMap::new();
        for (a, append) in appends.iter().enumerate() {
            for (index, entry) in append.iter().enumerate() {
                let message = message_of(entry, index);
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
    async fn fetch_whole_appends(&self, after: u64, limit: usize) -> Result<(Vec<OutboxEntry>, bool), RelayError> {
        let mut entries = self.store.fetch_unpublished_after(after, limit).await?;
        if entries.len() < limit {
            return Ok((entries, false));
        }
        if entries.iter().all(|e| same_append(e, &entries[0])) {
            // One append fills the page: fetch it whole (an append never exceeds the bound).
            let bigger = limit.saturating_add(MAX_OUTBOX_PER_APPEND);
            entries = self.store.fetch_unpublished_after(after, bigger).await?;
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

/// The message for record `index` of its append.
fn message_of(entry: &OutboxEntry, index: usize) -> QueueMessage {
    let source = MessageSource {
        stream: entry.stream.clone(),
        version: entry.version,
        index: u32::try_from(index).unwrap_or(u32::MAX),
    };
    QueueMessage {
        group: entry.record.group.clone(),
        dedup_id: source.key(),
        body: entry.record.payload.clone(),
        source,
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
