//! Events at the storage boundary: versioned wire types with upcasters, the hash-chained
//! envelope, and the `EventStore` port with the conformance suite every adapter runs.

pub mod conformance;
pub mod envelope;
pub mod market_command;
pub mod market_snapshot;
pub mod payload;
pub mod store;
pub mod upcast;
pub mod user_payload;

pub use envelope::{
    canonical_json, verify_chain, ChainError, Clock, EventEnvelope, ManualClock, NewEvent, StreamId, StreamIdError,
    SystemClock, GENESIS_HASH,
};
pub use payload::{
    decode_market_event, decode_market_event_bytes, encode_market_event, EncodedEvent, PayloadError, WireMarketEvent,
};
pub use store::{
    AppendRequest, AppendResult, EventStore, OutboxEntry, OutboxRecord, RawEvent, SealedEvent, Snapshot, StoreError,
};
pub use upcast::{upcast_to_current, UpcastError};
