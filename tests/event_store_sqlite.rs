//! The SQLite adapter: the port's conformance suite, group commit under concurrency,
//! durability across reopen, and tamper detection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hob::domain::{MarketEvent, MarketId, OrderId};
use hob::events::{
    conformance, decode_market_event, verify_chain, AppendRequest, ChainError, EventStore, NewEvent, OutboxRecord,
    StoreError, StreamId, SystemClock,
};
use hob::store::{SqliteConfig, SqliteEventStore};
use serde_json::json;
use uuid::Uuid;

fn temp_dir() -> tempfile::TempDir {
    // On the target disk rather than a tmpfs, so commits pay a real fsync.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn market(name: &str) -> StreamId {
    StreamId::market(MarketId::new(name).unwrap())
}

fn filled(n: u64) -> NewEvent {
    NewEvent::market(&SystemClock, Uuid::now_v7(), Uuid::now_v7(), &MarketEvent::Filled { order: OrderId(n) })
}

fn append(stream: &StreamId, expected: u64, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest { stream: stream.clone(), expected_version: expected, events, outbox: vec![], idempotency_key: None }
}

#[tokio::test]
async fn sqlite_passes_the_conformance_suite() {
    let dir = temp_dir();
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        SqliteEventStore::open(dir.path().join(format!("store-{i}.db"))).unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_share_commits_and_conflicts_fail_alone() {
    let dir = temp_dir();
    let store = Arc::new(SqliteEventStore::open(dir.path().join("hob.db")).unwrap());
    const STREAMS: u64 = 64;
    const ROUNDS: u64 = 5;
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..STREAMS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let stream = market(&format!("M{s}"));
            for round in 0..ROUNDS {
                let mut req = append(&stream, round, vec![filled(round)]);
                req.outbox =
                    vec![OutboxRecord { destination: "d".into(), group: stream.to_string(), payload: json!({}) }];
                let r = store.append(req).await.unwrap();
                assert_eq!(r.last_version, round + 1);
                // A stale writer in the same batches fails on its own, others go on.
                let stale = store.append(append(&stream, round, vec![filled(99)])).await;
                assert!(matches!(stale, Err(StoreError::VersionConflict { actual, .. }) if actual == round + 1));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.jobs, STREAMS * ROUNDS * 2);
    assert!(stats.batches < stats.jobs, "group commit never batched: {stats:?}");
    assert_eq!(store.list_streams().await.unwrap().len(), STREAMS as usize);
    assert_eq!(store.fetch_unpublished(10_000).await.unwrap().len(), (STREAMS * ROUNDS) as usize);
    for s in 0..STREAMS {
        let events = store.read_stream(&market(&format!("M{s}")), 1).await.unwrap();
        assert_eq!(events.len() as u64, ROUNDS);
        verify_chain(&events).unwrap();
    }
}

#[tokio::test]
async fn acknowledged_appends_survive_reopen() {
    let dir = temp_dir();
    let path = dir.path().join("hob.db");
    let stream = market("BTC-USDT");
    let before = {
        let store =
            SqliteEventStore::open_with(SqliteConfig { max_batch: 4, readers: 1, ..SqliteConfig::new(&path) }).unwrap();
        store.append(append(&stream, 0, (1..=3).map(filled).collect())).await.unwrap();
        store.read_stream(&stream, 1).await.unwrap()
    };
    let store = SqliteEventStore::open(&path).unwrap();
    let after = store.read_stream(&stream, 1).await.unwrap();
    assert_eq!(after, before);
    verify_chain(&after).unwrap();
    let decoded: Vec<_> = after
        .iter()
        .map(|e| decode_market_event(&e.event_type, e.schema_version, e.payload.clone()).unwrap())
        .collect();
    assert_eq!(decoded[2], MarketEvent::Filled { order: OrderId(3) });
    let r = store.append(append(&stream, 3, vec![filled(4)])).await.unwrap();
    assert_eq!(r.first_version, 4);
    verify_chain(&store.read_stream(&stream, 1).await.unwrap()).unwrap();
}

/// Rewrites the packed events of the commit holding `version` with `edit`, as a tamperer with
/// the file would.
fn tamper(raw: &rusqlite::Connection, stream: &StreamId, version: u64, edit: impl FnOnce(&mut Vec<u8>)) {
    let (seq, mut blob): (i64, Vec<u8>) = raw
        .query_row(
            "SELECT c.seq, c.events FROM commits c JOIN streams s ON s.id = c.stream_id
             WHERE s.name = ?1 AND c.first_version <= ?2 AND c.last_version >= ?2",
            rusqlite::params![stream.as_str(), version as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    edit(&mut blob);
    raw.execute("UPDATE commits SET events = ?2 WHERE seq = ?1", rusqlite::params![seq, blob]).unwrap();
}

fn replace_once(blob: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = blob.windows(from.len()).position(|w| w == from).expect("bytes to tamper with");
    blob[at..at + from.len()].copy_from_slice(to);
}

#[tokio::test]
async fn edited_and_corrupt_rows_are_named_by_stream_and_version() {
    let dir = temp_dir();
    let path = dir.path().join("hob.db");
    let stream = market("BTC-USDT");
    let split = market("ETH-USDT");
    {
        let store = SqliteEventStore::open(&path).unwrap();
        store.append(append(&stream, 0, (1..=4).map(filled).collect())).await.unwrap();
        for v in 1..=3 {
            store.append(append(&split, v - 1, vec![filled(v)])).await.unwrap();
        }
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    // An edited payload that still parses: the hash chain names the event.
    tamper(&raw, &stream, 3, |b| replace_once(b, br#""order_id":3"#, br#""order_id":7"#));
    let store = SqliteEventStore::open(&path).unwrap();
    let events = store.read_stream(&stream, 1).await.unwrap();
    assert_eq!(events[2].payload["order_id"], json!(7));
    assert_eq!(verify_chain(&events), Err(ChainError::BadHash { stream: stream.clone(), version: 3 }));

    // A payload that no longer parses: a typed error naming the event.
    tamper(&raw, &stream, 4, |b| replace_once(b, br#""order_id":4"#, br#""order_id":x"#));
    let err = store.read_stream(&stream, 1).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { stream: s, version: 4, reason } if s == stream.as_str() && reason.contains("payload")),
        "{err:?}"
    );

    // A truncated commit: the event cut short is named.
    tamper(&raw, &stream, 1, |b| b.truncate(b.len() - 10));
    let err = store.read_stream(&stream, 1).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { version: 4, reason, .. } if reason.contains("hash")), "{err:?}");

    // A deleted commit: the gap is named where the next version should have been.
    raw.execute(
        "DELETE FROM commits WHERE first_version = 2 AND stream_id = (SELECT id FROM streams WHERE name = ?1)",
        [split.as_str()],
    )
    .unwrap();
    let err = store.read_stream(&split, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { version: 3, .. }), "{err:?}");
}
