//! The durable path and replay, on the embedded default (SQLite with group commit, in-process
//! queues, real actors):
//!
//! - durable: N users place orders concurrently (half of them crossing) in 1 and 4 markets;
//!   time from the first place to the last fill applied and committed. In the same run, this
//!   disk's raw limit: the same number of bytes appended sequentially with the same number of
//!   fsyncs the store made, and the ratio.
//! - replay: a market stream of `HOB_REPLAY_EVENTS` events (default 1M) read and applied.
//! - online: an actor whose stream has `HOB_ONLINE_EVENTS` events (default 10M) back online
//!   from a snapshot 10,000 events behind the head (the default snapshot interval).
//!
//! `cargo bench --bench pipeline`; `HOB_BENCH_ORDERS` sets the orders (default 20,000),
//! `HOB_BENCH_USERS` the users placing them concurrently (default 200).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hob::actors::consumed::{ActorSnapshot, Consumed};
use hob::actors::deps::sha256;
use hob::actors::market::MarketActor;
use hob::actors::{ActorDeps, Counters};
use hob::domain::{
    Amount, AssetId, Bps, Market, MarketCommand, MarketEvent, MarketId, MarketSpec, NewOrder, OrderId, OrderType,
    PriceTicks, QtyLots, Side, StpMode, TimeInForce, TimestampMs, UserId,
};
use hob::engine::{Engine, EngineConfig, PlaceOrder};
use hob::events::market_snapshot::encode_market_snapshot;
use hob::events::Snapshot;
use hob::events::{AppendRequest, EventStore, NewEvent, StreamId, SystemClock};
use hob::queue::inprocess::{DestinationConfig, InProcessQueue};
use hob::queue::{MARKET_QUEUE, USER_QUEUE};
use hob::store::sqlite::SqliteEventStore;
use uuid::Uuid;

// The same allocator as the `hob` binary: the store's writer thread frees what the actors
// allocated, which glibc's malloc serialises on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn spec(name: &str) -> MarketSpec {
    MarketSpec {
        id: MarketId::new(name).expect("valid literal"),
        base: AssetId::new(&name[..3]).expect("valid literal"),
        quote: AssetId::new("USDT").expect("valid literal"),
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000_000),
        min_notional: Amount(0),
        maker_fee: Bps(10),
        taker_fee: Bps(20),
    }
}

fn user(n: u32) -> UserId {
    let mut bytes = [0u8; 20];
    bytes[16..].copy_from_slice(&n.to_be_bytes());
    UserId(bytes)
}

type BenchEngine = Engine<SqliteEventStore, InProcessQueue>;

async fn quiesce(engine: &BenchEngine) {
    let mut calm = 0;
    while calm < 3 {
        let unpublished = engine.store().fetch_unpublished(1).await.map(|v| v.len()).unwrap_or(1);
        let busy: usize = [MARKET_QUEUE, USER_QUEUE].iter().map(|d| engine.queue().depth(d)).sum();
        calm = if unpublished == 0 && busy == 0 { calm + 1 } else { 0 };
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn durable(markets: usize, orders: usize, users: u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db");
    let clock = Arc::new(SystemClock);
    let store = Arc::new(SqliteEventStore::open(&path).expect("open store"));
    let queue = Arc::new(InProcessQueue::new(clock.clone(), DestinationConfig::default()));
    let names = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT"];
    let specs: Vec<MarketSpec> = names[..markets].iter().map(|n| spec(n)).collect();
    let config = EngineConfig {
        markets: specs.clone(),
        settlement_group: "operator:bench".into(),
        snapshot_every: 10_000,
        relay_poll: Duration::from_millis(50),
    };
    let engine = Arc::new(Engine::start(config, store.clone(), queue, clock));
    for u in 0..users {
        engine.deposit(user(u), AssetId::new("USDT").expect("valid"), Amount(u64::MAX as u128)).await.expect("fund");
        for s in &specs {
            engine.deposit(user(u), s.base, Amount(u64::MAX as u128)).await.expect("fund");
        }
    }
    quiesce(&engine).await;
    let before = store.stats();
    let start = Instant::now();
    let per_user = orders / users as usize;
    let mut tasks = Vec::new();
    for u in 0..users {
        let engine = engine.clone();
        let specs = specs.clone();
        tasks.push(actix_rt::spawn(async move {
            for i in 0..per_user {
                let s = &specs[(i + u as usize) % specs.len()];
                let side = if (i + u as usize).is_multiple_of(2) { Side::Buy } else { Side::Sell };
                let order = PlaceOrder {
                    market: s.id,
                    side,
                    order_type: OrderType::Limit { price: PriceTicks(1_000 + (i % 7) as u64) },
                    qty: QtyLots(1 + (i % 5) as u64),
                    tif: TimeInForce::Gtc,
                    post_only: false,
                    stp: StpMode::ExpireMaker,
                    client_order_id: None,
                    nonce: i as u64 + 1,
                    auth: None,
                };
                engine.place(user(u), order).await.expect("place");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let accepted = start.elapsed();
    quiesce(&engine).await;
    let total = start.elapsed();
    let after = store.stats();
    let placed = per_user * users as usize;
    let batches = after.batches - before.batches;
    let jobs = after.jobs - before.jobs;
    let db_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(path.with_extension("db-wal")).map(|m| m.len()).unwrap_or(0);
    let raw = raw_append(dir.path(), db_bytes as usize, batches as usize);
    println!(
        "| {markets} | {users} | {placed} | {:.0} | {:.0} | {batches} | {:.1} | {:.0} | {:.2} |",
        placed as f64 / accepted.as_secs_f64(),
        placed as f64 / total.as_secs_f64(),
        jobs as f64 / batches.max(1) as f64,
        placed as f64 / raw.as_secs_f64(),
        raw.as_secs_f64() / total.as_secs_f64(),
    );
    engine.shutdown();
}

/// This disk's limit for the same work: `bytes` appended sequentially in `fsyncs` equal
/// chunks, each followed by an fsync.
fn raw_append(dir: &std::path::Path, bytes: usize, fsyncs: usize) -> Duration {
    let fsyncs = fsyncs.max(1);
    let chunk = vec![0xA5u8; (bytes / fsyncs).max(1)];
    let mut file = std::fs::File::create(dir.join("raw.bin")).expect("raw file");
    let start = Instant::now();
    for _ in 0..fsyncs {
        file.write_all(&chunk).expect("write");
        file.sync_data().expect("fsync");
    }
    start.elapsed()
}

/// A market stream of `events` real events (rest, trade, cancel) made by the real core; if
/// `snapshot_behind` is set, a snapshot of the market that many events before the head.
struct BuiltStream {
    _dir: tempfile::TempDir,
    store: Arc<SqliteEventStore>,
    spec: MarketSpec,
    version: u64,
    resting: usize,
    written: Duration,
}

async fn build_stream(events: usize, snapshot_behind: Option<usize>) -> BuiltStream {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteEventStore::open(dir.path().join("replay.db")).expect("open store"));
    let spec = spec("BTC-USDT");
    let stream = StreamId::market(spec.id);
    let mut market = Market::new(spec.clone());
    let mut pending: Vec<MarketEvent> = Vec::new();
    let mut version = 0u64;
    let mut id = 0u64;
    let clock = SystemClock;
    let mut snapshot: Option<(u64, Vec<u8>)> = None;
    let snapshot_at = snapshot_behind.map(|behind| events.saturating_sub(behind) as u64);
    let start = Instant::now();
    while (version as usize) < events {
        id += 1;
        let side = if id.is_multiple_of(2) { Side::Buy } else { Side::Sell };
        let command = if id.is_multiple_of(5) {
            MarketCommand::Cancel { order: OrderId(id - 3), user: user((id - 3) as u32 % 50) }
        } else {
            MarketCommand::Place(NewOrder {
                id: OrderId(id),
                user: user(id as u32 % 50),
                side,
                order_type: OrderType::Limit { price: PriceTicks(1_000 + id % 9) },
                qty: QtyLots(1 + id % 4),
                tif: TimeInForce::Gtc,
                post_only: false,
                stp: StpMode::ExpireMaker,
            })
        };
        market.execute(command, TimestampMs(0), &mut pending);
        let applied = version + pending.len() as u64;
        if snapshot.is_none() && snapshot_at.is_some_and(|at| applied >= at) && (applied as usize) <= events {
            let state = ActorSnapshot::encode(&Consumed::default(), encode_market_snapshot(&market));
            snapshot = Some((applied, state));
        }
        if pending.len() >= 2_000
            || (version as usize + pending.len()) >= events
            || snapshot.as_ref().is_some_and(|s| s.0 == applied && applied > version)
        {
            let n = pending.len().min(events - version as usize);
            let batch: Vec<NewEvent> =
                pending.drain(..).take(n).map(|e| NewEvent::market(&clock, Uuid::nil(), Uuid::nil(), &e)).collect();
            let request = AppendRequest {
                stream: stream.clone(),
                expected_version: version,
                events: batch,
                outbox: vec![],
                idempotency_key: None,
            };
            version = store.append(request).await.expect("append").last_version;
        }
    }
    if let Some((at, state)) = snapshot {
        let snapshot = Snapshot { stream: stream.clone(), version: at, state_hash: sha256(&state), state };
        store.save_snapshot(snapshot).await.expect("snapshot");
    }
    BuiltStream { _dir: dir, store, spec, version, resting: market.book().len(), written: start.elapsed() }
}

fn deps(store: &Arc<SqliteEventStore>) -> Arc<ActorDeps<SqliteEventStore>> {
    Arc::new(ActorDeps {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        outbox_wake: Arc::new(tokio::sync::Notify::new()),
        settlement_group: "operator:bench".into(),
        snapshot_every: 0,
        counters: Arc::new(Counters::default()),
    })
}

/// Replay: the whole stream read and applied, no snapshot.
async fn replay(events: usize) {
    let built = build_stream(events, None).await;
    let start = Instant::now();
    let actor = MarketActor::load(built.spec.clone(), deps(&built.store)).await.expect("replay");
    let took = start.elapsed();
    drop(actor);
    println!(
        "| {} | {:.2} s | {:.0} | {} | {:.1} s |",
        built.version,
        took.as_secs_f64(),
        built.version as f64 / took.as_secs_f64(),
        built.resting,
        built.written.as_secs_f64()
    );
}

/// Back online: the latest snapshot (`behind` events before the head) plus the events after it.
async fn online(events: usize, behind: usize) {
    let built = build_stream(events, Some(behind)).await;
    let start = Instant::now();
    let actor = MarketActor::load(built.spec.clone(), deps(&built.store)).await.expect("load from snapshot");
    let took = start.elapsed();
    drop(actor);
    println!(
        "| {} | {behind} | {} | {:.1} ms | {:.1} s |",
        built.version,
        built.resting,
        took.as_secs_f64() * 1e3,
        built.written.as_secs_f64()
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing quick to check here
    }
    let orders: usize = std::env::var("HOB_BENCH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let replay_events: usize =
        std::env::var("HOB_REPLAY_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let users: u32 = std::env::var("HOB_BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let online_events: usize =
        std::env::var("HOB_ONLINE_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    actix_rt::System::new().block_on(async move {
        println!("\n## Durable path ({orders} orders)\n");
        println!("| markets | users | orders | accepted/s | matched+committed/s | fsync batches | jobs/batch | raw-append orders/s | ratio |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        if orders > 0 {
            durable(1, orders, users).await;
            durable(4, orders, users).await;
        }
        if replay_events > 0 {
            println!("\n## Replay (no snapshot)\n");
            println!("| events | read + decode + apply | events/s | resting orders | written in |");
            println!("| ---: | ---: | ---: | ---: | ---: |");
            replay(replay_events).await;
        }
        if online_events > 0 {
            println!("\n## Back online (snapshot + later events)\n");
            println!("| events | snapshot behind head | resting orders | online in | written in |");
            println!("| ---: | ---: | ---: | ---: | ---: |");
            online(online_events, 10_000).await;
        }
    });
}
