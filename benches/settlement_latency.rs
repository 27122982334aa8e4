//! Match -> settled latency through the whole pipeline, on anvil mining a block every second.
//!
//! `cargo bench --bench settlement_latency` (needs `make tools`; `HOB_BENCH_TRADES` sets the
//! trade count, 60 by default). A maker rests a 1-lot sell and a taker takes it, one trade
//! every 330 ms (so trades fall at every phase of the block interval), each pair of users
//! signing its own orders. Each trade's latency is read from the event store, so no polling
//! adds to it: from the market's `market.Traded` event to the operator's
//! `operator.SettlementConfirmed` for the batch that settled it (confirmation depth 1), and to
//! the taker's `user.SettlementConfirmed` (its bought base is available). Also reports the gas
//! each batch used. The latency runs twice, each on its own anvil: with one batch in flight at
//! a time (`max_in_flight = 1`, the peer figure) and with the pipeline (`max_in_flight = 4`,
//! the default; `HOB_BENCH_IN_FLIGHT` sets it, `HOB_BENCH_PEER=0` skips the peer run,
//! `HOB_BENCH_LOG=1` prints hob's logs). Then the same market's trades/s in the default mode and in
//! `confirm-before-commit` mode (`HOB_BENCH_CONFIRM_TRADES`, 10 by default; ten times as many
//! in the default mode), crossing pairs sent back to back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{keccak256, Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;

use hob::chain::contract::{HobExchange, TestToken};
use hob::chain::eip712::{self, SignedOrder};
use hob::chain::order::{to_signed_order, SigningTerms};
use hob::chain::tools;
use hob::domain::{
    Amount, AssetId, Bps, MarketId, MarketSpec, NewOrder, OrderId, OrderType, PriceTicks, QtyLots, Side, StpMode,
    TimeInForce, TradeId, UserId,
};
use hob::engine::{Engine, EngineConfig, PlaceOrder};
use hob::events::{decode_market_event, EventStore, StreamId, SystemClock};
use hob::queue::inprocess::{DestinationConfig, InProcessQueue};
use hob::queue::operator_group;
use hob::settlement::nonce::{NonceEvent, Resolution};
use hob::settlement::payload::{decode_operator_event, SETTLEMENT_CONFIRMED, TX_FINAL};
use hob::settlement::policy::BatchPolicy;
use hob::settlement::{encode_order_auth, OperatorEvent, OperatorKey, RpcChain, SettlementConfig};
use hob::store::sqlite::SqliteEventStore;

type Error = Box<dyn std::error::Error>;

const MARKET: u32 = 1;
const BASE_LOT: u128 = 1_000_000_000_000_000;
const QUOTE_TICK: u128 = 10;
const PAIRS: usize = 10;
const EVERY: Duration = Duration::from_millis(330);

fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("BASE-QUOTE").expect("a valid id"),
        base: AssetId::new("BASE").expect("a valid symbol"),
        quote: AssetId::new("QUOTE").expect("a valid symbol"),
        base_lot: Amount(BASE_LOT),
        quote_tick: Amount(QUOTE_TICK),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000_000),
        min_notional: Amount(0),
        maker_fee: Bps(10),
        taker_fee: Bps(20),
    }
}

fn key(name: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(name.as_bytes())).expect("a hash is a valid key")
}

fn wallet(url: &alloy::transports::http::reqwest::Url, key: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(url.clone()).erased()
}

async fn exec<P: Provider, D: alloy::contract::CallDecoder>(
    call: alloy::contract::CallBuilder<P, D>,
) -> Result<(), Error> {
    let receipt = call.send().await?.get_receipt().await?;
    if !receipt.status() {
        return Err("reverted".into());
    }
    Ok(())
}

fn place(user: &PrivateKeySigner, domain: &alloy::sol_types::Eip712Domain, side: Side, nonce: u64) -> PlaceOrder {
    let order = NewOrder {
        id: OrderId(0),
        user: UserId(user.address().0 .0),
        side,
        order_type: OrderType::Limit { price: PriceTicks(100) },
        qty: QtyLots(1),
        tif: TimeInForce::Gtc,
        post_only: false,
        stp: StpMode::ExpireMaker,
    };
    let terms = SigningTerms { market: MARKET, max_fee: spec().max_fee_rate(false), nonce };
    let signed = to_signed_order(&order, terms).expect("signable");
    let signed = SignedOrder::sign(user, signed, domain).expect("signs");
    PlaceOrder {
        market: spec().id,
        side,
        order_type: order.order_type,
        qty: order.qty,
        tif: order.tif,
        post_only: false,
        stp: StpMode::ExpireMaker,
        client_order_id: None,
        nonce,
        auth: Some(encode_order_auth(&signed)),
    }
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_milliseconds().max(0) as u64
}

/// Sends `count` crossing pairs as fast as the engine takes them and answers trades/s, from
/// the first order to the last trade matched.
async fn trade_rate(
    engine: &Engine<SqliteEventStore, InProcessQueue>,
    pairs: &[(PrivateKeySigner, PrivateKeySigner)],
    domain: &alloy::sol_types::Eip712Domain,
    first_nonce: u64,
    count: usize,
) -> Result<f64, Error> {
    let market = StreamId::market(spec().id);
    let traded = || async {
        let events = engine.store().read_stream(&market, 1).await?;
        Ok::<usize, Error>(events.iter().filter(|e| e.event_type == "market.Traded").count())
    };
    let before = traded().await?;
    let start = Instant::now();
    for n in 0..count {
        let (maker, taker) = &pairs[n % PAIRS];
        let nonce = first_nonce + (n / PAIRS) as u64;
        engine.place(UserId(maker.address().0 .0), place(maker, domain, Side::Sell, nonce)).await?;
        engine.place(UserId(taker.address().0 .0), place(taker, domain, Side::Buy, nonce)).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while traded().await? < before + count {
        if Instant::now() > deadline {
            return Err("the compared trades did not all match within 5 minutes".into());
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

async fn run(trades: usize, compared: usize, max_in_flight: usize) -> Result<(), Error> {
    let anvil = tools::anvil()?.block_time(1).try_spawn()?;
    let url = anvil.endpoint_url();
    let admin_key = key("latency/admin");
    let admin = wallet(&url, &admin_key);
    let fund = |who: Address| {
        let admin = admin.clone();
        async move { admin.anvil_set_balance(who, U256::from(10u128.pow(21))).await }
    };
    fund(admin_key.address()).await?;
    let base = *TestToken::deploy(admin.clone(), "Base".into(), "BASE".into(), 18).await?.address();
    let quote = *TestToken::deploy(admin.clone(), "Quote".into(), "QUOTE".into(), 6).await?.address();
    let exchange = *HobExchange::deploy(admin.clone(), key("latency/fees").address(), 86_400).await?.address();
    let operator = OperatorKey::from_signer(key("latency/operator"));
    fund(operator.address()).await?;
    let ex = HobExchange::new(exchange, admin.clone());
    exec(ex.setOperator(operator.address(), true)).await?;
    exec(ex.registerMarket(MARKET, base, quote, BASE_LOT, QUOTE_TICK)).await?;
    let chain_id = admin.get_chain_id().await?;
    let domain = eip712::domain(chain_id, exchange);

    let dir = tempfile::tempdir()?;
    let clock = Arc::new(SystemClock);
    let store = Arc::new(SqliteEventStore::open(dir.path().join("hob.db"))?);
    let queue = Arc::new(InProcessQueue::new(clock.clone(), DestinationConfig::default()));
    let config = EngineConfig {
        markets: vec![spec()],
        settlement_group: operator_group(UserId(operator.address().0 .0)),
        snapshot_every: 10_000,
        relay_poll: Duration::from_millis(20),
    };
    let engine = Engine::start(config, store, queue, clock);
    let mut settlement = SettlementConfig::new(operator.clone(), exchange, chain_id);
    settlement.batch = BatchPolicy { window_ms: 50, ..BatchPolicy::default() };
    settlement.poll_interval = Duration::from_millis(20);
    settlement.max_in_flight = max_in_flight;
    let chain = Arc::new(RpcChain::connect_http(url.as_str())?);
    let handle = engine.start_settlement(settlement, chain).await?;

    // Pairs of users, funded on both sides (the vault on-chain, the engine off-chain).
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let (maker, taker) = (key(&format!("latency/maker{i}")), key(&format!("latency/taker{i}")));
        for (who, token, asset, amount) in
            [(&maker, base, spec().base, 1_000 * BASE_LOT), (&taker, quote, spec().quote, 1_000_000_000)]
        {
            fund(who.address()).await?;
            let p = wallet(&url, who);
            exec(TestToken::new(token, p.clone()).mint(who.address(), U256::from(amount))).await?;
            exec(TestToken::new(token, p.clone()).approve(exchange, U256::from(amount))).await?;
            exec(HobExchange::new(exchange, p).deposit(token, U256::from(amount))).await?;
            engine.deposit(UserId(who.address().0 .0), asset, Amount(amount)).await?;
        }
        pairs.push((maker, taker));
    }

    // The trades, one every EVERY.
    let start = Instant::now();
    for n in 0..trades {
        let (maker, taker) = &pairs[n % PAIRS];
        let nonce = (n / PAIRS) as u64 + 1;
        engine.place(UserId(maker.address().0 .0), place(maker, &domain, Side::Sell, nonce)).await?;
        engine.place(UserId(taker.address().0 .0), place(taker, &domain, Side::Buy, nonce)).await?;
        let next = start + EVERY * (n as u32 + 1);
        actix_rt::time::sleep(next.saturating_duration_since(Instant::now())).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while handle.inspect().await?.stats.settled_trades < trades as u64 {
        if Instant::now() > deadline {
            return Err("trades did not settle within a minute".into());
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }

    // Latencies from the stored events' times.
    let store = engine.store();
    let mut matched: Vec<(TradeId, DateTime<Utc>, UserId)> = Vec::new();
    for e in store.read_stream(&StreamId::market(spec().id), 1).await? {
        if let Ok(hob::domain::MarketEvent::Traded(t)) = decode_market_event(&e.event_type, e.schema_version, e.payload)
        {
            matched.push((t.id, e.occurred_at, t.taker_user));
        }
    }
    let mut confirmed_at = std::collections::BTreeMap::new();
    let (mut last_gas, mut batches) = (0, Vec::new());
    for e in store.read_stream(&StreamId::operator(UserId(operator.address().0 .0)), 1).await? {
        if e.event_type != SETTLEMENT_CONFIRMED && e.event_type != TX_FINAL {
            continue;
        }
        match decode_operator_event(&e.event_type, e.schema_version, e.payload)? {
            OperatorEvent::SettlementConfirmed { trades, .. } => {
                for k in &trades {
                    confirmed_at.insert(k.trade, e.occurred_at);
                }
                // The batch's transaction went final in the same append, just before.
                batches.push(format!("{last_gas}/{}", trades.len()));
            }
            OperatorEvent::Nonce(NonceEvent::Final { resolution: Resolution::Mined { gas_used, .. }, .. }) => {
                last_gas = gas_used;
            }
            _ => {}
        }
    }
    let mut to_operator = Histogram::<u64>::new(3)?;
    let mut to_user = Histogram::<u64>::new(3)?;
    for (trade, at, taker) in &matched {
        let Some(confirmed) = confirmed_at.get(trade) else { continue };
        to_operator.record(ms_between(*at, *confirmed))?;
        let user_events = store.read_stream(&StreamId::user(*taker), 1).await?;
        let available = user_events
            .iter()
            .find(|u| u.event_type == "user.SettlementConfirmed" && u.occurred_at >= *confirmed)
            .map(|u| u.occurred_at);
        if let Some(available) = available {
            to_user.record(ms_between(*at, available))?;
        }
    }
    println!(
        "settlement latency, anvil --block-time 1, confirmation depth 1, max_in_flight {max_in_flight}, {} trades:",
        matched.len()
    );
    for (what, h) in
        [("match -> operator.SettlementConfirmed", &to_operator), ("match -> taker's funds available", &to_user)]
    {
        println!(
            "  {what:40} p50 {:>5} ms  p90 {:>5} ms  p99 {:>5} ms  max {:>5} ms  (n = {})",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.max(),
            h.len()
        );
    }
    println!("  gas used / trades, per batch: {}", batches.join(", "));
    if compared == 0 {
        handle.stop();
        engine.shutdown();
        return Ok(());
    }

    // Trades/s of one market in each settlement mode, same chain, same engine, same users.
    let first_nonce = (trades / PAIRS) as u64 + 2;
    let fast = trade_rate(&engine, &pairs, &domain, first_nonce, compared * 10).await?;
    engine.set_confirm_before_commit(spec().id, true);
    let slow = trade_rate(&engine, &pairs, &domain, first_nonce + (compared * 10 / PAIRS) as u64 + 1, compared).await?;
    println!("trades/s of one market, crossing pairs sent back to back, anvil --block-time 1:");
    println!("  async (default)          {fast:>9.1} trades/s  ({} trades)", compared * 10);
    println!("  confirm-before-commit    {slow:>9.2} trades/s  ({compared} trades)");
    handle.stop();
    engine.shutdown();
    Ok(())
}

fn main() -> Result<(), Error> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a smoke test, shorter.
    let benching = std::env::args().any(|a| a == "--bench");
    if std::env::var("HOB_BENCH_LOG").is_ok() {
        tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).init();
    }
    let count = |var: &str, bench: usize, smoke: usize| {
        std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(if benching { bench } else { smoke })
    };
    let trades = count("HOB_BENCH_TRADES", 60, 6);
    let compared = count("HOB_BENCH_CONFIRM_TRADES", 10, 2);
    // The peer figure first (one batch in flight), then the pipeline, same workload.
    if count("HOB_BENCH_PEER", 1, 1) == 1 {
        actix_rt::System::new().block_on(run(trades, 0, 1))?;
    }
    let in_flight = count("HOB_BENCH_IN_FLIGHT", hob::settlement::config::DEFAULT_MAX_IN_FLIGHT, 4);
    actix_rt::System::new().block_on(run(trades, compared, in_flight))
}
