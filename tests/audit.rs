//! `hob audit` and `hob inspect` on a store the real engine wrote (SQLite file, in-process
//! queues, real actors): an untouched store passes every check; an edited payload, a deleted
//! commit and a truncated stream are named by stream and version; an event appended through
//! the store port that keeps the hash chain valid but invents money is caught by the
//! invariant checks.
// Test code unwraps: a failure should fail the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hob::domain::{Amount, Bps, OrderId, PriceTicks, QtyLots, Side, Trade, TradeId, UserEvent};
use hob::engine::{Engine, EngineConfig};
use hob::events::user_payload::encode_user_event;
use hob::events::{AppendRequest, EventStore, NewEvent, StreamId, SystemClock};
use hob::queue::inprocess::{DestinationConfig, InProcessQueue};
use hob::queue::{MARKET_QUEUE, USER_QUEUE};
use hob::store::sqlite::SqliteEventStore;
use serde_json::Value;
use uuid::Uuid;

#[path = "support/btc_usdt.rs"]
mod btc_usdt;
use btc_usdt::{asset, limit, spec, user};

type TestEngine = Engine<SqliteEventStore, InProcessQueue>;

async fn quiesce(engine: &TestEngine) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut calm = 0;
    while calm < 3 {
        assert!(Instant::now() < deadline, "the pipeline did not settle");
        let unpublished = engine.store().fetch_unpublished(1).await.unwrap().len();
        let busy: usize = [MARKET_QUEUE, USER_QUEUE].iter().map(|d| engine.queue().depth(d)).sum();
        calm = if unpublished == 0 && busy == 0 { calm + 1 } else { 0 };
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A store written by the real engine: deposits, two trades, a cancel, and carol's bid of 3
/// lots at 990 left resting (`resting`).
struct Written {
    _dir: tempfile::TempDir,
    path: PathBuf,
    resting: OrderId,
}

async fn write_store() -> Written {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hob.db");
    let clock = Arc::new(SystemClock);
    let store = Arc::new(SqliteEventStore::open(&path).unwrap());
    let queue = Arc::new(InProcessQueue::new(clock.clone(), DestinationConfig::default()));
    let config = EngineConfig {
        markets: vec![spec()],
        settlement_group: "operator:test".into(),
        snapshot_every: 1_000,
        relay_poll: Duration::from_millis(20),
    };
    let engine = Engine::start(config, store, queue, clock);
    let (alice, bob, carol) = (user(1), user(2), user(3));
    engine.deposit(alice, asset("USDT"), Amount(10_000_000)).await.unwrap();
    engine.deposit(bob, asset("BTC"), Amount(100_000)).await.unwrap();
    engine.deposit(carol, asset("USDT"), Amount(5_000_000)).await.unwrap();
    engine.place(bob, limit(Side::Sell, 1_000, 10, 1)).await.unwrap();
    quiesce(&engine).await;
    engine.place(alice, limit(Side::Buy, 1_005, 4, 1)).await.unwrap();
    let resting = engine.place(carol, limit(Side::Buy, 990, 3, 1)).await.unwrap();
    quiesce(&engine).await;
    engine.place(alice, limit(Side::Buy, 1_000, 2, 2)).await.unwrap();
    let ask = engine.place(bob, limit(Side::Sell, 1_010, 5, 2)).await.unwrap();
    quiesce(&engine).await;
    engine.cancel(bob, spec().id, ask).await.unwrap();
    quiesce(&engine).await;
    engine.shutdown();
    drop(engine);
    Written { _dir: dir, path, resting }
}
#[actix_rt::test]
async fn the_findings_do_not_depend_on_how_many_threads_audit_nor_on_the_page_size() {
    // given the engine's store with one payload edited in alice's stream
    let w = write_store().await;
    let raw = rusqlite::Connection::open(&w.path).unwrap();
    let (seq, _, _, mut blob) = commits(&raw, StreamId::user(user(1)).as_str()).remove(0);
    let at = blob.windows(8).position(|w| w == b"10000000").unwrap();
    blob[at] = b'9';
    raw.execute("UPDATE commits SET events = ?2 WHERE seq = ?1", rusqlite::params![seq, blob]).unwrap();
    let store = SqliteEventStore::open(&w.path).unwrap();

    // when it is audited on one, two and three lanes, reading whole streams, pages of three
    // events, and single events (every event prepared apart from the one before it)
    let mut reports = Vec::new();
    for lanes in [1, 2, 3] {
        reports.push(hob::audit::audit_on(&store, lanes, |_| {}).await.unwrap());
        for page in [1, 3] {
            reports.push(hob::audit::audit_paged(&store, lanes, page, |_| {}).await.unwrap());
        }
    }

    // then every count and every violation is the same, and the edit is among them
    let summary = |r: &hob::audit::Report| {
        let mut found: Vec<_> =
            r.findings.violations().iter().map(|v| (v.check, v.stream.clone(), v.version, v.message.clone())).collect();
        found.sort();
        let checked: Vec<_> = hob::audit::Check::ALL.iter().map(|c| r.findings.checked(*c)).collect();
        (r.streams, r.events, checked, found)
    };
    assert!(!reports[0].ok());
    for other in &reports[1..] {
        assert_eq!(summary(&reports[0]), summary(other));
    }
}

fn hob(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hob")).args(args).output().unwrap();
    let code = out.status.code().unwrap();
    (code, String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn store_flag(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

/// Runs `hob audit --json`: (exit code, report).
fn audit_json(path: &Path) -> (i32, Value) {
    let (code, stdout, stderr) = hob(&["audit", "--store", &store_flag(path), "--json"]);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (code, report)
}

/// Every violation of `check` as (stream, version, message).
fn violations(report: &Value, check: &str) -> Vec<(Option<String>, Option<u64>, String)> {
    let checks = report["checks"].as_array().unwrap();
    let Some(c) = checks.iter().find(|c| c["name"] == check) else { return vec![] };
    c["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (v["stream"].as_str().map(str::to_owned), v["version"].as_u64(), v["message"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The commits of `stream`: (seq, first_version, last_version, packed events).
fn commits(raw: &rusqlite::Connection, stream: &str) -> Vec<(i64, u64, u64, Vec<u8>)> {
    let mut stmt = raw
        .prepare(
            "SELECT c.seq, c.first_version, c.last_version, c.events FROM commits c JOIN streams s
             ON s.id = c.stream_id WHERE s.name = ?1 ORDER BY c.first_version",
        )
        .unwrap();
    stmt.query_map([stream], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[actix_rt::test]
async fn a_store_the_engine_wrote_passes_every_check() {
    // given a store written by the real engine
    let w = write_store().await;

    // when it is audited
    let (code, report) = audit_json(&w.path);

    // then every check passes, having looked at real work, and the exit code is 0
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["format"], "hob.audit.v1");
    assert_eq!(report["ok"], true);
    assert_eq!(report["streams"], 4, "a market and three users");
    let checked = |name: &str| {
        report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["checked"].as_u64().unwrap()
    };
    assert_eq!(checked("hash_chain"), report["events"].as_u64().unwrap());
    assert_eq!(checked("fills_match_trades"), 2, "two trades");
    assert_eq!(checked("conservation"), 2, "BTC and USDT");
    assert!(checked("book_not_crossed") > 10);
    // and the text report says so too
    let (code, text, _) = hob(&["audit", "--store", &store_flag(&w.path)]);
    assert_eq!(code, 0);
    assert!(text.contains("PASS conservation") && text.ends_with("result: PASS\n"), "{text}");
}

#[actix_rt::test]
async fn an_edited_payload_is_named_by_stream_and_version() {
    // given the engine's store, and alice's deposit edited in the file to ten times the amount
    let w = write_store().await;
    let alice = StreamId::user(user(1));
    let raw = rusqlite::Connection::open(&w.path).unwrap();
    let (seq, first, last, mut blob) = commits(&raw, alice.as_str()).remove(0);
    assert_eq!((first, last), (1, 1), "the deposit is alice's first append");
    let at = blob.windows(8).position(|w| w == b"10000000").unwrap();
    blob[at] = b'9';
    raw.execute("UPDATE commits SET events = ?2 WHERE seq = ?1", rusqlite::params![seq, blob]).unwrap();

    // when it is audited
    let (code, report) = audit_json(&w.path);

    // then the hash chain check names alice's stream at version 1, and the exit code is 1
    assert_eq!(code, 1);
    let broken = violations(&report, "hash_chain");
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!((broken[0].0.as_deref(), broken[0].1), (Some(alice.as_str()), Some(1)));
    assert!(broken[0].2.contains("hash"), "{}", broken[0].2);
}

#[actix_rt::test]
async fn a_deleted_commit_and_a_truncated_stream_are_named_by_stream_and_version() {
    // given the engine's store, with a commit in the middle of the market's stream deleted,
    // the last commit of bob's stream deleted, and the last commit of carol's cut short
    let w = write_store().await;
    let market = StreamId::market(spec().id);
    let bob = StreamId::user(user(2));
    let carol = StreamId::user(user(3));
    let raw = rusqlite::Connection::open(&w.path).unwrap();
    let (seq, carol_first, carol_last, mut blob) = commits(&raw, carol.as_str()).pop().unwrap();
    blob.truncate(blob.len() - 10);
    raw.execute("UPDATE commits SET events = ?2 WHERE seq = ?1", rusqlite::params![seq, blob]).unwrap();
    let market_commits = commits(&raw, market.as_str());
    assert!(market_commits.len() >= 3, "{}", market_commits.len());
    let (seq, gone_first, gone_last, _) = market_commits[1].clone();
    raw.execute("DELETE FROM commits WHERE seq = ?1", [seq]).unwrap();
    let (seq, bob_last_first, _, _) = commits(&raw, bob.as_str()).pop().unwrap();
    raw.execute("DELETE FROM commits WHERE seq = ?1", [seq]).unwrap();

    // when it is audited
    let (code, report) = audit_json(&w.path);

    // then both streams are named, at the first missing version (or, for the gap the store
    // detects, the version after it, with the missing one in the message)
    assert_eq!(code, 1);
    let broken = violations(&report, "hash_chain");
    let of = |s: &StreamId| broken.iter().find(|v| v.0.as_deref() == Some(s.as_str())).cloned();
    let (_, version, message) = of(&market).unwrap_or_else(|| panic!("{broken:?}"));
    assert!(
        version == Some(gone_first)
            || (version == Some(gone_last + 1) && message.contains(&format!("expected {gone_first}"))),
        "{version:?} {message}"
    );
    let (_, version, message) = of(&bob).unwrap_or_else(|| panic!("{broken:?}"));
    assert_eq!(version, Some(bob_last_first), "{message}");
    assert!(message.contains("missing"), "{message}");
    let (_, version, message) = of(&carol).unwrap_or_else(|| panic!("{broken:?}"));
    assert!(version.is_some_and(|v| (carol_first..=carol_last).contains(&v)), "{version:?} {message}");
    assert!(message.contains("unreadable"), "{message}");
}

#[actix_rt::test]
async fn a_fill_without_a_trade_keeps_the_chain_valid_but_fails_the_invariants() {
    // given the engine's store, and a fill for carol's resting bid appended through the store
    // port: correctly hash-chained, but no market ever traded it and nobody sold the BTC
    let w = write_store().await;
    let carol = StreamId::user(user(3));
    {
        let store = SqliteEventStore::open(&w.path).unwrap();
        let version = store.stream_version(&carol).await.unwrap();
        let quote = Amount(990 * 10);
        let trade = Trade {
            id: TradeId(1_000),
            maker_order: w.resting,
            maker_user: user(3),
            taker_order: OrderId(u64::MAX),
            taker_user: user(9),
            taker_side: Side::Sell,
            price: PriceTicks(990),
            qty: QtyLots(1),
            base_amount: Amount(1_000),
            quote_amount: quote,
            maker_fee: Bps(10).fee_on(quote),
            taker_fee: Bps(20).fee_on(quote),
        };
        let e = encode_user_event(&UserEvent::FillApplied { market: spec().id, order: w.resting, trade });
        let event = NewEvent::new(&SystemClock, Uuid::nil(), Uuid::nil(), e.event_type, e.schema_version, e.payload);
        let append = AppendRequest {
            stream: carol.clone(),
            expected_version: version,
            events: vec![event],
            outbox: vec![],
            idempotency_key: None,
        };
        store.append(append).await.unwrap();
    }

    // when it is audited
    let (code, report) = audit_json(&w.path);

    // then the chain holds, the fill is named as matching no trade, BTC is not conserved, and
    // the exit code is 1
    assert_eq!(code, 1);
    assert_eq!(violations(&report, "hash_chain"), vec![]);
    let unmatched = violations(&report, "fills_match_trades");
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(unmatched[0].0.as_deref(), Some(carol.as_str()));
    assert!(unmatched[0].2.contains("no market stream"), "{}", unmatched[0].2);
    let conservation = violations(&report, "conservation");
    assert!(conservation.iter().any(|v| v.2.starts_with("asset BTC")), "{conservation:?}");
}

#[actix_rt::test]
async fn inspect_prints_each_event_with_the_state_after_it() {
    // given the engine's store
    let w = write_store().await;
    let store = store_flag(&w.path);

    // when the market stream is inspected as JSON
    let (code, stdout, stderr) = hob(&["inspect", "market:BTC-USDT", "--store", &store, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();

    // then every event is listed in order, and after the last one carol's bid of 990 is the
    // best bid and nothing is offered (bob's remaining ask traded away or was cancelled)
    assert!(lines.len() > 5);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["version"], i as u64 + 1);
    }
    let last = &lines.last().unwrap()["state"];
    assert_eq!(last["best_bid"], 990, "{last}");
    assert!(last["resting_orders"].as_u64().unwrap() >= 1, "{last}");

    // and a user stream shows balances after each event, from --from on
    let (code, stdout, _) = hob(&["inspect", &StreamId::user(user(1)).to_string(), "--store", &store, "--from", "2"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("v2 "), "{stdout}");
    assert!(stdout.contains("\"USDT\":{\"available\""), "{stdout}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    // an unreachable MongoDB, a missing file and a bad stream name
    let unreachable = "mongodb://127.0.0.1:1/hob?serverSelectionTimeoutMS=300&connectTimeoutMS=300";
    let (code, _, stderr) = hob(&["audit", "--store", unreachable]);
    assert_eq!(code, 2);
    assert!(stderr.contains("mongodb database hob"), "{stderr}");
    let (code, _, stderr) = hob(&["audit", "--store", "sqlite:/nonexistent/hob.db"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no event store"), "{stderr}");
    let (code, _, _) = hob(&["inspect", "nope", "--store", "sqlite:/nonexistent/hob.db"]);
    assert_eq!(code, 2);
}
