//! The MongoDB adapters on a real MongoDB wire-protocol server: SecantusDB, a one-member
//! replica set with multi-document transactions, unique and TTL indexes (installed into
//! `.tools/` by `scripts/install-tools.sh`). The event store passes the port's conformance
//! suite and the view store the same view specification as SQLite's; then what is specific to
//! MongoDB: racing handles, transaction retries, tampering, the indexes created at start.
//!
//! One server serves the whole file; every store gets a database of its own.
//!
//! Test code unwraps: a failure should fail the test.

#[path = "support/exchange.rs"]
mod exchange;
#[path = "support/scenario.rs"]
mod scenario;
#[path = "support/servers.rs"]
mod servers;
#[path = "support/view_specs.rs"]
mod view_specs;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use exchange::Exchange;
use hob::domain::{MarketEvent, MarketId, OrderId};
use hob::events::{
    conformance, verify_chain, AppendRequest, ChainError, EventStore, NewEvent, OutboxRecord, StoreError, StreamId,
    SystemClock,
};
use hob::store::{MongoEventStore, MongoViewStore, SqliteEventStore};
use mongodb::bson::{doc, Document};
use serde_json::json;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// One SecantusDB for the whole file
// ---------------------------------------------------------------------------------------------

fn server() -> &'static servers::Spawned {
    static SERVER: OnceLock<servers::Spawned> = OnceLock::new();
    // For `configureFailPoint`, which the retry test arms (mongod has the same switch).
    SERVER.get_or_init(|| servers::secantus_with(&["--enable-test-commands"]))
}

fn uri() -> String {
    format!("mongodb://127.0.0.1:{}/?replicaSet=secantus", server().port)
}

/// A database name no other store of this run uses.
fn fresh_db(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{tag}_{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn store(db: &str) -> MongoEventStore {
    MongoEventStore::connect(&uri(), db).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn market(name: &str) -> StreamId {
    StreamId::market(MarketId::new(name).unwrap())
}

fn filled(n: u64) -> NewEvent {
    NewEvent::market(&SystemClock, Uuid::now_v7(), Uuid::now_v7(), &MarketEvent::Filled { order: OrderId(n) })
}

fn append(stream: &StreamId, expected: u64, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest { stream: stream.clone(), expected_version: expected, events, outbox: vec![], idempotency_key: None }
}

fn with_outbox(mut request: AppendRequest, tag: &str) -> AppendRequest {
    let group = request.stream.to_string();
    request.outbox = vec![OutboxRecord { destination: "market".into(), group, payload: json!({ "tag": tag }) }];
    request
}

// ---------------------------------------------------------------------------------------------
// The port's suites
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_passes_the_conformance_suite() {
    let uri = uri();
    conformance::run_all(|| {
        // The suite makes stores synchronously; connecting is async.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(MongoEventStore::connect(&uri, &fresh_db("conformance")))
        })
        .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_views_in_increments_equal_a_rebuild_from_events_alone() {
    let events = store(&fresh_db("views_live")).await;
    let live = events.view_store().await.unwrap();
    let mut ex = Exchange::on(events);
    view_specs::live_views_in_increments_equal_a_rebuild_from_events_alone(&mut ex, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_view_catch_up_is_idempotent() {
    let db = fresh_db("views_idempotent");
    let mut ex = Exchange::on(store(&db).await);
    // A view store on its own connection, as a separate projector node would have.
    let views = MongoViewStore::connect(&uri(), &db).await.unwrap();
    view_specs::catch_up_is_idempotent(&mut ex, &views).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_view_save_from_a_stale_checkpoint_is_refused_whole() {
    let views = MongoViewStore::connect(&uri(), &fresh_db("views_stale")).await.unwrap();
    view_specs::a_save_from_a_stale_checkpoint_is_refused_whole(&views).await;
}

// ---------------------------------------------------------------------------------------------
// What is specific to MongoDB
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_racing_on_one_stream_one_wins_the_other_gets_a_version_conflict() {
    // Given two nodes' stores (separate clients) on one database,
    let db = fresh_db("race");
    let (a, b) = (store(&db).await, store(&db).await);
    let stream = market("BTC-USDT");
    const ROUNDS: u64 = 10;
    for round in 0..ROUNDS {
        // when both append at the same expected version at once,
        let (ra, rb) = tokio::join!(
            a.append(with_outbox(append(&stream, round, vec![filled(round)]), "a")),
            b.append(with_outbox(append(&stream, round, vec![filled(round)]), "b")),
        );
        // then exactly one append is stored and the other is the typed conflict.
        let (won, lost) = match (ra, rb) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("round {round}: expected one winner, got {other:?}"),
        };
        assert_eq!((won.first_version, won.last_version), (round + 1, round + 1));
        assert_eq!(lost, StoreError::VersionConflict { stream: stream.clone(), expected: round, actual: round + 1 });
    }
    let events = a.read_stream(&stream, 1).await.unwrap();
    verify_chain(&events).unwrap();
    assert_eq!(events.len() as u64, ROUNDS);
    let outbox = b.fetch_unpublished(100).await.unwrap();
    assert_eq!(outbox.len() as u64, ROUNDS, "only the winners' outbox records are stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_appends_to_many_streams_get_outbox_ids_in_commit_order() {
    // Given two nodes appending concurrently, each append with an outbox record,
    let db = fresh_db("outbox_order");
    let (a, b) = (store(&db).await, store(&db).await);
    const STREAMS: u64 = 8;
    const ROUNDS: u64 = 4;
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..STREAMS {
        let node = if s % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let stream = market(&format!("M{s}"));
            for round in 0..ROUNDS {
                node.append(with_outbox(append(&stream, round, vec![filled(round)]), &format!("{s}/{round}")))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // then every record is there once, ids strictly increase, and within a stream ids follow
    // the versions (commit order).
    let all = a.fetch_unpublished(1_000).await.unwrap();
    assert_eq!(all.len() as u64, STREAMS * ROUNDS);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    for s in 0..STREAMS {
        let versions: Vec<u64> =
            all.iter().filter(|e| e.stream == market(&format!("M{s}"))).map(|e| e.version).collect();
        assert_eq!(versions, (1..=ROUNDS).collect::<Vec<_>>());
    }
    // And a relay reading after an id sees exactly the rest.
    let after = b.fetch_unpublished_after(all[9].id, 1_000).await.unwrap();
    assert_eq!(after, all[10..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_outbox_records_are_deleted_so_the_collection_holds_only_what_is_in_transit() {
    // Given three appends with an outbox record each,
    let db = fresh_db("outbox_retention");
    let store = store(&db).await;
    let stream = market("RETAIN");
    for round in 0..3 {
        store.append(with_outbox(append(&stream, round, vec![filled(round)]), &round.to_string())).await.unwrap();
    }
    let all = store.fetch_unpublished(100).await.unwrap();
    assert_eq!(all.len(), 3);
    // when the first two are marked published (and an id never handed out with them),
    store.mark_published(&[all[0].id, all[1].id, u64::MAX]).await.unwrap();
    // then their documents are gone, the third waits, and marking again changes nothing.
    let outbox = store.database().collection::<Document>("outbox");
    assert_eq!(outbox.count_documents(doc! {}).await.unwrap(), 1);
    assert_eq!(store.fetch_unpublished(100).await.unwrap(), all[2..].to_vec());
    store.mark_published(&[all[0].id]).await.unwrap();
    assert_eq!(outbox.count_documents(doc! {}).await.unwrap(), 1);
}

/// Arms the server's `failCommand` fail point for the client named `app` only, so tests
/// running beside this one on the same server are not hit.
async fn fail_next(app: &str, command: &str, code: i32, labels: &[&str]) {
    let admin = mongodb::Client::with_uri_str(uri()).await.unwrap().database("admin");
    let labels: Vec<&str> = labels.to_vec();
    admin
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": { "times": 1 },
            "data": { "failCommands": [command], "errorCode": code, "errorLabels": labels, "appName": app },
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_transaction_error_is_retried_and_a_fatal_one_writes_nothing() {
    let db = fresh_db("retry");
    let app = "hob-retry-test";
    let store = MongoEventStore::connect(&format!("{}&appName={app}", uri()), &db).await.unwrap();
    let stream = market("BTC-USDT");

    // Given the server will fail the append's next insert with a write conflict labelled
    // TransientTransactionError,
    fail_next(app, "insert", 112, &["TransientTransactionError"]).await;
    // when appending, then the append is rerun and stored once.
    let r = store.append(with_outbox(append(&stream, 0, vec![filled(1), filled(2)]), "x")).await.unwrap();
    assert_eq!((r.first_version, r.last_version), (1, 2));
    assert_eq!(store.read_stream(&stream, 1).await.unwrap().len(), 2);
    assert_eq!(store.fetch_unpublished(10).await.unwrap().len(), 1);
    // The fail point was spent on the append: a plain insert by the same client goes through.
    store.database().collection::<Document>("scratch").insert_one(doc! { "x": 1 }).await.unwrap();

    // Given the next insert fails with an error that is not transient,
    fail_next(app, "insert", 2, &[]).await;
    // then the append fails with a backend error and nothing of it is stored.
    let r = store.append(with_outbox(append(&stream, 2, vec![filled(3)]), "y")).await;
    assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
    assert_eq!(store.stream_version(&stream).await.unwrap(), 2);
    assert_eq!(store.fetch_unpublished(10).await.unwrap().len(), 1);
    // And the store works on.
    assert_eq!(store.append(append(&stream, 2, vec![filled(3)])).await.unwrap().last_version, 3);
}

/// Rewrites the stored payload text of `stream`'s event `version`, as someone with write access
/// to the database would.
async fn tamper(store: &MongoEventStore, stream: &StreamId, version: i64, edit: impl FnOnce(String) -> String) {
    let events = store.database().collection::<Document>("events");
    let filter = doc! { "stream": stream.as_str(), "version": version };
    let found = events.find_one(filter.clone()).await.unwrap().unwrap();
    let payload = edit(found.get_str("payload").unwrap().to_owned());
    events.update_one(filter, doc! { "$set": { "payload": payload } }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_and_removed_events_are_named_by_stream_and_version() {
    let store = store(&fresh_db("tamper")).await;
    let stream = market("BTC-USDT");
    let split = market("ETH-USDT");
    store.append(append(&stream, 0, (1..=4).map(filled).collect())).await.unwrap();
    for v in 1..=3 {
        store.append(append(&split, v - 1, vec![filled(v)])).await.unwrap();
    }

    // An edited payload that still parses: the hash chain names the event.
    tamper(&store, &stream, 3, |p| p.replace(r#""order_id":3"#, r#""order_id":7"#)).await;
    let events = store.read_stream(&stream, 1).await.unwrap();
    assert_eq!(events[2].payload["order_id"], json!(7));
    assert_eq!(verify_chain(&events), Err(ChainError::BadHash { stream: stream.clone(), version: 3 }));

    // A payload that no longer parses: a typed error naming the event, on both read paths.
    tamper(&store, &stream, 4, |p| p.replace(r#""order_id":4"#, r#""order_id":x"#)).await;
    for err in [
        store.read_stream(&stream, 1).await.unwrap_err(),
        store.read_stream_raw(&stream, 1, 10).await.map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::Corrupt { stream: s, version: 4, reason } if s == stream.as_str() && reason.contains("payload")),
            "{err:?}"
        );
    }

    // A deleted event: the gap is named where it should have been.
    let events = store.database().collection::<Document>("events");
    events.delete_one(doc! { "stream": split.as_str(), "version": 2 }).await.unwrap();
    let err = store.read_stream(&split, 1).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { stream: s, version: 2, .. } if s == split.as_str()), "{err:?}");
    let err = store.read_stream_page(&split, 2, 5).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { version: 2, .. }), "{err:?}");
}

async fn index_names(store: &MongoEventStore, collection: &str) -> Vec<(String, Document, Option<Duration>, bool)> {
    let mut out = Vec::new();
    let names = store.database().collection::<Document>(collection).list_indexes().await.unwrap();
    use futures_util::TryStreamExt;
    let models: Vec<_> = names.try_collect().await.unwrap();
    for m in models {
        let options = m.options.unwrap_or_default();
        out.push((options.name.unwrap_or_default(), m.keys, options.expire_after, options.unique.unwrap_or(false)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_creates_the_indexes_once_and_the_lease_ttl_index_exists() {
    // Given a database opened twice (a second node starting),
    let db = fresh_db("indexes");
    store(&db).await;
    let store = store(&db).await;
    // then each collection has its indexes, created idempotently.
    let leases = index_names(&store, "leases").await;
    assert!(
        leases.iter().any(|(name, keys, ttl, _)| name == "reap_at_ttl"
            && *keys == doc! { "reap_at": 1 }
            && *ttl == Some(Duration::ZERO)),
        "{leases:?}"
    );
    let unique = |list: &[(String, Document, Option<Duration>, bool)], keys: Document| {
        list.iter().any(|(_, k, _, unique)| *k == keys && *unique)
    };
    assert!(unique(&index_names(&store, "events").await, doc! { "stream": 1, "version": 1 }));
    assert!(unique(&index_names(&store, "snapshots").await, doc! { "stream": 1, "version": 1 }));
    assert!(unique(&index_names(&store, "processed_events").await, doc! { "consumer": 1, "stream": 1, "version": 1 }));
    let outbox = index_names(&store, "outbox").await;
    assert!(outbox.iter().any(|(_, k, _, _)| *k == doc! { "published": 1, "_id": 1 }), "{outbox:?}");

    // And a lease document carries the date the TTL monitor reaps it by, well after expiry.
    let now = chrono::Utc::now();
    assert!(store.acquire_lease("lock:market:BTC-USDT", "node-a", Duration::from_secs(10), now).await.unwrap());
    let lease = store
        .database()
        .collection::<Document>("leases")
        .find_one(doc! { "_id": "lock:market:BTC-USDT" })
        .await
        .unwrap()
        .unwrap();
    let reap = lease.get_datetime("reap_at").unwrap().timestamp_millis();
    assert!(reap > now.timestamp_millis() + 10_000, "{lease:?}");
    assert_eq!(lease.get_str("owner").unwrap(), "node-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_appends_store_the_same_envelopes_and_hashes_as_sqlite() {
    // Given the same appends made to the SQLite store and to MongoDB,
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sqlite = SqliteEventStore::open(dir.path().join("hob.db")).unwrap();
    let mongo = store(&fresh_db("same_as_sqlite")).await;
    let stream = market("BTC-USDT");
    let mut second = append(&stream, 2, vec![filled(3)]);
    second.idempotency_key = Some("k".into());
    for request in [append(&stream, 0, vec![filled(1), filled(2)]), second] {
        let (a, b) = (sqlite.append(request.clone()).await.unwrap(), mongo.append(request).await.unwrap());
        // then both answer the same, hashes included,
        assert_eq!(a, b);
    }
    // and read back the same envelopes and the same replay bytes: one hash chain, one encoding.
    assert_eq!(mongo.read_stream(&stream, 1).await.unwrap(), sqlite.read_stream(&stream, 1).await.unwrap());
    assert_eq!(
        mongo.read_stream_raw(&stream, 2, 5).await.unwrap(),
        sqlite.read_stream_raw(&stream, 2, 5).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_appends_with_one_idempotency_key_store_once_and_both_get_the_result() {
    // Given two nodes retrying the same request (same key) at the same time,
    let db = fresh_db("idempotent_race");
    let (a, b) = (store(&db).await, store(&db).await);
    let stream = market("BTC-USDT");
    for round in 0..5u64 {
        let mut request = with_outbox(append(&stream, round, vec![filled(round)]), "x");
        request.idempotency_key = Some(format!("k{round}"));
        let (ra, rb) = tokio::join!(a.append(request.clone()), b.append(request));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        // then one stored it, the other got the stored result, and both name the same event.
        assert!(ra.deduplicated ^ rb.deduplicated, "round {round}: {ra:?} {rb:?}");
        assert_eq!((ra.last_version, ra.last_hash), (rb.last_version, rb.last_hash));
        assert_eq!(ra.last_version, round + 1);
    }
    assert_eq!(a.read_stream(&stream, 1).await.unwrap().len(), 5);
    assert_eq!(a.fetch_unpublished(100).await.unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_racing_on_one_checkpoint_cannot_both_save() {
    use hob::projections::{CheckpointMove, StoredView, ViewBatch, ViewStore, ViewStoreError};
    // Given two view stores (two nodes) on one database, both having read checkpoint 0,
    let db = fresh_db("views_race");
    let a = MongoViewStore::connect(&uri(), &db).await.unwrap();
    let b = MongoViewStore::connect(&uri(), &db).await.unwrap();
    let stream = market("BTC-USDT");
    let batch = |from: u64, to: u64, by: &str| ViewBatch {
        views: vec![StoredView { kind: "depth".into(), key: "BTC-USDT".into(), json: json!({ "by": by, "v": to }) }],
        checkpoints: vec![CheckpointMove { projection: "depth".into(), stream: stream.clone(), from, to }],
    };
    for round in 0..5u64 {
        // when both save a move from the same version at once,
        let (from, to) = (round * 10, round * 10 + 10);
        let (ra, rb) = tokio::join!(a.save(batch(from, to, "a")), b.save(batch(from, to, "b")));
        // then exactly one lands; the other is refused whole.
        let (winner, lost) = match (ra, rb) {
            (Ok(()), Err(lost)) => ("a", lost),
            (Err(lost), Ok(())) => ("b", lost),
            other => panic!("round {round}: expected one save, got {other:?}"),
        };
        assert!(matches!(lost, ViewStoreError::CheckpointConflict { actual, .. } if actual == to), "{lost}");
        assert_eq!(a.checkpoint("depth", &stream).await.unwrap(), to);
        assert_eq!(b.load("depth", "BTC-USDT").await.unwrap(), Some(json!({ "by": winner, "v": to })));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_server_is_refused_at_connect_with_a_clear_error() {
    // Given a server that is not a replica set member (no multi-document transactions),
    let standalone = servers::secantus_with(&["--standalone"]);
    let uri = format!("mongodb://127.0.0.1:{}/", standalone.port);
    // when connecting either store, then it is refused up front, not at the first append.
    let err = MongoEventStore::connect(&uri, "hob").await.map(|_| ()).unwrap_err();
    assert!(matches!(&err, StoreError::Backend(m) if m.contains("replica set")), "{err:?}");
    let err = MongoViewStore::connect(&uri, "hob").await.map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("replica set"), "{err}");
}
