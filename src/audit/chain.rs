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

/// What linking an event into its stream's chain needs: its version, its stored hashes, and
/// whether its stored hash is the hash of its contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub version: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub hash_matches: bool,
}

impl Link {
    pub fn of(stream: &StreamId, event: &SealedEvent) -> Link {
        let hash_matches = event.compute_hash(stream) == event.hash;
        Link { version: event.version, prev_hash: event.prev_hash, hash: event.hash, hash_matches }
    }
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
        self.link(Link::of(&self.stream, event))
    }

    /// [`ChainWalk::next`] with the event's own hash already recomputed and compared
    /// ([`Link::of`]), which does not depend on the events before it: the auditor does that
    /// on any thread and links the events here, in order.
    pub fn link(&mut self, link: Link) -> Result<(), Break> {
        let version = link.version;
        if version != self.next_version {
            let reason = format!("version gap: expected v{}, found v{version}", self.next_version);
            return Err(Break { version: self.next_version.min(version), reason });
        }
        if link.prev_hash != self.prev_hash {
            return Err(Break { version, reason: "prev_hash does not match the previous event's hash".into() });
        }
        if !link.hash_matches {
            return Err(Break { version, reason: "stored hash does not match the event's contents".into() });
        }
        self.prev_hash = link.hash;
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
#[path = "../../unit_tests/audit/chain.rs"]
mod tests;
