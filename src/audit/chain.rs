//! Hash-chain and version checks over one stream, page by page: the same rules as
//! `events::verify_chain` (gapless versions from 1, each `prev_hash` the previous event's hash,
//! each hash recomputed from the stored fields), on stored text rather than JSON values.

use crate::events::{SealedEvent, StreamId, GENESIS_HASH};

/// Why a stream's chain is broken at a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    pub version: u64,
    pub reason: String,
}

/// Walks one stream's events in order.
#[derive(Clone, Debug)]
pub struct ChainWalk {
    stream: StreamId,
    next_version: u64,
    prev_hash: [u8; 32],
}

impl ChainWalk {
    pub fn new(stream: StreamId) -> ChainWalk {
        ChainWalk { stream, next_version: 1, prev_hash: GENESIS_HASH }
    }

    /// The last version accepted (0 before the first).
    pub fn last_version(&self) -> u64 {
        self.next_version - 1
    }

    /// Accepts the next stored event, or says why it breaks the chain. After a break the rest
    /// of the stream is untrusted; the caller stops there.
    pub fn next(&mut self, event: &SealedEvent) -> Result<(), Break> {
        let version = event.version;
        if version != self.next_version {
            let reason = format!("version gap: expected v{}, found v{version}", self.next_version);
            return Err(Break { version: self.next_version.min(version), reason });
        }
        if event.prev_hash != self.prev_hash {
            return Err(Break { version, reason: "prev_hash does not match the previous event's hash".into() });
        }
        if event.compute_hash(&self.stream) != event.hash {
            return Err(Break { version, reason: "stored hash does not match the event's contents".into() });
        }
        self.prev_hash = event.hash;
        self.next_version += 1;
        Ok(())
    }

    /// Checks the stream ended where the store's head says it does: a deleted last commit
    /// leaves a chain that verifies but stops short.
    pub fn finish(&self, head_version: u64) -> Result<(), Break> {
        let last = self.last_version();
        if last < head_version {
            let reason = format!("stream ends at v{last} but the store's head is v{head_version}: events are missing");
            return Err(Break { version: last + 1, reason });
        }
        if last > head_version {
            let reason = format!("stream holds v{last} but the store's head is v{head_version}");
            return Err(Break { version: head_version + 1, reason });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    // Test code unwraps: a failure should fail the test.
    use super::*;
    use crate::events::{EventEnvelope, ManualClock, NewEvent};
    use chrono::DateTime;
    use serde_json::json;
    use uuid::Uuid;

    fn sealed(n: u64) -> Vec<SealedEvent> {
        let clock = ManualClock::new(DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap());
        let stream = StreamId::parse("market:BTC-USDT").unwrap();
        let mut prev = GENESIS_HASH;
        (1..=n)
            .map(|v| {
                let e = NewEvent::new(&clock, Uuid::nil(), Uuid::nil(), "market.Halted", 1, json!({"b": v, "a": 1}));
                let env = EventEnvelope::seal(stream.clone(), v, prev, Some("k".into()), e);
                prev = env.hash;
                SealedEvent::from_envelope(env)
            })
            .collect()
    }

    fn walk(events: &[SealedEvent]) -> Result<ChainWalk, Break> {
        let mut w = ChainWalk::new(StreamId::parse("market:BTC-USDT").unwrap());
        for e in events {
            w.next(e)?;
        }
        Ok(w)
    }

    #[test]
    fn an_intact_stream_verifies_and_ends_at_its_head() {
        let w = walk(&sealed(3)).unwrap();
        assert_eq!(w.finish(3), Ok(()));
    }

    #[test]
    fn an_edited_payload_is_named_by_version() {
        let mut events = sealed(3);
        events[1].payload = br#"{"a":1,"b":9}"#.to_vec();
        assert_eq!(walk(&events).err().map(|b| b.version), Some(2));
    }

    #[test]
    fn a_removed_event_is_a_gap_at_the_missing_version() {
        let mut events = sealed(3);
        events.remove(1);
        let err = walk(&events).err().unwrap();
        assert_eq!(err.version, 2);
        assert!(err.reason.contains("gap"), "{}", err.reason);
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let stream = StreamId::parse("market:BTC-USDT").unwrap();
        let mut events = sealed(3);
        events[1].payload = br#"{"a":1,"b":9}"#.to_vec();
        events[1].hash = events[1].compute_hash(&stream);
        assert_eq!(walk(&events).err().map(|b| b.version), Some(3));
    }

    #[test]
    fn a_truncated_tail_is_named_by_the_first_missing_version() {
        let events = sealed(3);
        let w = walk(&events[..2]).unwrap();
        assert_eq!(w.finish(3).err().map(|b| b.version), Some(3));
    }
}
