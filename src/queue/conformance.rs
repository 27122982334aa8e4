//! The conformance suite of the `Queue` port. Every adapter runs it through a
//! `QueueHarness`, each check on fresh, empty destinations:
//!
//! ```ignore
//! hob::queue::conformance::run_all(&MyHarness::new()).await;
//! ```
//!
//! Where adapters legitimately differ the harness says how, instead of the checks weakening:
//! how a node "crashes" (the in-process queue moves its clock past the visibility timeout;
//! SQS drops the node, stopping its heartbeat, and waits the timeout out) and how long a
//! receive waits for messages that are already queued (SQS long-polls).
//!
//! Test code shipped in the library so adapters in other crates can run it; a failed check
//! panics with a message naming what the port promised.

use std::future::Future;
use std::time::Duration;

use serde_json::json;

use super::{Delivery, MessageSource, Queue, QueueError, QueueMessage, MARKET_QUEUE, MAX_SEND_BATCH};
use crate::domain::MarketId;
use crate::events::StreamId;

/// Receives without an ack after which a message must be a dead letter; harnesses configure
/// their queues with it.
pub const MAX_RECEIVES: u32 = 3;

/// How a suite run gets queues, and where the adapter's timing differs.
pub trait QueueHarness {
    type Q: Queue;

    /// A queue on fresh, empty destinations (the four standard ones), dead-lettering after
    /// `MAX_RECEIVES` receives.
    fn fresh(&self) -> impl Future<Output = Self::Q>;

    /// A second node on the same destinations as `node`, as another process would have.
    fn other_node(&self, node: &Self::Q) -> impl Future<Output = Self::Q>;

    /// `node` dies holding its unacked deliveries; returns once their visibility timeout
    /// passed, so another node can receive them.
    fn crash(&self, node: Self::Q) -> impl Future<Output = ()>;

    /// How long a receive may wait for messages that are already queued.
    fn wait(&self) -> Duration;
}

/// Runs every check, each on fresh destinations.
pub async fn run_all<H: QueueHarness>(h: &H) {
    each_group_keeps_send_order(h).await;
    groups_do_not_wait_for_each_other(h).await;
    acked_messages_are_gone(h).await;
    a_nack_redelivers_before_the_rest_of_the_group(h).await;
    unacked_messages_come_back_after_a_crash(h).await;
    a_repeated_dedup_id_is_delivered_once(h).await;
    batches_larger_than_ten_keep_their_order(h).await;
    a_message_received_too_often_becomes_a_dead_letter(h).await;
}

fn source(n: u64) -> MessageSource {
    match MarketId::new("BTC-USDT") {
        Ok(id) => MessageSource { stream: StreamId::market(id), version: n, index: 0 },
        Err(e) => panic!("conformance: bad market id: {e}"),
    }
}

/// Message `n` of `group`; its dedup id is unique per (group, n).
pub fn message(group: &str, n: u64) -> QueueMessage {
    QueueMessage {
        group: group.into(),
        dedup_id: format!("{group}/{n}"),
        body: json!({ "group": group, "n": n }),
        source: source(n),
    }
}

fn label(d: &Delivery) -> String {
    format!("{}/{}", d.message.group, d.message.body["n"])
}

fn labels(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(label).collect()
}

async fn ok<T>(what: &str, r: impl Future<Output = Result<T, QueueError>>) -> T {
    match r.await {
        Ok(v) => v,
        Err(e) => panic!("conformance: {what} failed: {e}"),
    }
}

async fn send<Q: Queue>(q: &Q, messages: Vec<QueueMessage>) {
    ok("send_batch", q.send_batch(MARKET_QUEUE, messages)).await;
}

async fn receive<Q: Queue>(q: &Q, max: usize, wait: Duration) -> Vec<Delivery> {
    ok("receive", q.receive(MARKET_QUEUE, max, wait)).await
}

/// Receives and acks until `n` messages came or a receive comes back empty.
async fn drain<H: QueueHarness>(h: &H, q: &H::Q, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = receive(q, n - got.len(), h.wait()).await;
        if batch.is_empty() {
            break;
        }
        for d in &batch {
            ok("ack", q.ack(MARKET_QUEUE, &d.receipt)).await;
        }
        got.extend(labels(&batch));
    }
    got
}

fn of_group(labels: &[String], group: &str) -> Vec<String> {
    labels.iter().filter(|l| l.starts_with(&format!("{group}/"))).cloned().collect()
}

pub async fn each_group_keeps_send_order<H: QueueHarness>(h: &H) {
    // Given two groups sent interleaved
    let q = h.fresh().await;
    send(&q, (1..=3).flat_map(|n| [message("a", n), message("b", n)]).collect()).await;
    // When everything is received and acked
    let got = drain(h, &q, 6).await;
    // Then each group came in send order, and nothing was lost or repeated
    assert_eq!(got.len(), 6, "conformance: all six messages delivered once: {got:?}");
    assert_eq!(of_group(&got, "a"), ["a/1", "a/2", "a/3"], "conformance: group a in send order");
    assert_eq!(of_group(&got, "b"), ["b/1", "b/2", "b/3"], "conformance: group b in send order");
}

pub async fn groups_do_not_wait_for_each_other<H: QueueHarness>(h: &H) {
    // Given a group whose head is in flight
    let q = h.fresh().await;
    send(&q, vec![message("a", 1), message("a", 2), message("b", 1)]).await;
    let first = receive(&q, 1, h.wait()).await;
    assert_eq!(labels(&first), ["a/1"], "conformance: the oldest message comes first");
    // When another receive asks for more
    let second = drain(h, &q, 1).await;
    // Then the other group is delivered and the busy group's next message is not
    assert_eq!(second, ["b/1"], "conformance: a group in flight blocks only itself");
    assert!(receive(&q, 10, Duration::ZERO).await.is_empty(), "conformance: a/2 waits for a/1");
    ok("ack", q.ack(MARKET_QUEUE, &first[0].receipt)).await;
    assert_eq!(drain(h, &q, 1).await, ["a/2"], "conformance: the ack releases the group");
}

pub async fn acked_messages_are_gone<H: QueueHarness>(h: &H) {
    // Given a message received and acked by a node that then dies
    let q = h.fresh().await;
    send(&q, vec![message("a", 1)]).await;
    let other = h.other_node(&q).await;
    let got = ok("receive", other.receive(MARKET_QUEUE, 10, h.wait())).await;
    assert_eq!(labels(&got), ["a/1"]);
    ok("ack", other.ack(MARKET_QUEUE, &got[0].receipt)).await;
    h.crash(other).await;
    // Then it is never delivered again, even past its visibility timeout
    assert!(receive(&q, 10, h.wait()).await.is_empty(), "conformance: an acked message is deleted");
}

pub async fn a_nack_redelivers_before_the_rest_of_the_group<H: QueueHarness>(h: &H) {
    // Given a group's head received and nacked
    let q = h.fresh().await;
    send(&q, vec![message("a", 1), message("a", 2)]).await;
    let first = receive(&q, 1, h.wait()).await;
    assert_eq!(labels(&first), ["a/1"]);
    ok("nack", q.nack(MARKET_QUEUE, &first[0].receipt, Duration::ZERO)).await;
    // When the group is received again
    let again = receive(&q, 1, h.wait()).await;
    // Then the nacked message comes first, counted as a second delivery
    assert_eq!(labels(&again), ["a/1"], "conformance: a nacked message keeps its place");
    assert_eq!(again[0].receive_count, 2, "conformance: redelivery is counted");
    // And the first delivery's receipt no longer acks it
    let stale = q.ack(MARKET_QUEUE, &first[0].receipt).await;
    assert!(matches!(stale, Err(QueueError::ReceiptExpired { .. })), "conformance: stale receipt: {stale:?}");
    ok("ack", q.ack(MARKET_QUEUE, &again[0].receipt)).await;
    assert_eq!(drain(h, &q, 2).await, ["a/2"]);
}

pub async fn unacked_messages_come_back_after_a_crash<H: QueueHarness>(h: &H) {
    // Given a node that received a message and died before acking it
    let q = h.fresh().await;
    send(&q, vec![message("a", 1), message("a", 2)]).await;
    let node = h.other_node(&q).await;
    let taken = ok("receive", node.receive(MARKET_QUEUE, 1, h.wait())).await;
    assert_eq!(labels(&taken), ["a/1"]);
    h.crash(node).await;
    // When a surviving node receives
    let again = receive(&q, 1, h.wait()).await;
    // Then the message is delivered again, in its place, with its count
    assert_eq!(labels(&again), ["a/1"], "conformance: an unacked message is redelivered after its timeout");
    assert_eq!(again[0].receive_count, 2);
    ok("ack", q.ack(MARKET_QUEUE, &again[0].receipt)).await;
    assert_eq!(drain(h, &q, 2).await, ["a/2"]);
}

pub async fn a_repeated_dedup_id_is_delivered_once<H: QueueHarness>(h: &H) {
    // Given a message sent twice, and a batch carrying one dedup id twice
    let q = h.fresh().await;
    send(&q, vec![message("a", 1)]).await;
    let repeat = ok("send_batch", q.send_batch(MARKET_QUEUE, vec![message("a", 1)])).await;
    assert_eq!(repeat.enqueued + repeat.deduplicated, 1, "conformance: a repeat is accepted");
    let twice = ok("send_batch", q.send_batch(MARKET_QUEUE, vec![message("b", 1), message("b", 1)])).await;
    assert_eq!((twice.enqueued, twice.deduplicated), (1, 1), "conformance: a repeat within a batch is dropped");
    // Then each is delivered once
    let got = drain(h, &q, 4).await;
    assert_eq!(of_group(&got, "a"), ["a/1"], "conformance: the repeated send was dropped");
    assert_eq!(of_group(&got, "b"), ["b/1"]);
    assert_eq!(got.len(), 2, "{got:?}");
}

pub async fn batches_larger_than_ten_keep_their_order<H: QueueHarness>(h: &H) {
    // Given one batch of 25 messages of one group (SQS takes ten per call)
    let q = h.fresh().await;
    send(&q, (1..=25).map(|n| message("a", n)).collect()).await;
    // And a batch over the port's limit
    let too_many: Vec<_> = (1..=MAX_SEND_BATCH as u64 + 1).map(|n| message("z", n)).collect();
    let refused = q.send_batch(MARKET_QUEUE, too_many).await;
    assert!(matches!(refused, Err(QueueError::BatchTooLarge { .. })), "conformance: {refused:?}");
    // Then the 25 arrive whole and in order, and nothing of the refused batch
    let got = drain(h, &q, 26).await;
    let want: Vec<String> = (1..=25).map(|n| format!("a/{n}")).collect();
    assert_eq!(got, want, "conformance: a split batch keeps send order");
}

pub async fn a_message_received_too_often_becomes_a_dead_letter<H: QueueHarness>(h: &H) {
    // Given a group's head that fails MAX_RECEIVES times
    let q = h.fresh().await;
    send(&q, vec![message("a", 1), message("a", 2)]).await;
    for attempt in 1..=MAX_RECEIVES {
        let got = receive(&q, 1, h.wait()).await;
        assert_eq!(labels(&got), ["a/1"], "conformance: attempt {attempt}");
        assert_eq!(got[0].receive_count, attempt);
        ok("nack", q.nack(MARKET_QUEUE, &got[0].receipt, Duration::ZERO)).await;
    }
    // When the group is received again
    let next = drain(h, &q, 1).await;
    // Then the failing message is out of the way and is a dead letter, read without consuming
    assert_eq!(next, ["a/2"], "conformance: a dead letter no longer blocks its group");
    for read in 1..=2 {
        let dead = ok("dead_letters", q.dead_letters(MARKET_QUEUE)).await;
        assert_eq!(dead.len(), 1, "conformance: read {read} of the dead letters");
        assert_eq!(dead[0].message, message("a", 1));
        assert_eq!(dead[0].receive_count, MAX_RECEIVES);
    }
    let unknown = q.dead_letters("nowhere").await;
    assert!(matches!(unknown, Err(QueueError::UnknownDestination(_))), "conformance: {unknown:?}");
}
