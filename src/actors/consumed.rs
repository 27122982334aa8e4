//! What an actor has consumed from the queues, per source stream: the position (version,
//! index) of the last record it applied. Records of one source reach a consumer in order
//! (FIFO per group, relayed in commit order), so a redelivered record is one at or below
//! that position and is skipped. The positions advance in the same atomic append as the
//! effects they caused — as an `actor.Consumed` event in the consumer's own stream — so a
//! crash can never separate "applied" from "recorded as applied", and an actor can take many
//! records in one append (one fsync) without losing per-record deduplication.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::events::{Clock, NewEvent, StreamId};
use crate::queue::MessageSource;

pub const CONSUMED: &str = "actor.Consumed";
pub const CONSUMED_VERSION: u16 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumed {
    /// Source stream -> (version, index) of the last record applied.
    last: BTreeMap<String, (u64, u32)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireSource {
    stream: String,
    version: u64,
    index: u32,
}

impl Consumed {
    /// Whether `source` comes after everything applied from its stream.
    pub fn is_new(&self, source: &MessageSource) -> bool {
        self.last.get(source.stream.as_str()).is_none_or(|&seen| (source.version, source.index) > seen)
    }

    pub fn advance(&mut self, source: &MessageSource) {
        self.last.insert(source.stream.to_string(), (source.version, source.index));
    }

    /// The event recording `sources` as consumed.
    pub fn event(clock: &dyn Clock, correlation: uuid::Uuid, sources: &[MessageSource]) -> NewEvent {
        let wire: Vec<WireSource> = sources
            .iter()
            .map(|s| WireSource { stream: s.stream.to_string(), version: s.version, index: s.index })
            .collect();
        NewEvent::new(clock, correlation, correlation, CONSUMED, CONSUMED_VERSION, json!({ "sources": wire }))
    }

    /// Folds a stored `actor.Consumed` payload.
    pub fn apply(&mut self, payload: &Value) -> Result<(), String> {
        let sources: Vec<WireSource> =
            serde_json::from_value(payload["sources"].clone()).map_err(|e| format!("actor.Consumed: {e}"))?;
        for s in sources {
            let stream = StreamId::parse(&s.stream).map_err(|e| format!("actor.Consumed: {e}"))?;
            self.advance(&MessageSource { stream, version: s.version, index: s.index });
        }
        Ok(())
    }
}

/// An actor's snapshot: the domain state's own snapshot bytes, the consumed positions, and
/// actor-level state beside the domain's.
///
/// Stored as `HOBSNAP2`, a u32 big-endian length, a small JSON header (`consumed`, `extra`),
/// then the domain snapshot's bytes as they are: a large book is never escaped into a JSON
/// string and parsed twice.
#[derive(Debug, PartialEq)]
pub struct ActorSnapshot {
    pub consumed: Consumed,
    /// The domain snapshot, as its codec wrote it.
    pub state: Vec<u8>,
    /// Actor-level state beside the domain's (a market's signed orders); null when empty.
    pub extra: Value,
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"HOBSNAP2";

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    consumed: Consumed,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    extra: Value,
}

impl ActorSnapshot {
    pub fn encode(consumed: &Consumed, state: Vec<u8>) -> Vec<u8> {
        ActorSnapshot::encode_with(consumed, state, Value::Null)
    }

    pub fn encode_with(consumed: &Consumed, state: Vec<u8>, extra: Value) -> Vec<u8> {
        let header = SnapshotHeader { consumed: consumed.clone(), extra };
        // A map of strings to integer pairs and a JSON value always serialize.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(12 + header.len() + state.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&state);
        out
    }

    /// None if the bytes are not a snapshot of this layout (the actor then replays its stream).
    pub fn decode(bytes: &[u8]) -> Option<ActorSnapshot> {
        let rest = bytes.strip_prefix(SNAPSHOT_MAGIC)?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (header, state) = rest.split_at(len);
        let header: SnapshotHeader = serde_json::from_slice(header).ok()?;
        Some(ActorSnapshot { consumed: header.consumed, state: state.to_vec(), extra: header.extra })
    }
}

#[cfg(test)]
#[path = "../../unit_tests/actors/consumed.rs"]
mod tests;
