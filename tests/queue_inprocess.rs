//! The queue port's in-process adapter (the queue conformance suite, then what only it has:
//! its clock, stats and bounds) and the outbox relay end to end on the SQLite store.
//!
//! Test code unwraps: a failure should fail the test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hob::domain::MarketId;
use hob::events::{
    AppendRequest, AppendResult, EventEnvelope, EventStore, ManualClock, NewEvent, OutboxEntry, OutboxRecord, Snapshot,
    StoreError, StreamId,
};
use hob::queue::conformance::{self, QueueHarness, MAX_RECEIVES};
use hob::queue::{
    consume_once, market_group, ConsumeOptions, DeadLetter, Delivery, DestinationConfig, InProcessQueue, MessageSource,
    OutboxRelay, Queue, QueueError, QueueMessage, Receipt, SendSummary, MARKET_QUEUE, SETTLEMENT_QUEUE,
};
use hob::store::SqliteEventStore;
use serde_json::json;
use uuid::Uuid;

const NO_WAIT: Duration = Duration::ZERO;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn market(name: &str) -> StreamId {
    StreamId::market(MarketId::new(name).unwrap())
}

fn config() -> DestinationConfig {
    DestinationConfig {
        capacity: 100,
        visibility_timeout: Duration::from_secs(30),
        dedup_window: Duration::from_secs(300),
        max_receives: 3,
        max_dedup_ids: 10_000,
    }
}

fn queue_with(config: DestinationConfig) -> (Arc<ManualClock>, InProcessQueue) {
    let clock = Arc::new(ManualClock::new(t0()));
    (clock.clone(), InProcessQueue::new(clock, config))
}

/// Message `n` of `group`; its dedup id is unique per (group, n).
fn msg(group: &str, n: u64) -> QueueMessage {
    QueueMessage {
        group: group.into(),
        dedup_id: format!("{group}/{n}"),
        body: json!({ "group": group, "n": n }),
        source: MessageSource { stream: market("BTC-USDT"), version: n, index: 0 },
    }
}

fn labels(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| format!("{}/{}", d.message.group, d.message.body["n"])).collect()
}

async fn send(q: &InProcessQueue, messages: Vec<QueueMessage>) {
    q.send_batch(MARKET_QUEUE, messages).await.unwrap();
}

async fn receive(q: &InProcessQueue, max: usize) -> Vec<Delivery> {
    q.receive(MARKET_QUEUE, max, NO_WAIT).await.unwrap()
}

async fn ack_all(q: &InProcessQueue, deliveries: &[Delivery]) {
    for d in deliveries {
        q.ack(MARKET_QUEUE, &d.receipt).await.unwrap();
    }
}

// --- the port's conformance suite ---

/// A node of the in-process queue: every node of one queue shares its state and its clock, as
/// tasks of one process do.
#[derive(Clone)]
struct Node {
    clock: Arc<ManualClock>,
    queue: Arc<InProcessQueue>,
}

impl Queue for Node {
    async fn send_batch(&self, destination: &str, messages: Vec<QueueMessage>) -> Result<SendSummary, QueueError> {
        self.queue.send_batch(destination, messages).await
    }
    async fn receive(&self, destination: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.queue.receive(destination, max, wait).await
    }
    async fn ack(&self, destination: &str, receipt: &Receipt) -> Result<(), QueueError> {
        self.queue.ack(destination, receipt).await
    }
    async fn nack(&self, destination: &str, receipt: &Receipt, retry_after: Duration) -> Result<(), QueueError> {
        self.queue.nack(destination, receipt, retry_after).await
    }
    async fn dead_letters(&self, destination: &str) -> Result<Vec<DeadLetter>, QueueError> {
        self.queue.dead_letters(destination).await
    }
}

struct InProcess;

impl QueueHarness for InProcess {
    type Q = Node;

    async fn fresh(&self) -> Node {
        let (clock, queue) = queue_with(DestinationConfig { max_receives: MAX_RECEIVES, ..config() });
        Node { clock, queue: Arc::new(queue) }
    }

    async fn other_node(&self, node: &Node) -> Node {
        node.clone()
    }

    /// The queue outlives a task that dies; its deliveries come back when the clock passes
    /// their visibility timeout.
    async fn crash(&self, node: Node) {
        node.clock.advance(TimeDelta::from_std(config().visibility_timeout).unwrap() + TimeDelta::seconds(1));
    }

    /// Everything queued is deliverable at once.
    fn wait(&self) -> Duration {
        NO_WAIT
    }
}

#[tokio::test]
async fn the_in_process_queue_passes_the_queue_conformance_suite() {
    conformance::run_all(&InProcess).await;
}

// --- what only the in-process queue has ---

#[tokio::test]
async fn each_group_keeps_send_order_while_groups_interleave() {
    let (_, q) = queue_with(config());
    for n in 1..=3 {
        send(&q, vec![msg("a", n), msg("b", n)]).await;
    }
    send(&q, vec![msg("c", 1)]).await;

    let mut seen = Vec::new();
    loop {
        let batch = receive(&q, 2).await;
        if batch.is_empty() {
            break;
        }
        ack_all(&q, &batch).await;
        seen.extend(labels(&batch));
    }
    for group in ["a", "b"] {
        let order: Vec<&String> = seen.iter().filter(|l| l.starts_with(group)).collect();
        assert_eq!(
            order,
            [format!("{group}/1"), format!("{group}/2"), format!("{group}/3")].iter().collect::<Vec<_>>()
        );
    }
    assert_eq!(seen.len(), 7);
    // Groups interleave: c is not starved behind all of a and b.
    let c_at = seen.iter().position(|l| l == "c/1").unwrap();
    assert!(c_at < 6, "c/1 delivered at {c_at}: {seen:?}");
    assert_eq!(q.depth(MARKET_QUEUE), 0);
}

#[tokio::test]
async fn a_message_in_flight_blocks_its_group_only() {
    let (_, q) = queue_with(config());
    send(&q, vec![msg("a", 1), msg("a", 2), msg("b", 1)]).await;

    let first = receive(&q, 1).await;
    assert_eq!(labels(&first), ["a/1"]);
    // a/2 waits behind a/1 in flight; b goes on.
    assert_eq!(labels(&receive(&q, 10).await), ["b/1"]);
    assert!(receive(&q, 10).await.is_empty());
    assert_eq!(q.depth(MARKET_QUEUE), 3);

    ack_all(&q, &first).await;
    assert_eq!(labels(&receive(&q, 10).await), ["a/2"]);
}

#[tokio::test]
async fn a_waiting_receiver_wakes_on_send_and_on_ack() {
    let (_, q) = queue_with(config());
    let q = Arc::new(q);
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.receive(MARKET_QUEUE, 10, Duration::from_secs(10)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    send(&q, vec![msg("a", 1), msg("a", 2)]).await;
    let got = tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
    assert_eq!(labels(&got), ["a/1", "a/2"]);

    send(&q, vec![msg("a", 3)]).await;
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.receive(MARKET_QUEUE, 10, Duration::from_secs(10)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    ack_all(&q, &got).await;
    let got = tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
    assert_eq!(labels(&got), ["a/3"]);
}

#[tokio::test]
async fn an_expired_visibility_timeout_redelivers_and_voids_the_old_receipt() {
    let (clock, q) = queue_with(config());
    send(&q, vec![msg("a", 1), msg("a", 2)]).await;
    let first = receive(&q, 1).await;
    assert_eq!(first[0].receive_count, 1);

    clock.advance(TimeDelta::seconds(29));
    assert!(receive(&q, 10).await.is_empty(), "still in flight");
    clock.advance(TimeDelta::seconds(1));
    let again = receive(&q, 1).await;
    assert_eq!(labels(&again), ["a/1"], "the head comes again, before a/2");
    assert_eq!(again[0].receive_count, 2);

    let stale = q.ack(MARKET_QUEUE, &first[0].receipt).await;
    assert!(matches!(stale, Err(QueueError::ReceiptExpired { .. })), "{stale:?}");
    ack_all(&q, &again).await;
    assert_eq!(labels(&receive(&q, 10).await), ["a/2"]);
}

#[tokio::test]
async fn a_nack_redelivers_after_its_delay_and_keeps_the_group_blocked_until_then() {
    let (clock, q) = queue_with(config());
    send(&q, vec![msg("a", 1), msg("a", 2)]).await;
    let first = receive(&q, 1).await;
    q.nack(MARKET_QUEUE, &first[0].receipt, Duration::from_secs(5)).await.unwrap();
    assert!(receive(&q, 10).await.is_empty());
    clock.advance(TimeDelta::seconds(5));
    let again = receive(&q, 1).await;
    assert_eq!((labels(&again), again[0].receive_count), (vec!["a/1".to_owned()], 2));
    q.nack(MARKET_QUEUE, &again[0].receipt, Duration::ZERO).await.unwrap();
    assert_eq!(receive(&q, 1).await[0].receive_count, 3);
}

#[tokio::test]
async fn a_repeated_dedup_id_is_dropped_within_the_window_only() {
    let (clock, q) = queue_with(config());
    let summary = q.send_batch(MARKET_QUEUE, vec![msg("a", 1), msg("a", 1)]).await.unwrap();
    assert_eq!((summary.enqueued, summary.deduplicated), (1, 1));
    ack_all(&q, &receive(&q, 10).await).await;

    clock.advance(TimeDelta::seconds(299));
    let summary = q.send_batch(MARKET_QUEUE, vec![msg("a", 1)]).await.unwrap();
    assert_eq!((summary.enqueued, summary.deduplicated), (0, 1), "acked but still inside the window");
    assert!(receive(&q, 10).await.is_empty());

    clock.advance(TimeDelta::seconds(1));
    let summary = q.send_batch(MARKET_QUEUE, vec![msg("a", 1)]).await.unwrap();
    assert_eq!((summary.enqueued, summary.deduplicated), (1, 0), "the window is over");
    assert_eq!(labels(&receive(&q, 10).await), ["a/1"]);
}

#[tokio::test]
async fn a_message_received_max_times_becomes_a_dead_letter_and_unblocks_its_group() {
    let (_, q) = queue_with(config());
    send(&q, vec![msg("a", 1), msg("a", 2)]).await;
    for attempt in 1..=3 {
        let d = receive(&q, 1).await;
        assert_eq!((labels(&d), d[0].receive_count), (vec!["a/1".to_owned()], attempt));
        q.nack(MARKET_QUEUE, &d[0].receipt, Duration::ZERO).await.unwrap();
    }
    assert_eq!(labels(&receive(&q, 10).await), ["a/2"]);
    let dead = q.dead_letters(MARKET_QUEUE).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].message.body["n"].as_u64(), dead[0].receive_count), (Some(1), 3));
    let stats = q.stats(MARKET_QUEUE).unwrap();
    assert_eq!((stats.depth, stats.dead_letters), (1, 1));
}

#[tokio::test]
async fn a_full_queue_refuses_the_whole_batch() {
    let (_, q) = queue_with(DestinationConfig { capacity: 3, ..config() });
    send(&q, vec![msg("a", 1), msg("b", 1)]).await;
    let refused = q.send_batch(MARKET_QUEUE, vec![msg("a", 2), msg("a", 3)]).await;
    match refused {
        Err(QueueError::Full { stored: 2, capacity: 3, incoming: 2, .. }) => {}
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(q.depth(MARKET_QUEUE), 2, "nothing of the refused batch was stored");
    // Duplicates take no space, and an ack frees it.
    q.send_batch(MARKET_QUEUE, vec![msg("a", 1), msg("a", 2)]).await.unwrap();
    ack_all(&q, &receive(&q, 1).await).await;
    q.send_batch(MARKET_QUEUE, vec![msg("a", 3)]).await.unwrap();
    assert_eq!(q.depth(MARKET_QUEUE), 3);
    assert!(matches!(q.send_batch("nowhere", vec![]).await, Err(QueueError::UnknownDestination(_))));
}

// --- the relay on the SQLite store ---

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn event(clock: &ManualClock, n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        occurred_at: hob::events::Clock::now(clock),
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        event_type: "test.Placed".into(),
        schema_version: 1,
        payload: json!({ "n": n }),
    }
}

fn to_market(name: &str, n: u64) -> OutboxRecord {
    OutboxRecord {
        destination: MARKET_QUEUE.into(),
        group: market_group(MarketId::new(name).unwrap()),
        payload: json!({ "n": n }),
    }
}

/// A store whose `mark_published` fails while `crash` is set: the relay sent, then died.
struct CrashingStore {
    inner: SqliteEventStore,
    crash: AtomicBool,
}

impl EventStore for CrashingStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.inner.append(request).await
    }
    async fn read_stream(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner.read_stream(stream, from).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn list_streams(&self) -> Result<Vec<StreamId>, StoreError> {
        self.inner.list_streams().await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn load_latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_latest_snapshot(stream).await
    }
    async fn fetch_unpublished(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.fetch_unpublished(limit).await
    }
    async fn mark_published(&self, ids: &[u64]) -> Result<(), StoreError> {
        if self.crash.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("simulated crash before mark_published".into()));
        }
        self.inner.mark_published(ids).await
    }
    async fn mark_processed(&self, consumer: &str, stream: &StreamId, version: u64) -> Result<bool, StoreError> {
        self.inner.mark_processed(consumer, stream, version).await
    }
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.acquire_lease(name, owner, ttl, now).await
    }
    async fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.renew_lease(name, owner, ttl, now).await
    }
    async fn request_lease(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.request_lease(name, by, now).await
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        self.inner.release_lease(name, owner).await
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    store: Arc<CrashingStore>,
    queue: Arc<InProcessQueue>,
    relay: OutboxRelay<CrashingStore, InProcessQueue>,
}

fn rig() -> Rig {
    let dir = temp_dir();
    let store = Arc::new(CrashingStore {
        inner: SqliteEventStore::open(dir.path().join("hob.db")).unwrap(),
        crash: AtomicBool::new(false),
    });
    let clock = Arc::new(ManualClock::new(t0()));
    let queue = Arc::new(InProcessQueue::new(clock.clone(), config()));
    let relay = OutboxRelay::new(store.clone(), queue.clone());
    Rig { _dir: dir, clock, store, queue, relay }
}

impl Rig {
    /// Appends one event to `user:{n}`-like stream `stream` with `outbox`.
    async fn append(&self, stream: &StreamId, n: u64, outbox: Vec<OutboxRecord>) {
        let expected = self.store.stream_version(stream).await.unwrap();
        let request = AppendRequest {
            stream: stream.clone(),
            expected_version: expected,
            events: vec![event(&self.clock, n)],
            outbox,
            idempotency_key: None,
        };
        self.store.append(request).await.unwrap();
    }

    /// The consumer: applies each delivery by appending to `effects` with the source's key as
    /// idempotency key, so the effect and its deduplication are one write.
    async fn consume(&self, effects: &StreamId) -> hob::queue::ConsumeReport {
        let options = ConsumeOptions { max: 100, wait: NO_WAIT, retry_after: Duration::ZERO };
        consume_once(&*self.store, &*self.queue, MARKET_QUEUE, "market-actor", options, |d: &Delivery| {
            let request = AppendRequest {
                stream: effects.clone(),
                expected_version: 0,
                events: vec![event(&self.clock, d.message.body["n"].as_u64().unwrap())],
                outbox: vec![],
                idempotency_key: Some(d.message.source.key()),
            };
            let store = self.store.clone();
            let effects = effects.clone();
            async move {
                let version = store.stream_version(&effects).await?;
                store.append(AppendRequest { expected_version: version, ..request }).await.map(|_| ())
            }
        })
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn the_relay_delivers_in_commit_order_per_group_and_only_once() {
    let r = rig();
    let (btc, eth) = (market("BTC-USDT"), market("ETH-USDT"));
    // Two writers interleave; one append carries two records, one a settlement record too.
    r.append(&btc, 1, vec![to_market("BTC-USDT", 1)]).await;
    r.append(&eth, 1, vec![to_market("ETH-USDT", 1)]).await;
    r.append(&btc, 2, vec![to_market("BTC-USDT", 2), to_market("BTC-USDT", 3)]).await;
    let mut settle = to_market("BTC-USDT", 9);
    settle.destination = SETTLEMENT_QUEUE.into();
    r.append(&eth, 2, vec![to_market("ETH-USDT", 2), settle]).await;

    assert_eq!(r.relay.pass(100).await.unwrap(), 6);
    assert_eq!(r.relay.pass(100).await.unwrap(), 0, "a second pass sends nothing");
    assert_eq!(r.queue.depth(MARKET_QUEUE), 5);
    assert_eq!(r.queue.depth(SETTLEMENT_QUEUE), 1);

    let got = r.queue.receive(MARKET_QUEUE, 100, NO_WAIT).await.unwrap();
    let per_group = |g: &str| -> Vec<(u64, u64, u32)> {
        got.iter()
            .filter(|d| d.message.group == g)
            .map(|d| (d.message.body["n"].as_u64().unwrap(), d.message.source.version, d.message.source.index))
            .collect()
    };
    assert_eq!(per_group("market:BTC-USDT"), [(1, 1, 0), (2, 2, 0), (3, 2, 1)]);
    assert_eq!(per_group("market:ETH-USDT"), [(1, 1, 0), (2, 2, 0)]);
    assert_eq!(got[1].message.dedup_id, got[1].message.source.key());
    let settled = r.queue.receive(SETTLEMENT_QUEUE, 10, NO_WAIT).await.unwrap();
    assert_eq!(settled[0].message.source, MessageSource { stream: eth, version: 2, index: 1 });
}

#[tokio::test]
async fn the_relay_never_splits_an_append_across_passes() {
    let r = rig();
    let btc = market("BTC-USDT");
    r.append(&btc, 1, vec![to_market("BTC-USDT", 1)]).await;
    r.append(&btc, 2, (2..=4).map(|n| to_market("BTC-USDT", n)).collect()).await;
    r.append(&btc, 3, vec![to_market("BTC-USDT", 5)]).await;

    assert_eq!(r.relay.pass(2).await.unwrap(), 1, "the page ends inside the second append");
    // An append bigger than the page is fetched whole (with what follows it, up to the bound).
    assert_eq!(r.relay.pass(2).await.unwrap(), 4);
    assert_eq!(r.relay.pass(2).await.unwrap(), 0);
    let got = r.queue.receive(MARKET_QUEUE, 100, NO_WAIT).await.unwrap();
    let indexes: Vec<(u64, u32)> = got.iter().map(|d| (d.message.source.version, d.message.source.index)).collect();
    assert_eq!(indexes, [(1, 0), (2, 0), (2, 1), (2, 2), (3, 0)]);
}

#[tokio::test]
async fn a_crash_between_send_and_mark_resends_and_the_consumer_applies_once() {
    let r = rig();
    let btc = market("BTC-USDT");
    let effects = market("EFFECTS");
    r.append(&btc, 1, vec![to_market("BTC-USDT", 1)]).await;
    r.append(&btc, 2, vec![to_market("BTC-USDT", 2)]).await;

    r.store.crash.store(true, Ordering::SeqCst);
    assert!(r.relay.pass(100).await.is_err(), "sent, then died before marking");
    r.store.crash.store(false, Ordering::SeqCst);

    // Within the dedup window the queue absorbs the re-send.
    assert_eq!(r.relay.pass(100).await.unwrap(), 2);
    assert_eq!(r.queue.depth(MARKET_QUEUE), 2);
    let report = r.consume(&effects).await;
    assert_eq!((report.handled, report.duplicates), (2, 0));

    // Past the window the queue delivers the re-send; the consumer's idempotency absorbs it.
    r.append(&btc, 3, vec![to_market("BTC-USDT", 3)]).await;
    r.store.crash.store(true, Ordering::SeqCst);
    assert!(r.relay.pass(100).await.is_err());
    r.store.crash.store(false, Ordering::SeqCst);
    r.consume(&effects).await;
    r.clock.advance(TimeDelta::seconds(301));
    assert_eq!(r.relay.pass(100).await.unwrap(), 1);
    let report = r.consume(&effects).await;
    assert_eq!((report.received, report.handled, report.duplicates), (1, 1, 1));

    let applied: Vec<u64> =
        r.store.read_stream(&effects, 1).await.unwrap().iter().map(|e| e.payload["n"].as_u64().unwrap()).collect();
    assert_eq!(applied, [1, 2, 3], "each message took effect exactly once");
    assert_eq!(r.queue.depth(MARKET_QUEUE), 0);
}

#[tokio::test]
async fn a_failing_handler_nacks_and_holds_back_the_rest_of_its_group() {
    let (_, q) = queue_with(config());
    let dir = temp_dir();
    let store = SqliteEventStore::open(dir.path().join("hob.db")).unwrap();
    send(&q, vec![msg("a", 1), msg("a", 2), msg("b", 1)]).await;
    let options = ConsumeOptions { max: 10, wait: NO_WAIT, retry_after: Duration::ZERO };
    let report = consume_once(&store, &q, MARKET_QUEUE, "c", options, |d: &Delivery| {
        let fail = d.message.dedup_id == "a/1";
        async move {
            if fail {
                Err("boom")
            } else {
                Ok(())
            }
        }
    })
    .await
    .unwrap();
    assert_eq!((report.received, report.handled, report.failed, report.deferred), (3, 1, 1, 1));
    let again = receive(&q, 10).await;
    assert_eq!(labels(&again), ["a/1", "a/2"]);
    assert_eq!(again[0].receive_count, 2);
}

#[tokio::test]
async fn the_relay_runs_on_wake_and_stops_on_shutdown() {
    let r = rig();
    let btc = market("BTC-USDT");
    let wake = Arc::new(tokio::sync::Notify::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let queue = r.queue.clone();
    let relay = r.relay;
    let task = tokio::spawn(relay.run(wake.clone(), Duration::from_secs(3600), async move {
        let _ = stopped.await;
    }));
    r.store
        .append(AppendRequest {
            stream: btc.clone(),
            expected_version: 0,
            events: vec![event(&r.clock, 1)],
            outbox: vec![to_market("BTC-USDT", 1)],
            idempotency_key: None,
        })
        .await
        .unwrap();
    wake.notify_one();
    let got = queue.receive(MARKET_QUEUE, 10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
}
