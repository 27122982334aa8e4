//! The SQS FIFO adapter against moto (`moto_server`, installed into `.tools/venv` by
//! `make tools`), a real SQS wire-protocol server: the queue conformance suite, the
//! visibility heartbeat, queue creation, and a consumer crash between its effect and its ack
//! with the real relay, consumer and SQLite store.
//!
//! One moto serves every test in this file; each test uses its own queue-name prefix, so
//! tests run in parallel without sharing queues.
//!
//! Test code unwraps: a failure should fail the test.

#[path = "support/servers.rs"]
mod servers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hob::domain::MarketId;
use hob::events::{AppendRequest, EventStore, NewEvent, OutboxRecord, StreamId, SystemClock};
use hob::queue::conformance::{self, message, QueueHarness, MAX_RECEIVES};
use hob::queue::{
    consume_once, market_group, ConsumeOptions, Delivery, OutboxRelay, Queue, QueueError, SqsConfig, SqsCredentials,
    SqsQueue, SqsQueueNames, MARKET_QUEUE,
};
use hob::store::SqliteEventStore;
use serde_json::json;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// One moto for the whole file
// ---------------------------------------------------------------------------------------------

fn moto() -> &'static servers::Spawned {
    static MOTO: OnceLock<servers::Spawned> = OnceLock::new();
    MOTO.get_or_init(servers::moto)
}

fn endpoint() -> String {
    format!("http://127.0.0.1:{}", moto().port)
}

// ---------------------------------------------------------------------------------------------
// Configuration and the harness
// ---------------------------------------------------------------------------------------------

const VISIBILITY: Duration = Duration::from_secs(2);

/// A configuration on moto with queue names no other test uses.
fn config() -> SqsConfig {
    static N: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!("t{}-{}-", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    SqsConfig {
        endpoint: Some(endpoint()),
        region: "us-east-1".into(),
        // moto accepts any keys; fixed ones keep the test off the machine's AWS profile.
        credentials: Some(SqsCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        }),
        queue_names: SqsQueueNames::with_prefix(&prefix),
        create_queues: true,
        max_receive_count: MAX_RECEIVES,
        visibility_timeout: VISIBILITY,
        wait_time: Duration::from_secs(1),
    }
}

/// Past a dead node's visibility timeout, with a margin for moto's clock granularity.
async fn visibility_passes() {
    tokio::time::sleep(VISIBILITY + Duration::from_millis(1500)).await;
}

struct OnMoto;

impl QueueHarness for OnMoto {
    type Q = SqsQueue;

    async fn fresh(&self) -> SqsQueue {
        SqsQueue::connect(config()).await.unwrap()
    }

    /// A second connection with the same configuration: creating the queues again is a no-op.
    async fn other_node(&self, node: &SqsQueue) -> SqsQueue {
        SqsQueue::connect(node.config().clone()).await.unwrap()
    }

    /// Dropping the node stops its heartbeat; SQS then redelivers after the timeout.
    async fn crash(&self, node: SqsQueue) {
        drop(node);
        visibility_passes().await;
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(1)
    }
}

// ---------------------------------------------------------------------------------------------
// The port's promises
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sqs_passes_the_queue_conformance_suite() {
    conformance::run_all(&OnMoto).await;
}

#[tokio::test]
async fn a_message_held_past_its_visibility_timeout_stays_with_its_node() {
    // Given node A holding a message longer than the visibility timeout
    let a = OnMoto.fresh().await;
    a.send_batch(MARKET_QUEUE, vec![message("g", 1)]).await.unwrap();
    let held = a.receive(MARKET_QUEUE, 1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(held.len(), 1);
    let b = OnMoto.other_node(&a).await;
    tokio::time::sleep(VISIBILITY * 3).await;
    // Then the heartbeat kept it invisible: node B gets nothing, and A's ack still works
    assert!(b.receive(MARKET_QUEUE, 10, Duration::from_secs(1)).await.unwrap().is_empty());
    assert_eq!(a.held(), 1);
    a.ack(MARKET_QUEUE, &held[0].receipt).await.unwrap();
    assert_eq!(a.held(), 0);
    visibility_passes().await;
    assert!(b.receive(MARKET_QUEUE, 10, Duration::from_secs(1)).await.unwrap().is_empty(), "acked means deleted");
}

#[tokio::test]
async fn connect_creates_fifo_queues_with_dead_letter_queues_or_finds_them() {
    // Given a configuration whose queues do not exist
    let missing = SqsConfig { create_queues: false, ..config() };
    // Then connecting without creating them names the missing queue
    match SqsQueue::connect(missing.clone()).await {
        Err(QueueError::Backend(why)) => assert!(why.contains(&missing.queue_names.market), "{why}"),
        Err(other) => panic!("expected a backend error, got {other:?}"),
        Ok(_) => panic!("connected to queues that do not exist"),
    }
    // When one node creates them, another finds them without creating
    let creator = SqsQueue::connect(SqsConfig { create_queues: true, ..missing.clone() }).await.unwrap();
    let finder = SqsQueue::connect(missing).await.unwrap();
    assert_eq!(finder.queue_url(MARKET_QUEUE).unwrap(), creator.queue_url(MARKET_QUEUE).unwrap());
    assert!(creator.queue_url(MARKET_QUEUE).unwrap().ends_with("market.fifo"));
    assert!(finder.durable(), "an SQS queue outlives the process");
}

#[tokio::test]
async fn bad_configuration_and_messages_are_refused_before_reaching_sqs() {
    let refused = SqsQueue::connect(SqsConfig { max_receive_count: 0, ..config() }).await;
    assert!(matches!(refused, Err(QueueError::InvalidConfig(_))));
    // Given a queue and a batch whose third message SQS would refuse (a space in its group)
    let q = OnMoto.fresh().await;
    let mut batch = vec![message("g", 1), message("g", 2), message("g", 3)];
    batch[2].group = "bad group".into();
    // Then the whole batch is refused and nothing was sent
    let sent = q.send_batch(MARKET_QUEUE, batch).await;
    assert!(matches!(sent, Err(QueueError::InvalidMessage { .. })), "{sent:?}");
    assert!(q.receive(MARKET_QUEUE, 10, Duration::from_secs(1)).await.unwrap().is_empty());
    assert!(matches!(q.send_batch("nowhere", vec![]).await, Err(QueueError::UnknownDestination(_))));
}

// ---------------------------------------------------------------------------------------------
// A consumer crash with the real relay, consumer and store
// ---------------------------------------------------------------------------------------------

fn market(name: &str) -> StreamId {
    StreamId::market(MarketId::new(name).unwrap())
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        occurred_at: hob::events::Clock::now(&SystemClock),
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        event_type: "test.Placed".into(),
        schema_version: 1,
        payload: json!({ "n": n }),
    }
}

/// The consumer's effect: one event in `effects`, appended with the message's source key as
/// idempotency key, so applying it and remembering that it was applied are one write.
async fn apply(store: &SqliteEventStore, effects: &StreamId, d: &Delivery) -> Result<(), hob::events::StoreError> {
    let version = store.stream_version(effects).await?;
    let request = AppendRequest {
        stream: effects.clone(),
        expected_version: version,
        events: vec![event(d.message.body["n"].as_u64().unwrap_or(0))],
        outbox: vec![],
        idempotency_key: Some(d.message.source.key()),
    };
    store.append(request).await.map(|_| ())
}

#[tokio::test]
async fn a_consumer_that_dies_before_its_ack_applies_the_message_once_after_redelivery() {
    // Given an append with two outbox records for one market, relayed to SQS
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Arc::new(SqliteEventStore::open(dir.path().join("hob.db")).unwrap());
    let (btc, effects) = (market("BTC-USDT"), market("EFFECTS"));
    let outbox = (1..=2)
        .map(|n| OutboxRecord {
            destination: MARKET_QUEUE.into(),
            group: market_group(MarketId::new("BTC-USDT").unwrap()),
            payload: json!({ "n": n }),
        })
        .collect();
    let request =
        AppendRequest { stream: btc, expected_version: 0, events: vec![event(0)], outbox, idempotency_key: None };
    store.append(request).await.unwrap();
    let survivor = Arc::new(OnMoto.fresh().await);
    let relay = OutboxRelay::new(store.clone(), survivor.clone());
    assert_eq!(relay.pass(100).await.unwrap(), 2);
    assert!(store.fetch_unpublished(10).await.unwrap().is_empty(), "a durable queue's records are published on send");

    // When node B's consumer applies the first message and dies before acking it
    let doomed = OnMoto.other_node(&survivor).await;
    let (applied_tx, applied_rx) = tokio::sync::oneshot::channel::<()>();
    let crashing = {
        let (store, effects) = (store.clone(), effects.clone());
        tokio::spawn(async move {
            let mut applied_tx = Some(applied_tx);
            let options = ConsumeOptions { max: 1, wait: Duration::from_secs(1), retry_after: Duration::ZERO };
            consume_once(&*store, &doomed, MARKET_QUEUE, "market-actor", options, |d: &Delivery| {
                let (store, effects, d, tx) = (store.clone(), effects.clone(), d.clone(), applied_tx.take());
                async move {
                    apply(&store, &effects, &d).await?;
                    if let Some(tx) = tx {
                        let _ = tx.send(());
                    }
                    // The process dies here: the effect is durable, the ack never happens.
                    std::future::pending::<()>().await;
                    Ok::<(), hob::events::StoreError>(())
                }
            })
            .await
        })
    };
    applied_rx.await.unwrap();
    crashing.abort();
    assert!(crashing.await.unwrap_err().is_cancelled());
    visibility_passes().await;

    // Then the surviving node receives it again, in order before the second message
    let options = ConsumeOptions { max: 10, wait: Duration::from_secs(1), retry_after: Duration::ZERO };
    let mut seen = Vec::new();
    let report = consume_once(&*store, &*survivor, MARKET_QUEUE, "market-actor", options, |d: &Delivery| {
        seen.push((d.message.body["n"].as_u64().unwrap(), d.receive_count));
        let (store, effects, d) = (store.clone(), effects.clone(), d.clone());
        async move { apply(&store, &effects, &d).await }
    })
    .await
    .unwrap();
    assert_eq!(seen, [(1, 2), (2, 1)], "(n, receive_count): the first message is a redelivery");
    assert_eq!((report.handled, report.failed, report.expired_acks), (2, 0, 0));
    // And each message took effect exactly once
    let applied: Vec<u64> =
        store.read_stream(&effects, 1).await.unwrap().iter().map(|e| e.payload["n"].as_u64().unwrap()).collect();
    assert_eq!(applied, [1, 2]);
    assert!(survivor.receive(MARKET_QUEUE, 10, Duration::from_secs(1)).await.unwrap().is_empty(), "both acked");
}
