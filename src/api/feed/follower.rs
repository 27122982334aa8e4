//! Following a stream live in memory: a view starts from what the projector last saved in
//! the view store and is brought to the stream's head by folding the later events itself.
//! The feeds and the private reads use this, so they are as fresh as the last commit while
//! reading only the tail of a stream, never all of it.

use crate::events::{EventEnvelope, EventStore, StreamId};
use crate::projections::{EventMeta, FoldError, View, ViewStore};

use super::FeedError;

/// Events read per page while catching up.
pub const PAGE: usize = 2_048;

/// A view and the last version of its stream folded into it.
#[derive(Clone, Debug)]
pub struct Followed<V: View> {
    pub view: V,
    pub folded: u64,
}

impl<V: View> Followed<V> {
    /// The view as the projector last saved it, with its checkpoint. The view and its
    /// checkpoint are saved together but read apart, so the pair is read again until the
    /// checkpoint did not move in between (checkpoints only move forward).
    pub async fn load(views: &impl ViewStore, stream: &StreamId, key: V::Key) -> Result<Followed<V>, FeedError> {
        let key_text = key.to_string();
        for _ in 0..16 {
            let before = views.checkpoint(V::KIND, stream).await?;
            let json = views.load(V::KIND, &key_text).await?;
            let after = views.checkpoint(V::KIND, stream).await?;
            if before != after {
                continue;
            }
            let view = match json {
                Some(json) => serde_json::from_value(json)
                    .map_err(|e| FeedError::View(format!("{} / {key_text}: {e}", V::KIND)))?,
                None => return Ok(Followed { view: V::empty(key), folded: 0 }),
            };
            return Ok(Followed { view, folded: before });
        }
        Err(FeedError::View(format!("{} / {key_text}: the projector kept moving; try again", V::KIND)))
    }

    /// Folds `event` unless the view already holds it; true if it was folded.
    pub fn fold(&mut self, meta: EventMeta, event: &V::Event) -> Result<bool, FoldError> {
        if meta.version <= self.folded {
            return Ok(false);
        }
        self.view.apply(meta, event)?;
        self.folded = meta.version;
        Ok(true)
    }

    /// Moves past an event no view reads.
    pub fn pass(&mut self, version: u64) {
        self.folded = self.folded.max(version);
    }
}

/// The next page of `stream` after `version`, checked to continue it without a gap.
pub async fn next_page<S: EventStore>(
    store: &S,
    stream: &StreamId,
    version: u64,
) -> Result<Vec<EventEnvelope>, FeedError> {
    let page = store.read_stream_page(stream, version + 1, PAGE).await?;
    for (i, e) in page.iter().enumerate() {
        if e.version != version + 1 + i as u64 {
            return Err(FeedError::Gap { stream: stream.clone(), expected: version + 1 + i as u64, found: e.version });
        }
    }
    Ok(page)
}

pub fn meta(envelope: &EventEnvelope) -> EventMeta {
    EventMeta { version: envelope.version, occurred_at: envelope.occurred_at }
}
