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

/// An actor's snapshot: the domain state's own snapshot bytes and the consumed positions.
#[derive(Serialize, Deserialize)]
pub struct ActorSnapshot {
    pub consumed: Consumed,
    /// The domain snapshot (JSON text, as its codec wrote it).
    pub state: String,
    /// Actor-level state beside the domain's (a market's signed orders); absent when empty.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub extra: Value,
}

impl ActorSnapshot {
    pub fn encode(consumed: &Consumed, state: Vec<u8>) -> Vec<u8> {
        ActorSnapshot::encode_with(consumed, state, Value::Null)
    }

    pub fn encode_with(consumed: &Consumed, state: Vec<u8>, extra: Value) -> Vec<u8> {
        let state = String::from_utf8_lossy(&state).into_owned();
        let snapshot = ActorSnapshot { consumed: consumed.clone(), state, extra };
        // A map of strings to integer pairs, a string and a JSON value always serialize.
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<ActorSnapshot> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MarketId, UserId};

    fn source(stream: &StreamId, version: u64, index: u32) -> MessageSource {
        MessageSource { stream: stream.clone(), version, index }
    }

    #[test]
    fn only_records_past_the_last_position_of_their_stream_are_new() {
        let a = StreamId::user(UserId([1; 20]));
        let b = StreamId::market(MarketId::new("BTC-USDT").unwrap());
        let mut consumed = Consumed::default();
        assert!(consumed.is_new(&source(&a, 3, 0)));
        consumed.advance(&source(&a, 3, 1));
        assert!(!consumed.is_new(&source(&a, 3, 1)));
        assert!(!consumed.is_new(&source(&a, 2, 9)));
        assert!(consumed.is_new(&source(&a, 3, 2)));
        assert!(consumed.is_new(&source(&a, 4, 0)));
        assert!(consumed.is_new(&source(&b, 1, 0)));
    }

    #[test]
    fn the_consumed_event_folds_back_to_the_same_positions() {
        let a = StreamId::user(UserId([1; 20]));
        let clock = crate::events::SystemClock;
        let sources = [source(&a, 5, 0), source(&a, 5, 1)];
        let event = Consumed::event(&clock, uuid::Uuid::nil(), &sources);
        let mut folded = Consumed::default();
        folded.apply(&event.payload).unwrap();
        let mut direct = Consumed::default();
        sources.iter().for_each(|s| direct.advance(s));
        assert_eq!(folded, direct);
        assert!(folded.apply(&json!({"sources": [{"stream": "nope", "version": 1, "index": 0}]})).is_err());
    }
}
