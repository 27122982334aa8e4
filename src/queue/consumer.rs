//! The consumer side: receive a batch, apply each delivery through a handler, ack only
//! what took effect.
//!
//! Exactly-once effect on top of at-least-once delivery comes from the handler, not from
//! this loop. The recommended handler appends its events with the idempotency key
//! `delivery.message.source.key()` (`{stream}:{version}:{index}`): the effect and the record
//! that it happened are then one atomic write, so a redelivery (after a crash before the ack,
//! an expired visibility timeout, or a re-send past the queue's dedup window) makes the store
//! return the original result and write nothing. Marking `processed_events` *before* the
//! handler would lose the effect when the handler fails or the process dies in between;
//! marking it *after* cannot make a non-idempotent handler safe. So `consume_once` records
//! the source in `processed_events` after the handler succeeded, keyed by
//! `(consumer#index, stream, version)`, and reports a repeat as a duplicate: the audit
//! trail of what each consumer applied, and an alarm when redeliveries happen.

use std::future::Future;
use std::time::Duration;

use super::{Delivery, Queue, QueueError};
use crate::events::{EventStore, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// Most deliveries taken per call.
    pub max: usize,
    /// How long `receive` waits for a first message.
    pub wait: Duration,
    /// After a handler error, the delivery (and the rest of its group's batch) is made
    /// visible again after this long.
    pub retry_after: Duration,
}

impl Default for ConsumeOptions {
    fn default() -> ConsumeOptions {
        ConsumeOptions { max: 64, wait: Duration::from_millis(100), retry_after: Duration::from_millis(100) }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumeReport {
    pub received: usize,
    /// Handled and acked.
    pub handled: usize,
    /// Handled although `processed_events` already held the source: a redelivery that the
    /// handler's idempotency absorbed.
    pub duplicates: usize,
    /// Handler errors; the delivery was nacked.
    pub failed: usize,
    /// Deliveries not handled because an earlier one of their group failed in this batch.
    pub deferred: usize,
    /// Acks refused because the visibility timeout had passed; the message will come again.
    pub expired_acks: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("processed_events: {0}")]
    Store(#[from] StoreError),
}

/// Receives one batch from `destination` and hands each delivery, in order, to `handler`.
/// A delivery is acked only after its handler succeeded and its source was recorded as
/// processed by `consumer`. A failed delivery is nacked and the rest of its group's batch is
/// nacked unhandled, so the group keeps its order; other groups go on.
pub async fn consume_once<S, Q, F, Fut, E>(
    store: &S,
    queue: &Q,
    destination: &str,
    consumer: &str,
    options: ConsumeOptions,
    handler: F,
) -> Result<ConsumeReport, ConsumeError>
where
    S: EventStore,
    Q: Queue,
    F: FnMut(&Delivery) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    consume_once_confirming(store, queue, destination, consumer, options, handler, |_| {}).await
}

/// `consume_once`, calling `confirmed` for each delivery whose handler succeeded and whose
/// source was recorded as processed, before its ack. With a non-durable queue the engine
/// confirms to the relay's `ConsumeTracker` here, so the outbox record is marked published
/// only once its effect is durable (a crash before that re-sends it after the restart; the
/// handler's idempotency key absorbs the repeat).
pub async fn consume_once_confirming<S, Q, F, Fut, E, C>(
    store: &S,
    queue: &Q,
    destination: &str,
    consumer: &str,
    options: ConsumeOptions,
    mut handler: F,
    mut confirmed: C,
) -> Result<ConsumeReport, ConsumeError>
where
    S: EventStore,
    Q: Queue,
    F: FnMut(&Delivery) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    C: FnMut(&Delivery),
{
    let deliveries = queue.receive(destination, options.max, options.wait).await?;
    let mut report = ConsumeReport { received: deliveries.len(), ..ConsumeReport::default() };
    let mut failed_groups: Vec<&str> = Vec::new();
    for delivery in &deliveries {
        let group = delivery.message.group.as_str();
        if failed_groups.contains(&group) {
            report.deferred += 1;
            nack(queue, destination, delivery, Duration::ZERO).await?;
            continue;
        }
        if handler(delivery).await.is_err() {
            report.failed += 1;
            failed_groups.push(group);
            nack(queue, destination, delivery, options.retry_after).await?;
            continue;
        }
        let source = &delivery.message.source;
        let processed_key = format!("{consumer}#{}", source.index);
        if !store.mark_processed(&processed_key, &source.stream, source.version).await? {
            report.duplicates += 1;
        }
        confirmed(delivery);
        match queue.ack(destination, &delivery.receipt).await {
            Ok(()) => report.handled += 1,
            Err(QueueError::ReceiptExpired { .. }) => report.expired_acks += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

/// A nack whose visibility already expired needs nothing more: the message is visible.
async fn nack<Q: Queue>(queue: &Q, destination: &str, delivery: &Delivery, after: Duration) -> Result<(), QueueError> {
    match queue.nack(destination, &delivery.receipt, after).await {
        Ok(()) | Err(QueueError::ReceiptExpired { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
