//! The projector: brings every view up to date with the event store. Per stream it reads
//! from the lowest checkpoint of the stream's views, checks the hash chain, decodes each
//! event once, folds it into every view whose checkpoint is behind it, and saves the views
//! with their new checkpoints in one atomic `ViewStore::save` (every `save_every_events`
//! events at most, so a crash mid-stream loses at most one chunk of work, never consistency).
//!
//! Market streams feed the per-market views (depth, trades, candles); user streams the
//! per-user views (orders, fills, balances). Other streams (operator, admin, chain) have no
//! views yet and are skipped.

use std::collections::BTreeMap;

use super::view_store::{CheckpointMove, StoredView, ViewBatch, ViewStore, ViewStoreError};
use super::{
    BalancesView, CandlesView, DepthView, EventMeta, FoldError, TradeTapeView, UserFillsView, UserOrdersView, View,
};
use crate::domain::{MarketId, UserId};
use crate::events::user_payload::decode_user_event;
use crate::events::{
    decode_market_event, verify_chain, ChainError, EventEnvelope, EventStore, PayloadError, StoreError, StreamId,
};

/// Events folded between two saves of one stream's views, by default.
pub const DEFAULT_SAVE_EVERY_EVENTS: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("event store: {0}")]
    EventStore(#[from] StoreError),
    #[error("view store: {0}")]
    ViewStore(#[from] ViewStoreError),
    #[error("{stream} v{version}: cannot decode {event_type}: {source}")]
    Decode {
        stream: StreamId,
        version: u64,
        event_type: String,
        #[source]
        source: PayloadError,
    },
    #[error("hash chain: {0}")]
    Chain(#[from] ChainError),
    #[error("{stream} v{version}: does not fold into view {projection}: {reason}")]
    Fold { projection: &'static str, stream: StreamId, version: u64, reason: FoldError },
    #[error("stored view {kind} / {key} is unreadable: {reason}")]
    ViewJson { kind: &'static str, key: String, reason: String },
}

impl ProjectionError {
    /// The stream and version an event-level error is about.
    pub fn position(&self) -> Option<(&StreamId, u64)> {
        match self {
            ProjectionError::Decode { stream, version, .. } | ProjectionError::Fold { stream, version, .. } => {
                Some((stream, *version))
            }
            ProjectionError::Chain(e) => Some((
                e.stream(),
                match e {
                    ChainError::VersionGap { found, .. } => *found,
                    ChainError::BrokenLink { version, .. }
                    | ChainError::BadHash { version, .. }
                    | ChainError::WrongStream { version, .. } => *version,
                },
            )),
            _ => None,
        }
    }
}

/// What one `catch_up` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatchUpReport {
    /// Streams listed by the event store.
    pub streams: usize,
    /// Streams with views whose checkpoints moved.
    pub streams_advanced: usize,
    /// Events read and folded (each counted once, however many views it fed).
    pub events_folded: u64,
    /// Atomic saves made.
    pub saves: u64,
}

#[derive(Clone, Debug)]
pub struct Projector {
    save_every_events: usize,
}

impl Default for Projector {
    fn default() -> Projector {
        Projector::new()
    }
}

impl Projector {
    pub fn new() -> Projector {
        Projector { save_every_events: DEFAULT_SAVE_EVERY_EVENTS }
    }

    /// Saves after at most `n` events of a stream (at least 1).
    pub fn with_save_every_events(n: usize) -> Projector {
        Projector { save_every_events: n.max(1) }
    }

    /// Folds every event not yet folded into every view. Idempotent: once caught up, a
    /// second run reads nothing and writes nothing.
    pub async fn catch_up(
        &self,
        store: &impl EventStore,
        views: &impl ViewStore,
    ) -> Result<CatchUpReport, ProjectionError> {
        let streams = store.list_streams().await?;
        let mut report = CatchUpReport { streams: streams.len(), ..CatchUpReport::default() };
        for stream in &streams {
            let name = stream.as_str();
            let (events, saves) = if let Some(id) = name.strip_prefix("market:") {
                // A listed stream name is canonical, so its id parses.
                let Ok(market) = MarketId::new(id) else { continue };
                self.catch_up_stream::<DepthView, TradeTapeView, CandlesView>(store, views, stream, market, |e| {
                    decode_market_event(&e.event_type, e.schema_version, e.payload.clone())
                })
                .await?
            } else if let Some(addr) = name.strip_prefix("user:") {
                let Ok(user) = UserId::from_hex(addr) else { continue };
                self.catch_up_stream::<UserOrdersView, UserFillsView, BalancesView>(store, views, stream, user, |e| {
                    decode_user_event(&e.event_type, e.schema_version, e.payload.clone())
                })
                .await?
            } else {
                continue;
            };
            if events > 0 {
                report.streams_advanced += 1;
            }
            report.events_folded += events;
            report.saves += saves;
        }
        Ok(report)
    }

    /// Brings the three views of one stream up to date; returns (events folded, saves).
    async fn catch_up_stream<A, B, C>(
        &self,
        store: &impl EventStore,
        views: &impl ViewStore,
        stream: &StreamId,
        key: A::Key,
        decode: impl Fn(&EventEnvelope) -> Result<A::Event, PayloadError>,
    ) -> Result<(u64, u64), ProjectionError>
    where
        A: View,
        B: View<Key = A::Key, Event = A::Event>,
        C: View<Key = A::Key, Event = A::Event>,
    {
        let mut a = Slot::<A>::load(views, stream, key).await?;
        let mut b = Slot::<B>::load(views, stream, key).await?;
        let mut c = Slot::<C>::load(views, stream, key).await?;
        let from = a.checkpoint.min(b.checkpoint).min(c.checkpoint) + 1;
        let events = store.read_stream(stream, from).await?;
        let Some(first) = events.first() else { return Ok((0, 0)) };
        if first.version != from {
            return Err(ChainError::VersionGap { stream: stream.clone(), expected: from, found: first.version }.into());
        }
        verify_chain(&events)?;
        let mut saves = 0;
        for chunk in events.chunks(self.save_every_events) {
            for envelope in chunk {
                // Queue bookkeeping of the stream's actor (see `actors::consumed`): no view
                // reads it, the checkpoint still passes it.
                if crate::actors::is_bookkeeping(&envelope.event_type) {
                    a.pass(envelope.version);
                    b.pass(envelope.version);
                    c.pass(envelope.version);
                    continue;
                }
                let event = decode(envelope).map_err(|source| ProjectionError::Decode {
                    stream: stream.clone(),
                    version: envelope.version,
                    event_type: envelope.event_type.clone(),
                    source,
                })?;
                let meta = EventMeta { version: envelope.version, occurred_at: envelope.occurred_at };
                a.fold(stream, meta, &event)?;
                b.fold(stream, meta, &event)?;
                c.fold(stream, meta, &event)?;
            }
            let last = chunk.last().map_or(0, |e| e.version);
            let mut batch = ViewBatch::default();
            a.stage(stream, last, &mut batch)?;
            b.stage(stream, last, &mut batch)?;
            c.stage(stream, last, &mut batch)?;
            if !batch.checkpoints.is_empty() {
                views.save(batch).await?;
                a.saved(last);
                b.saved(last);
                c.saved(last);
                saves += 1;
            }
        }
        Ok((events.len() as u64, saves))
    }
}

/// One view of one stream while it is being caught up.
struct Slot<V: View> {
    key: String,
    /// The saved checkpoint.
    checkpoint: u64,
    /// The last version folded into `view` (>= `checkpoint`).
    folded: u64,
    view: V,
}

impl<V: View> Slot<V> {
    async fn load(views: &impl ViewStore, stream: &StreamId, key: V::Key) -> Result<Slot<V>, ProjectionError> {
        let key_text = key.to_string();
        let checkpoint = views.checkpoint(V::KIND, stream).await?;
        let view = match views.load(V::KIND, &key_text).await? {
            Some(json) => serde_json::from_value(json).map_err(|e| ProjectionError::ViewJson {
                kind: V::KIND,
                key: key_text.clone(),
                reason: e.to_string(),
            })?,
            // Saved together with its checkpoint, so a missing view means a missing checkpoint.
            None if checkpoint == 0 => V::empty(key),
            None => {
                return Err(ProjectionError::ViewJson {
                    kind: V::KIND,
                    key: key_text,
                    reason: format!("missing, but its checkpoint for {stream} is at {checkpoint}"),
                })
            }
        };
        Ok(Slot { key: key_text, checkpoint, folded: checkpoint, view })
    }

    fn fold(&mut self, stream: &StreamId, meta: EventMeta, event: &V::Event) -> Result<(), ProjectionError> {
        if meta.version <= self.folded {
            return Ok(());
        }
        self.view.apply(meta, event).map_err(|reason| ProjectionError::Fold {
            projection: V::KIND,
            stream: stream.clone(),
            version: meta.version,
            reason,
        })?;
        self.folded = meta.version;
        Ok(())
    }

    /// Moves past an event no view reads, so the checkpoint can pass it too.
    fn pass(&mut self, version: u64) {
        self.folded = self.folded.max(version);
    }

    /// Adds the view and its checkpoint move to `batch` if it folded anything new.
    fn stage(&self, stream: &StreamId, last: u64, batch: &mut ViewBatch) -> Result<(), ProjectionError> {
        if self.folded <= self.checkpoint {
            return Ok(());
        }
        debug_assert_eq!(self.folded, last, "every view behind the chunk's end folds up to it");
        let json = serde_json::to_value(&self.view).map_err(|e| ProjectionError::ViewJson {
            kind: V::KIND,
            key: self.key.clone(),
            reason: e.to_string(),
        })?;
        batch.views.push(StoredView { kind: V::KIND.to_owned(), key: self.key.clone(), json });
        batch.checkpoints.push(CheckpointMove {
            projection: V::KIND.to_owned(),
            stream: stream.clone(),
            from: self.checkpoint,
            to: self.folded,
        });
        Ok(())
    }

    fn saved(&mut self, last: u64) {
        if self.folded == last {
            self.checkpoint = last;
        }
    }
}

/// A view present in only one store, or different in the two.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewDiff {
    pub kind: String,
    pub key: String,
    pub left: Option<serde_json::Value>,
    pub right: Option<serde_json::Value>,
}

/// Every view that differs between two stores (empty when they hold identical views).
pub async fn diff_views(left: &impl ViewStore, right: &impl ViewStore) -> Result<Vec<ViewDiff>, ViewStoreError> {
    let mut all: BTreeMap<(String, String), (Option<serde_json::Value>, Option<serde_json::Value>)> = BTreeMap::new();
    for v in left.list().await? {
        all.entry((v.kind, v.key)).or_default().0 = Some(v.json);
    }
    for v in right.list().await? {
        all.entry((v.kind, v.key)).or_default().1 = Some(v.json);
    }
    Ok(all
        .into_iter()
        .filter(|(_, (l, r))| l != r)
        .map(|((kind, key), (left, right))| ViewDiff { kind, key, left, right })
        .collect())
}
