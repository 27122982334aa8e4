//! `hob audit` throughput (events/s) on a store of real event streams, against the raw scans
//! it is built on, measured in the same run: `read_stream_raw` over every stream (what actor
//! replay reads, no checks), `read_stream_sealed` over every stream (the auditor's read, no
//! checks), and the full audit (hash chain, replay of every actor through the domain folds,
//! every invariant).
//!
//! The store is written first through the `EventStore` port: users and one market driven by
//! the real deciders (`UserState::decide`, `Market::execute`), so every stream is what the
//! actors would have stored and the audit passes. `HOB_AUDIT_EVENTS` sets the size (default
//! 1,000,000 events), `HOB_AUDIT_RUNS` the measured runs (default 3).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::DateTime;
use hob::audit::audit;
use hob::domain::{
    Amount, AssetId, Bps, Market, MarketCommand, MarketEvent, MarketId, MarketSpec, NewOrder, OrderId, OrderRequest,
    OrderType, PriceTicks, QtyLots, Side, StpMode, TimeInForce, TimestampMs, UserCommand, UserId, UserState,
};
use hob::events::user_payload::encode_user_event;
use hob::events::{AppendRequest, EventStore, ManualClock, NewEvent, StreamId};
use hob::store::SqliteEventStore;
use uuid::Uuid;

// As in the `hob` binary, so the figure is what `hob audit` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USERS: u8 = 100;
const APPEND: usize = 4_096;

fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("BTC-USDT").expect("valid id"),
        base: AssetId::new("BTC").expect("valid id"),
        quote: AssetId::new("USDT").expect("valid id"),
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000_000),
        min_notional: Amount(0),
        maker_fee: Bps(10),
        taker_fee: Bps(20),
    }
}

/// Per stream, the events to store, in order.
#[derive(Default)]
struct Streams {
    users: BTreeMap<u8, Vec<NewEvent>>,
    market: Vec<NewEvent>,
    count: usize,
}

struct Writer {
    clock: ManualClock,
    streams: Streams,
    states: Vec<UserState>,
    market: Market,
    owner: HashMap<OrderId, u8>,
    rng: u64,
}

impl Writer {
    fn new() -> Writer {
        let start = DateTime::from_timestamp_micros(1_700_000_000_000_000).expect("in range");
        Writer {
            clock: ManualClock::new(start),
            streams: Streams::default(),
            states: (0..USERS).map(|u| UserState::new(UserId([u + 1; 20]))).collect(),
            market: Market::new(spec()),
            owner: HashMap::new(),
            rng: 42,
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn user(&mut self, u: u8, command: UserCommand<'_>) {
        let Ok(events) = self.states[u as usize].decide(command) else { return };
        for e in events {
            self.states[u as usize].apply(&e).expect("decided events apply");
            let w = encode_user_event(&e);
            let event = NewEvent::new(&self.clock, Uuid::nil(), Uuid::nil(), w.event_type, w.schema_version, w.payload);
            self.streams.users.entry(u).or_default().push(event);
            self.streams.count += 1;
        }
    }

    fn market(&mut self, command: MarketCommand) {
        let spec = spec();
        let mut out = Vec::new();
        self.market.execute(command, TimestampMs(1), &mut out);
        for e in &out {
            let mut involved = Vec::with_capacity(2);
            match e {
                MarketEvent::Traded(t) => {
                    involved.push(t.maker_user.0[0] - 1);
                    involved.push(t.taker_user.0[0] - 1);
                }
                MarketEvent::Accepted(o) => involved.push(o.user.0[0] - 1),
                MarketEvent::Rested { order, .. }
                | MarketEvent::Filled { order }
                | MarketEvent::Cancelled { order, .. }
                | MarketEvent::Expired { order, .. }
                | MarketEvent::Amended { order, .. }
                | MarketEvent::Rejected { order, .. } => involved.extend(self.owner.get(order).copied()),
                MarketEvent::Halted | MarketEvent::Resumed => {}
            }
            involved.dedup();
            for u in involved {
                self.user(u, UserCommand::ApplyMarket { spec: &spec, event: e });
            }
            self.streams.market.push(NewEvent::market(&self.clock, Uuid::nil(), Uuid::nil(), e));
            self.streams.count += 1;
        }
    }

    /// Deposits, then random limit orders around 1,000 ticks, and a cancel of the placing
    /// user's oldest open order every third step.
    fn run(mut self, events: usize) -> Streams {
        let spec = spec();
        for u in 0..USERS {
            self.user(u, UserCommand::Deposit { asset: spec.quote, amount: Amount(u128::from(u64::MAX)) });
            self.user(u, UserCommand::Deposit { asset: spec.base, amount: Amount(u128::from(u64::MAX)) });
        }
        let mut id = 0u64;
        while self.streams.count < events {
            let r = self.next();
            let u = (r % u64::from(USERS)) as u8;
            if r.is_multiple_of(3) {
                let oldest = self.states[u as usize].open_orders().next().map(|(order, _)| order);
                if let Some(order) = oldest {
                    self.user(u, UserCommand::Cancel { market: spec.id, order });
                    self.market(MarketCommand::Cancel { order, user: UserId([u + 1; 20]) });
                    continue;
                }
            }
            id += 1;
            let side = if (r >> 8).is_multiple_of(2) { Side::Buy } else { Side::Sell };
            let order = NewOrder {
                id: OrderId(id),
                user: UserId([u + 1; 20]),
                side,
                order_type: OrderType::Limit { price: PriceTicks(990 + (r >> 16) % 21) },
                qty: QtyLots(1 + (r >> 24) % 5),
                tif: TimeInForce::Gtc,
                post_only: false,
                stp: StpMode::ExpireMaker,
            };
            self.owner.insert(order.id, u);
            let request = OrderRequest { market: spec.id, order, client_order_id: None, nonce: id, auth: None };
            self.user(u, UserCommand::Place { spec: &spec, request });
            self.market(MarketCommand::Place(order));
        }
        self.streams
    }
}

async fn write(store: &SqliteEventStore, streams: Streams) {
    let mut all: Vec<(StreamId, Vec<NewEvent>)> =
        streams.users.into_iter().map(|(u, events)| (StreamId::user(UserId([u + 1; 20])), events)).collect();
    all.push((StreamId::market(spec().id), streams.market));
    for (stream, events) in all {
        let mut version = 0u64;
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            let chunk: Vec<NewEvent> = events.by_ref().take(APPEND).collect();
            let n = chunk.len() as u64;
            let request = AppendRequest {
                stream: stream.clone(),
                expected_version: version,
                events: chunk,
                outbox: vec![],
                idempotency_key: None,
            };
            store.append(request).await.expect("append");
            version += n;
        }
    }
}

/// Reads every stream; `sealed` reads the auditor's way, and `chain` also walks each hash chain.
async fn scan(store: &SqliteEventStore, sealed: bool, chain: bool) -> u64 {
    let mut n = 0u64;
    for stream in store.list_streams().await.expect("list") {
        let mut from = 1;
        let mut walk = hob::audit::chain::ChainWalk::new(stream.clone());
        loop {
            let got = if sealed {
                let page = store.read_stream_sealed(&stream, from, hob::audit::AUDIT_PAGE).await.expect("read");
                if chain {
                    for e in &page {
                        walk.next(e).expect("intact chain");
                    }
                }
                page.len()
            } else {
                store.read_stream_raw(&stream, from, hob::audit::AUDIT_PAGE).await.expect("read").len()
            };
            n += got as u64;
            from += got as u64;
            if got < hob::audit::AUDIT_PAGE {
                break;
            }
        }
    }
    n
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with a small store.
    let testing = !std::env::args().any(|a| a == "--bench");
    let events = if testing { 20_000 } else { env("HOB_AUDIT_EVENTS", 1_000_000) };
    let runs = if testing { 1 } else { env("HOB_AUDIT_RUNS", 3) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteEventStore::open(dir.path().join("audit.db")).expect("store");
    let t = Instant::now();
    let streams = Writer::new().run(events);
    let total = streams.count;
    rt.block_on(write(&store, streams));
    println!("store: {total} events in {} streams, written in {:.1}s", USERS as usize + 1, t.elapsed().as_secs_f64());

    let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for _ in 0..runs {
        let scans = [
            ("scan read_stream_raw", false, false),
            ("scan read_stream_sealed", true, false),
            ("scan read_stream_sealed + hash chain", true, true),
        ];
        for (name, sealed, chain) in scans {
            let t = Instant::now();
            let n = rt.block_on(scan(&store, sealed, chain));
            rates.entry(name).or_default().push(n as f64 / t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        let report = rt.block_on(audit(&store, |_| {})).expect("audit");
        let secs = t.elapsed().as_secs_f64();
        assert!(report.ok(), "{}", report.to_text());
        rates.entry("hob audit (all checks)").or_default().push(report.events as f64 / secs);
    }
    println!("| what | events/s (median of {runs}) | best |");
    println!("| --- | ---: | ---: |");
    for (name, mut r) in rates {
        r.sort_by(f64::total_cmp);
        println!("| {name} | {:.2}M | {:.2}M |", r[r.len() / 2] / 1e6, r[r.len() - 1] / 1e6);
    }
}
