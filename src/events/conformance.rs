//! The conformance suite of the `EventStore` port. Every adapter runs it, each check against a
//! fresh, empty store from `make`:
//!
//! ```ignore
//! hob::events::conformance::run_all(|| MyStore::open_temp()).await;
//! ```
//!
//! This is test code shipped in the library so that adapters in other crates can run it; a
//! failed check panics with a message naming what the port promised.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use uuid::Uuid;

use super::envelope::{verify_chain, NewEvent, StreamId, GENESIS_HASH};
use super::store::{AppendRequest, EventStore, OutboxRecord, Snapshot, StoreError};
use crate::domain::MarketId;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap_or_default()
}

fn stream(name: &str) -> StreamId {
    match MarketId::new(name) {
        Ok(id) => StreamId::market(id),
        Err(e) => panic!("conformance: bad market name {name}: {e}"),
    }
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        occurred_at: t0() + TimeDelta::milliseconds(n as i64),
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        event_type: "test.Counted".into(),
        schema_version: 1,
        payload: json!({"n": n, "nested": {"z": 1, "a": [n]}}),
    }
}

fn outbox(tag: &str) -> OutboxRecord {
    OutboxRecord { destination: "market".into(), group: "market:BTC-USDT".into(), payload: json!({ "tag": tag }) }
}

fn request(
    s: &StreamId,
    expected: u64,
    events: Vec<NewEvent>,
    out: Vec<OutboxRecord>,
    key: Option<&str>,
) -> AppendRequest {
    AppendRequest {
        stream: s.clone(),
        expected_version: expected,
        events,
        outbox: out,
        idempotency_key: key.map(str::to_owned),
    }
}

async fn ok<T>(what: &str, r: impl std::future::Future<Output = Result<T, StoreError>>) -> T {
    match r.await {
        Ok(v) => v,
        Err(e) => panic!("conformance: {what} failed: {e}"),
    }
}

/// Runs every check, each on a fresh store.
pub async fn run_all<S: EventStore>(make: impl Fn() -> S) {
    appends_are_ordered_and_hash_chained(&make()).await;
    version_conflicts_write_nothing(&make()).await;
    duplicate_idempotency_keys_return_the_original(&make()).await;
    failed_appends_are_atomic(&make()).await;
    invalid_requests_are_refused(&make()).await;
    snapshots_keep_the_latest(&make()).await;
    outbox_is_delivered_in_commit_order(&make()).await;
    processed_events_insert_once(&make()).await;
    leases_expire_and_pass_on(&make()).await;
    a_lease_passes_to_the_node_that_asks_at_its_holders_next_renewal(&make()).await;
    streams_read_in_pages(&make()).await;
}

pub async fn streams_read_in_pages<S: EventStore>(store: &S) {
    let s = stream("BTC-USDT");
    ok("append", store.append(request(&s, 0, (1..=5).map(event).collect(), vec![], None))).await;
    let all = ok("read all", store.read_stream(&s, 1)).await;
    assert_eq!(ok("page 1", store.read_stream_page(&s, 1, 2)).await, all[..2].to_vec());
    assert_eq!(ok("page 2", store.read_stream_page(&s, 3, 2)).await, all[2..4].to_vec());
    assert_eq!(ok("last page", store.read_stream_page(&s, 5, 2)).await, all[4..].to_vec());
    assert!(ok("past the end", store.read_stream_page(&s, 6, 2)).await.is_empty());
    // The replay path reads the same events: positions, types and payloads.
    ok("append more", store.append(request(&s, 5, (6..=7).map(event).collect(), vec![], None))).await;
    let all = ok("read all again", store.read_stream(&s, 1)).await;
    let raw = ok("raw", store.read_stream_raw(&s, 2, 4)).await;
    let expected: Vec<_> = all[1..5].iter().map(|e| (e.version, e.event_type.clone(), e.payload.clone())).collect();
    let got: Vec<_> = raw.iter().map(|e| (e.version, e.event_type.clone(), e.value().unwrap_or_default())).collect();
    assert_eq!(got, expected);
    assert_eq!(ok("raw tail", store.read_stream_raw(&s, 7, 10)).await.len(), 1);
    // The auditor's path reads the same events with every hashed field: each hash recomputes
    // from the sealed fields, and equals the envelope's.
    let sealed = ok("sealed", store.read_stream_sealed(&s, 2, 4)).await;
    assert_eq!(sealed.len(), 4);
    for (e, env) in sealed.iter().zip(&all[1..5]) {
        assert_eq!((e.version, e.hash, e.prev_hash), (env.version, env.hash, env.prev_hash));
        assert_eq!(e.compute_hash(&s), e.hash, "v{}", e.version);
        assert_eq!(e.payload, super::envelope::canonical_json(&env.payload));
    }
}

pub async fn appends_are_ordered_and_hash_chained<S: EventStore>(store: &S) {
    let s = stream("BTC-USDT");
    let other = stream("ETH-USDT");
    assert_eq!(ok("stream_version", store.stream_version(&s)).await, 0);
    assert!(ok("read empty", store.read_stream(&s, 1)).await.is_empty());
    let first: Vec<NewEvent> = (1..=3).map(event).collect();
    let r1 = ok("append 1", store.append(request(&s, 0, first.clone(), vec![], None))).await;
    assert_eq!((r1.first_version, r1.last_version, r1.deduplicated), (1, 3, false));
    ok("append other", store.append(request(&other, 0, vec![event(9)], vec![], None))).await;
    let r2 = ok("append 2", store.append(request(&s, 3, (4..=5).map(event).collect(), vec![], Some("k2")))).await;
    assert_eq!((r2.first_version, r2.last_version), (4, 5));

    let all = ok("read", store.read_stream(&s, 1)).await;
    assert_eq!(all.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert_eq!(all[0].prev_hash, GENESIS_HASH);
    assert_eq!(all[2].hash, r1.last_hash);
    assert_eq!(all[4].hash, r2.last_hash);
    if let Err(e) = verify_chain(&all) {
        panic!("conformance: stored chain does not verify: {e}");
    }
    for (stored, given) in all.iter().zip(&first) {
        assert_eq!(stored.event_id, given.event_id);
        assert_eq!(stored.occurred_at, given.occurred_at);
        assert_eq!(stored.correlation_id, given.correlation_id);
        assert_eq!(stored.causation_id, given.causation_id);
        assert_eq!(stored.event_type, given.event_type);
        assert_eq!(stored.schema_version, given.schema_version);
        assert_eq!(stored.payload, given.payload);
        assert_eq!(stored.idempotency_key, None);
    }
    assert_eq!(all[3].idempotency_key.as_deref(), Some("k2"));
    let tail = ok("read tail", store.read_stream(&s, 4)).await;
    assert_eq!(tail, all[3..].to_vec());
    assert!(ok("read past end", store.read_stream(&s, 6)).await.is_empty());
    assert_eq!(ok("stream_version", store.stream_version(&s)).await, 5);
    assert_eq!(ok("list", store.list_streams()).await, vec![s, other]);
}

pub async fn version_conflicts_write_nothing<S: EventStore>(store: &S) {
    let s = stream("BTC-USDT");
    ok("append", store.append(request(&s, 0, vec![event(1), event(2)], vec![], None))).await;
    for expected in [0, 1, 3] {
        let r = store.append(request(&s, expected, vec![event(3)], vec![outbox("x")], Some("kc"))).await;
        assert_eq!(r, Err(StoreError::VersionConflict { stream: s.clone(), expected, actual: 2 }));
    }
    assert_eq!(ok("read", store.read_stream(&s, 1)).await.len(), 2);
    assert!(ok("outbox", store.fetch_unpublished(10)).await.is_empty());
    // The failed appends did not consume the key.
    let r = ok("retry", store.append(request(&s, 2, vec![event(3)], vec![], Some("kc")))).await;
    assert_eq!((r.last_version, r.deduplicated), (3, false));
}

pub async fn duplicate_idempotency_keys_return_the_original<S: EventStore>(store: &S) {
    let s = stream("BTC-USDT");
    let original = ok("append", store.append(request(&s, 0, vec![event(1)], vec![outbox("a")], Some("k")))).await;
    let again = ok("dup", store.append(request(&s, 0, vec![event(2)], vec![outbox("b")], Some("k")))).await;
    assert!(again.deduplicated);
    assert_eq!((again.stream.clone(), again.first_version, again.last_version), (s.clone(), 1, 1));
    assert_eq!(again.last_hash, original.last_hash);
    // Even with the stream moved on, the key still answers with the original result.
    ok("next", store.append(request(&s, 1, vec![event(3)], vec![], None))).await;
    let late = ok("late dup", store.append(request(&s, 1, vec![event(4)], vec![], Some("k")))).await;
    assert_eq!((late.first_version, late.last_version, late.deduplicated), (1, 1, true));
    let events = ok("read", store.read_stream(&s, 1)).await;
    assert_eq!(events.iter().map(|e| e.payload["n"].as_u64()).collect::<Vec<_>>(), vec![Some(1), Some(3)]);
    let out = ok("outbox", store.fetch_unpublished(10)).await;
    assert_eq!(out.len(), 1);
    let other = stream("ETH-USDT");
    let r = store.append(request(&other, 0, vec![event(5)], vec![], Some("k"))).await;
    assert_eq!(r, Err(StoreError::IdempotencyKeyReused { key: "k".into(), original_stream: s, stream: other.clone() }));
    assert!(ok("read other", store.read_stream(&other, 1)).await.is_empty());
}

pub async fn failed_appends_are_atomic<S: EventStore>(store: &S) {
    let a = stream("BTC-USDT");
    let b = stream("ETH-USDT");
    let taken = event(1);
    ok("append a", store.append(request(&a, 0, vec![taken.clone()], vec![outbox("a")], None))).await;
    // The second event reuses a stored id, so the append fails after its first event was
    // written: nothing of it may remain.
    let mut clash = event(3);
    clash.event_id = taken.event_id;
    let r = store.append(request(&b, 0, vec![event(2), clash], vec![outbox("b1"), outbox("b2")], Some("kb"))).await;
    assert_eq!(r, Err(StoreError::DuplicateEventId { event_id: taken.event_id }));
    assert!(ok("read b", store.read_stream(&b, 1)).await.is_empty());
    assert_eq!(ok("version b", store.stream_version(&b)).await, 0);
    assert_eq!(ok("list", store.list_streams()).await, vec![a.clone()]);
    let out = ok("outbox", store.fetch_unpublished(10)).await;
    assert_eq!(out.iter().map(|o| o.record.payload["tag"].clone()).collect::<Vec<_>>(), vec![json!("a")]);
    let retry = ok("retry b", store.append(request(&b, 0, vec![event(2)], vec![outbox("b1")], Some("kb")))).await;
    assert_eq!((retry.first_version, retry.deduplicated), (1, false));
}

pub async fn invalid_requests_are_refused<S: EventStore>(store: &S) {
    let s = stream("BTC-USDT");
    let r = store.append(request(&s, 0, vec![], vec![outbox("x")], None)).await;
    assert!(matches!(r, Err(StoreError::InvalidRequest(_))), "empty append: {r:?}");
    assert!(ok("outbox", store.fetch_unpublished(10)).await.is_empty());
    assert!(ok("list", store.list_streams()).await.is_empty());
}

pub async fn snapshots_keep_the_latest<S: EventStore>(store: &S) {
    let s = stream("BTC-USDT");
    assert_eq!(ok("load none", store.load_latest_snapshot(&s)).await, None);
    let snap =
        |version: u64, byte: u8| Snapshot { stream: s.clone(), version, state: vec![byte; 3], state_hash: [byte; 32] };
    ok("save 5", store.save_snapshot(snap(5, 5))).await;
    ok("save 2", store.save_snapshot(snap(2, 2))).await;
    assert_eq!(ok("load", store.load_latest_snapshot(&s)).await, Some(snap(5, 5)));
    ok("resave 5", store.save_snapshot(snap(5, 6))).await;
    assert_eq!(ok("load", store.load_latest_snapshot(&s)).await, Some(snap(5, 6)));
    assert_eq!(ok("load other", store.load_latest_snapshot(&stream("ETH-USDT"))).await, None);
}

pub async fn outbox_is_delivered_in_commit_order<S: EventStore>(store: &S) {
    let a = stream("BTC-USDT");
    let b = stream("ETH-USDT");
    ok("a1", store.append(request(&a, 0, vec![event(1), event(2)], vec![outbox("a1"), outbox("a2")], None))).await;
    ok("b1", store.append(request(&b, 0, vec![event(1)], vec![outbox("b1")], None))).await;
    ok("a2", store.append(request(&a, 2, vec![event(3)], vec![outbox("a3")], None))).await;
    let all = ok("fetch", store.fetch_unpublished(100)).await;
    let tags: Vec<_> = all.iter().map(|o| o.record.payload["tag"].clone()).collect();
    assert_eq!(tags, vec![json!("a1"), json!("a2"), json!("b1"), json!("a3")]);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase in commit order");
    let keys: Vec<_> = all.iter().map(|o| (o.stream.clone(), o.version)).collect();
    assert_eq!(keys, vec![(a.clone(), 2), (a.clone(), 2), (b.clone(), 1), (a.clone(), 3)]);
    assert_eq!(all[0].record, outbox("a1"));
    assert_eq!(ok("fetch 2", store.fetch_unpublished(2)).await, all[..2].to_vec());
    assert_eq!(ok("fetch after", store.fetch_unpublished_after(all[1].id, 100)).await, all[2..].to_vec());
    assert_eq!(ok("fetch after, 1", store.fetch_unpublished_after(all[0].id, 1)).await, all[1..2].to_vec());
    ok("mark", store.mark_published(&[all[0].id, all[2].id, 999_999])).await;
    let rest = ok("fetch rest", store.fetch_unpublished(100)).await;
    assert_eq!(rest, vec![all[1].clone(), all[3].clone()]);
    ok("mark again", store.mark_published(&[all[0].id, all[1].id, all[3].id])).await;
    assert!(ok("fetch none", store.fetch_unpublished(100)).await.is_empty());
}

pub async fn processed_events_insert_once<S: EventStore>(store: &S) {
    let s = stream("BTC-USDT");
    assert!(ok("first", store.mark_processed("settlement", &s, 1)).await);
    assert!(!ok("again", store.mark_processed("settlement", &s, 1)).await);
    assert!(ok("next version", store.mark_processed("settlement", &s, 2)).await);
    assert!(ok("other consumer", store.mark_processed("views", &s, 1)).await);
    assert!(ok("other stream", store.mark_processed("settlement", &StreamId::admin(), 1)).await);
}

pub async fn leases_expire_and_pass_on<S: EventStore>(store: &S) {
    let ttl = Duration::from_secs(10);
    let now = t0();
    assert!(ok("a acquires", store.acquire_lease("relay", "a", ttl, now)).await);
    assert!(!ok("b refused", store.acquire_lease("relay", "b", ttl, now + TimeDelta::seconds(5))).await);
    assert!(ok("a re-acquires", store.acquire_lease("relay", "a", ttl, now + TimeDelta::seconds(1))).await);
    assert!(ok("a renews", store.renew_lease("relay", "a", ttl, now + TimeDelta::seconds(9))).await);
    assert!(!ok("b cannot renew", store.renew_lease("relay", "b", ttl, now + TimeDelta::seconds(9))).await);
    assert!(!ok("b cannot release", store.release_lease("relay", "b")).await);
    // Renewed at 9 s for 10 s: still a's at 18 s, free at 19 s.
    assert!(!ok("b refused at 18s", store.acquire_lease("relay", "b", ttl, now + TimeDelta::seconds(18))).await);
    assert!(ok("b takes expired", store.acquire_lease("relay", "b", ttl, now + TimeDelta::seconds(19))).await);
    assert!(!ok("a lost it", store.renew_lease("relay", "a", ttl, now + TimeDelta::seconds(20))).await);
    assert!(ok("other lease", store.acquire_lease("other", "a", ttl, now + TimeDelta::seconds(20))).await);
    assert!(ok("b releases", store.release_lease("relay", "b")).await);
    assert!(!ok("released twice", store.release_lease("relay", "b")).await);
    assert!(ok("a takes released", store.acquire_lease("relay", "a", ttl, now + TimeDelta::seconds(20))).await);
    assert!(
        !ok("expired renew", store.renew_lease("relay", "a", ttl, now + TimeDelta::seconds(31))).await,
        "an expired lease cannot be renewed"
    );
}

pub async fn a_lease_passes_to_the_node_that_asks_at_its_holders_next_renewal<S: EventStore>(store: &S) {
    let ttl = Duration::from_secs(10);
    let now = t0();
    let at = |s: i64| now + TimeDelta::seconds(s);
    // Given a holds the lease; asking for a free, expired or own lease changes nothing,
    ok("nobody holds it", store.request_lease("user", "b", now)).await;
    assert!(ok("a acquires", store.acquire_lease("user", "a", ttl, now)).await);
    ok("a asks for its own", store.request_lease("user", "a", at(1))).await;
    assert!(ok("a renews", store.renew_lease("user", "a", ttl, at(2))).await);
    // when b asks for it,
    ok("b asks", store.request_lease("user", "b", at(3))).await;
    assert_eq!(ok("still a's until renewal", store.lease_owner("user", at(3))).await.as_deref(), Some("a"));
    assert!(!ok("b cannot take it yet", store.acquire_lease("user", "b", ttl, at(3))).await);
    assert!(!ok("someone else's renewal", store.renew_lease("user", "c", ttl, at(3))).await);
    // then a's next renewal hands it over: refused to a, b's for a ttl from then.
    assert!(!ok("a's renewal hands over", store.renew_lease("user", "a", ttl, at(4))).await);
    assert_eq!(ok("b's now", store.lease_owner("user", at(4))).await.as_deref(), Some("b"));
    assert!(!ok("a cannot renew", store.renew_lease("user", "a", ttl, at(5))).await);
    assert!(!ok("a cannot take it back", store.acquire_lease("user", "a", ttl, at(5))).await);
    assert!(ok("b takes what it was handed", store.acquire_lease("user", "b", ttl, at(5))).await);
    assert!(ok("b renews: the ask was used up", store.renew_lease("user", "b", ttl, at(6))).await);
    // An ask the holder never answers (it died) dies with the lease: whoever takes the
    // expired lease keeps it.
    ok("a asks", store.request_lease("user", "a", at(7))).await;
    assert!(ok("c takes the expired lease", store.acquire_lease("user", "c", ttl, at(17))).await);
    assert!(ok("c renews: the stale ask is gone", store.renew_lease("user", "c", ttl, at(18))).await);
}
