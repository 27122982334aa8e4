//! The `Queue` port: FIFO message groups between the outbox and the consumers, with SQS FIFO
//! semantics so the in-process adapter and a later SQS adapter are interchangeable.
//!
//! - Per-group order: while a message of group G is in flight (received, neither acked nor
//!   past its visibility timeout), no later message of G is delivered. Groups interleave.
//! - At least once: a message that is not acked in time (or is nacked) is delivered again,
//!   with a higher `receive_count`; after `max_receives` deliveries it becomes a dead letter.
//! - Deduplication: a second message with the same `dedup_id` sent within the dedup window
//!   is accepted and dropped. The window is an optimisation; consumers still deduplicate by
//!   source (see `consumer.rs`), so redelivery past the window is harmless.
//! - Bounded: a full destination refuses a batch with `QueueError::Full`, never drops it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{MarketId, UserId};
use crate::events::StreamId;

pub mod any;
pub mod conformance;
pub mod consumer;
pub mod inprocess;
pub mod relay;
pub mod sqs;

pub use consumer::{consume_once, consume_once_confirming, ConsumeError, ConsumeOptions, ConsumeReport};
pub use inprocess::{DestinationConfig, DestinationStats, InProcessQueue};
pub use relay::{ConsumeTracker, OutboxRelay, PublishMode, RelayError, RelayStats};
pub use sqs::{SqsConfig, SqsCredentials, SqsQueue, SqsQueueNames};

/// Accepted orders and cancels, to the market's actor; group `market:{id}`.
pub const MARKET_QUEUE: &str = "market";
/// Matched trades to settle on-chain; group `operator:{0xaddr}`.
pub const SETTLEMENT_QUEUE: &str = "settlement-operator";
/// On-chain admin tasks (market registration, pause); group `admin`.
pub const ADMIN_QUEUE: &str = "admin-operator";
/// A market's outcomes (fills, releases, cancels) to user actors; group `user:{0xaddr}`.
pub const USER_QUEUE: &str = "user";
/// Every destination hob uses.
pub const DESTINATIONS: [&str; 4] = [MARKET_QUEUE, SETTLEMENT_QUEUE, ADMIN_QUEUE, USER_QUEUE];

/// The admin queue's only group.
pub const ADMIN_GROUP: &str = "admin";
/// Most messages one `send_batch` may carry; the relay sends in batches of at most this.
pub const MAX_SEND_BATCH: usize = 256;
/// Most deliveries one `receive` returns, whatever `max` asks for.
pub const MAX_RECEIVE_BATCH: usize = 256;

/// The group of a market's queue: the market stream's name, so one market's orders stay in
/// order across nodes.
pub fn market_group(market: MarketId) -> String {
    StreamId::market(market).as_str().to_owned()
}

/// The group of a user's messages on `USER_QUEUE`.
pub fn user_group(user: UserId) -> String {
    StreamId::user(user).as_str().to_owned()
}

/// The group of a settlement operator wallet's messages on `SETTLEMENT_QUEUE`.
pub fn operator_group(operator: UserId) -> String {
    StreamId::operator(operator).as_str().to_owned()
}

/// Where a message came from: the outbox record at `index` among those written by the append
/// that ended at `version` of `stream`. Stable across re-sends, so it is the consumers'
/// deduplication key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageSource {
    pub stream: StreamId,
    pub version: u64,
    pub index: u32,
}

impl MessageSource {
    /// `{stream}:{version}:{index}`: the message's `dedup_id`, and the idempotency key a
    /// consumer's own append should carry so its effect and its deduplication are one write.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.stream, self.version, self.index)
    }
}

impl fmt::Display for MessageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.stream, self.version, self.index)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueueMessage {
    /// Messages of one group are delivered in send order, one batch in flight at a time.
    pub group: String,
    /// A repeat within the destination's dedup window is accepted and dropped.
    pub dedup_id: String,
    pub body: Value,
    pub source: MessageSource,
}

/// An opaque handle naming one delivery of a message; only the latest delivery's receipt
/// can ack or nack it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receipt(String);

impl Receipt {
    pub fn new(token: impl Into<String>) -> Receipt {
        Receipt(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub receipt: Receipt,
    pub message: QueueMessage,
    /// 1 on the first delivery, counting redeliveries.
    pub receive_count: u32,
}

/// A message delivered `max_receives` times without an ack, taken out of its group.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub message: QueueMessage,
    pub receive_count: u32,
    pub dead_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendSummary {
    /// Messages stored for delivery.
    pub enqueued: usize,
    /// Messages accepted and dropped as repeats within the dedup window.
    pub deduplicated: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("unknown queue destination {0:?}")]
    UnknownDestination(String),
    #[error("queue {destination} is full: {stored} stored, capacity {capacity}, {incoming} more refused")]
    Full { destination: String, stored: usize, capacity: usize, incoming: usize },
    #[error("{len} messages in one batch to {destination}, limit {limit}")]
    BatchTooLarge { destination: String, len: usize, limit: usize },
    #[error("receipt {receipt:?} on {destination} is expired or superseded")]
    ReceiptExpired { destination: String, receipt: String },
    #[error("receipt {receipt:?} on {destination} is malformed")]
    InvalidReceipt { destination: String, receipt: String },
    #[error("message to {destination} refused: {reason}")]
    InvalidMessage { destination: String, reason: String },
    #[error("queue configuration: {0}")]
    InvalidConfig(String),
    #[error("queue backend: {0}")]
    Backend(String),
}

/// FIFO message queues with message groups, visibility timeouts, deduplication and dead
/// letters. Futures are `Send` so a queue can be awaited from any tokio or actix task.
pub trait Queue: Send + Sync {
    /// Stores the batch in order, all or nothing: a batch that does not fit is refused whole
    /// with `Full`.
    fn send_batch(
        &self,
        destination: &str,
        messages: Vec<QueueMessage>,
    ) -> impl Future<Output = Result<SendSummary, QueueError>> + Send;

    /// Up to `max` (at most `MAX_RECEIVE_BATCH`) visible messages, each made invisible for the
    /// destination's visibility timeout. Waits up to `wait` for one to become available and
    /// returns an empty batch if none does. Deliveries of one group come in send order.
    fn receive(
        &self,
        destination: &str,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, QueueError>> + Send;

    /// Deletes the delivered message. `ReceiptExpired` if its visibility timeout passed (it
    /// may be delivered again: consumers deduplicate).
    fn ack(&self, destination: &str, receipt: &Receipt) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Makes the delivered message visible again after `retry_after` (zero: at once). Its
    /// group stays blocked until then, so no later message overtakes it.
    fn nack(
        &self,
        destination: &str,
        receipt: &Receipt,
        retry_after: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The destination's dead letters, oldest first.
    fn dead_letters(&self, destination: &str) -> impl Future<Output = Result<Vec<DeadLetter>, QueueError>> + Send;

    /// True if an accepted message survives the crash of this process (SQS): the relay may
    /// then mark an outbox record published as soon as the queue accepted it. False (the
    /// default, and the in-process queue) if the queue lives in this process's memory: the
    /// record must stay unpublished until a consumer applied it, or a crash in between loses
    /// it for good (see `relay.rs`). False is always safe, only slower; say true only for a
    /// queue that really persists.
    fn durable(&self) -> bool {
        false
    }
}
