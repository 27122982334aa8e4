//! The operators among several nodes (`actors::singleton`): two engines on one SecantusDB
//! and one set of SQS FIFO queues (moto) both start the settlement operator of one wallet;
//! only the holder of its lease runs it, the other stands by and says where it runs, and
//! when the holder stops, the standby takes the operator over and settles the next trade on
//! anvil with the wallet's next nonce: none reused, none skipped.
//!
//! The lease expiring (a node that stopped renewing, e.g. killed) is specified on the lease
//! itself, on the in-memory store with a manual clock, at the end.
//!
//! Test code unwraps: a failure should fail the test.

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/servers.rs"]
mod servers;
mod settlement_support;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::sol_types::Eip712Domain;
use chrono::{TimeDelta, TimeZone, Utc};

use hob::actors::leases::{LeaseConfig, Leases, NodeId};
use hob::actors::settlement::{OperatorView, SettlementHandle};
use hob::actors::singleton::{Placement, SingletonLease};
use hob::actors::ActorError;
use hob::chain::contract::{HobExchange, TestToken};
use hob::chain::eip712;
use hob::domain::{Amount, AssetId, Side, UserId};
use hob::engine::{Engine, EngineConfig};
use hob::events::{EventStore, ManualClock, StreamId, SystemClock};
use hob::queue::{operator_group, SqsConfig, SqsCredentials, SqsQueue, SqsQueueNames};
use hob::settlement::nonce::NonceEvent;
use hob::settlement::payload::decode_operator_event;
use hob::settlement::{Chain, OperatorEvent, OperatorKey, RpcChain};
use hob::store::{MemoryEventStore, MongoEventStore};
use settlement_support::*;

type Node = Engine<MongoEventStore, SqsQueue>;
type Operator = SettlementHandle<MongoEventStore, RpcChain>;

/// Short, so a standby asks for the lease every 500 ms; long enough that a renewal pass on
/// a busy machine never comes too late.
const LEASE_TTL: Duration = Duration::from_millis(1_500);
const LIMIT: Duration = Duration::from_secs(30);
const ESCAPE_PERIOD_S: u64 = 86_400;

// ---------------------------------------------------------------------------------------------
// One SecantusDB and one moto for the file
// ---------------------------------------------------------------------------------------------

fn mongo() -> &'static servers::Spawned {
    static SERVER: OnceLock<servers::Spawned> = OnceLock::new();
    SERVER.get_or_init(servers::secantus)
}

fn moto() -> &'static servers::Spawned {
    static SERVER: OnceLock<servers::Spawned> = OnceLock::new();
    // Serial: two nodes receive from the same FIFO groups (see `servers::moto_serial`).
    SERVER.get_or_init(servers::moto_serial)
}

fn sqs_config(prefix: &str) -> SqsConfig {
    SqsConfig {
        endpoint: Some(format!("http://127.0.0.1:{}", moto().port)),
        region: "us-east-1".into(),
        // moto accepts any keys; fixed ones keep the test off the machine's AWS profile.
        credentials: Some(SqsCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        }),
        queue_names: SqsQueueNames::with_prefix(prefix),
        create_queues: true,
        // Standby nodes hand market and user records back while the other node hosts them.
        max_receive_count: 100,
        visibility_timeout: Duration::from_secs(5),
        // Short polls: the serial moto would be held by a long one.
        wait_time: Duration::ZERO,
    }
}

/// One node: its own connections to the shared store and queues, its own lease owner name.
async fn start_node(name: &str, db: &str, prefix: &str, operator: Address) -> Node {
    let uri = format!("mongodb://127.0.0.1:{}/?replicaSet=secantus", mongo().port);
    let store = Arc::new(MongoEventStore::connect(&uri, db).await.unwrap());
    let queue = Arc::new(SqsQueue::connect(sqs_config(prefix)).await.unwrap());
    let config = EngineConfig {
        markets: vec![spec()],
        settlement_group: operator_group(UserId(operator.0 .0)),
        snapshot_every: 1_000,
        relay_poll: Duration::from_millis(20),
    };
    let leases = LeaseConfig { node: NodeId::new(name).unwrap(), ttl: LEASE_TTL };
    Engine::start_leased(config, store, queue, Arc::new(SystemClock), Some(leases))
}

// ---------------------------------------------------------------------------------------------
// The chain: one exchange, one market, a funded operator and two funded traders
// ---------------------------------------------------------------------------------------------

fn provider(key: &alloy::signers::local::PrivateKeySigner) -> DynProvider {
    let url = anvil::anvil().endpoint_url();
    ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(url).erased()
}

async fn exec<P: Provider, D: alloy::contract::CallDecoder>(call: alloy::contract::CallBuilder<P, D>) {
    let pending = call.send().await.unwrap_or_else(|e| panic!("transaction refused: {e}"));
    let receipt = pending.get_receipt().await.expect("a receipt");
    assert!(receipt.status(), "reverted: {receipt:?}");
}

struct Venue {
    admin: DynProvider,
    exchange: Address,
    base: Address,
    quote: Address,
    chain_id: u64,
    operator: OperatorKey,
    domain: Eip712Domain,
    alice: Trader,
    bob: Trader,
}

impl Venue {
    async fn deploy(name: &str) -> Venue {
        let admin_key = key(&format!("{name}/admin"));
        let admin = provider(&admin_key);
        let funding = U256::from(10u128.pow(21));
        admin.anvil_set_balance(admin_key.address(), funding).await.unwrap();
        let fees = key(&format!("{name}/fees")).address();
        let base = *TestToken::deploy(admin.clone(), "Base".into(), "BASE".into(), 18).await.unwrap().address();
        let quote = *TestToken::deploy(admin.clone(), "Quote".into(), "QUOTE".into(), 6).await.unwrap().address();
        let exchange = *HobExchange::deploy(admin.clone(), fees, ESCAPE_PERIOD_S).await.unwrap().address();
        let operator = operator_key(&format!("{name}/operator"));
        admin.anvil_set_balance(operator.address(), funding).await.unwrap();
        let ex = HobExchange::new(exchange, admin.clone());
        exec(ex.setOperator(operator.address(), true)).await;
        exec(ex.registerMarket(CHAIN_MARKET, base, quote, BASE_LOT, QUOTE_TICK)).await;
        let chain_id = admin.get_chain_id().await.unwrap();
        Venue {
            admin,
            exchange,
            base,
            quote,
            chain_id,
            domain: eip712::domain(chain_id, exchange),
            operator,
            alice: Trader::new(&format!("{name}/alice")),
            bob: Trader::new(&format!("{name}/bob")),
        }
    }

    /// Mints, approves and deposits into the vault, and credits the engine the same.
    async fn deposit(&self, node: &Node, trader: &Trader, token: Address, asset: AssetId, amount: u128) {
        self.admin.anvil_set_balance(trader.address(), U256::from(10u128.pow(21))).await.unwrap();
        let p = provider(&trader.key);
        exec(TestToken::new(token, p.clone()).mint(trader.address(), U256::from(amount))).await;
        exec(TestToken::new(token, p.clone()).approve(self.exchange, U256::from(amount))).await;
        exec(HobExchange::new(self.exchange, p).deposit(token, U256::from(amount))).await;
        node.deposit(trader.user, asset, Amount(amount)).await.unwrap();
    }

    async fn start_operator(&self, node: &Node) -> Operator {
        let chain = Arc::new(RpcChain::connect_http(anvil::anvil().endpoint_url().as_str()).unwrap());
        let config = fast_config(self.operator.clone(), self.exchange, self.chain_id, Duration::from_secs(30));
        node.start_settlement(config, chain).await.unwrap()
    }

    async fn chain_nonce(&self) -> u64 {
        let chain = RpcChain::connect_http(anvil::anvil().endpoint_url().as_str()).unwrap();
        chain.nonce_counts(self.operator.address()).await.unwrap().latest
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting and reading
// ---------------------------------------------------------------------------------------------

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `operator` runs on its node and has settled `trades` trades in all, with
/// nothing pending or in flight.
async fn settled(operator: &Operator, trades: u64) -> OperatorView {
    eventually(&format!("{trades} trades are settled"), async || {
        let view = operator.inspect().await.ok()?;
        let idle = view.pending_trades == 0 && view.batch.is_none() && view.in_flight.is_empty();
        (view.stats.settled_trades >= trades && idle).then_some(view)
    })
    .await
}

/// The nonce events of the operator's stream, in order.
async fn nonce_events(node: &Node, operator: Address) -> Vec<NonceEvent> {
    let stream = StreamId::operator(UserId(operator.0 .0));
    let stored = node.store().read_stream(&stream, 1).await.unwrap();
    stored
        .into_iter()
        .filter(|e| e.event_type != "actor.Consumed")
        .filter_map(|e| match decode_operator_event(&e.event_type, e.schema_version, e.payload).unwrap() {
            OperatorEvent::Nonce(n) => Some(n),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Two nodes, one operator
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn given_two_nodes_when_the_operator_holder_stops_then_the_standby_settles_the_next_trade_with_the_next_nonce() {
    // given a venue on anvil and two nodes on one store and one set of queues, both starting
    // the settlement operator of the same wallet
    let v = Venue::deploy("operator-leases").await;
    let (db, prefix) = (format!("operators_{}", std::process::id()), format!("ol{}-", std::process::id()));
    let a = start_node("node-a", &db, &prefix, v.operator.address()).await;
    let a_operator = v.start_operator(&a).await;
    eventually("node A runs the operator", async || a_operator.running().then_some(())).await;
    let b = start_node("node-b", &db, &prefix, v.operator.address()).await;
    let b_operator = v.start_operator(&b).await;

    // then only A runs it, and B says A does
    actix_rt::time::sleep(LEASE_TTL).await;
    assert!(a_operator.running(), "A keeps the operator while it renews its lease");
    assert!(!b_operator.running(), "B stands by");
    assert_eq!(b_operator.placement().await, Placement::Elsewhere { owner: Some("node-a".to_owned()) });
    match b_operator.inspect().await {
        Err(ActorError::HostedElsewhere { owner, .. }) => assert_eq!(owner.as_deref(), Some("node-a")),
        other => panic!("B's operator should be hosted elsewhere, got {other:?}"),
    }

    // when a trade matches, A settles it
    v.deposit(&a, &v.alice, v.quote, quote(), 1_000_000_000).await;
    v.deposit(&a, &v.bob, v.base, base(), 100 * BASE_LOT).await;
    a.place(v.bob.user, v.bob.limit(&v.domain, Side::Sell, 100, 10, 1)).await.unwrap();
    a.place(v.alice.user, v.alice.limit(&v.domain, Side::Buy, 100, 4, 1)).await.unwrap();
    let on_a = settled(&a_operator, 1).await;
    assert!(!b_operator.running(), "B never ran the operator meanwhile");

    // and when A stops (its leases given up), B takes the operator over
    a.shutdown();
    a.release_leases().await;
    eventually("node B runs the operator", async || b_operator.running().then_some(())).await;
    assert_eq!(b_operator.placement().await, Placement::Here);

    // then the next trade, placed on B, is settled by B with the wallet's next nonce
    b.place(v.alice.user, v.alice.limit(&v.domain, Side::Buy, 100, 3, 2)).await.unwrap();
    let on_b = settled(&b_operator, 2).await;
    assert!(on_b.version > on_a.version, "B continued A's stream");
    assert_eq!(on_b.next_nonce, on_a.next_nonce + 1, "one more transaction, one more nonce");

    // and every nonce the wallet used was handed out once, in order, and mined
    let events = nonce_events(&b, v.operator.address()).await;
    let signed: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            NonceEvent::Signed { nonce, .. } => Some(*nonce),
            _ => None,
        })
        .collect();
    let finals: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            NonceEvent::Final { nonce, .. } => Some(*nonce),
            _ => None,
        })
        .collect();
    let used: Vec<u64> = (0..on_b.next_nonce).collect();
    assert_eq!(signed, used, "each nonce signed once, none skipped: {events:?}");
    assert_eq!(finals, used, "each nonce final once: {events:?}");
    assert!(!events.iter().any(|e| matches!(e, NonceEvent::Synced { .. })), "no nonce used outside the stream");
    assert_eq!(v.chain_nonce().await, on_b.next_nonce, "the chain mined exactly the nonces the stream holds");
    b.shutdown();
}

// ---------------------------------------------------------------------------------------------
// The lease itself: expiry moves it
// ---------------------------------------------------------------------------------------------

fn lease_of(
    name: &str,
    store: &Arc<MemoryEventStore>,
    clock: &Arc<ManualClock>,
) -> (Arc<Leases<MemoryEventStore>>, SingletonLease<MemoryEventStore>) {
    let config = LeaseConfig { node: NodeId::new(name).unwrap(), ttl: Duration::from_secs(3) };
    let leases = Arc::new(Leases::new(store.clone(), clock.clone(), config));
    let operator = StreamId::operator(UserId([7; 20]));
    (leases.clone(), SingletonLease::new(Some(leases), operator))
}

#[actix_rt::test]
async fn given_a_node_holds_an_operator_lease_when_it_stops_renewing_past_the_ttl_then_the_standby_takes_it_and_the_holder_stops(
) {
    // given node A holding the operator's lease, and B standing by
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()));
    let (a_leases, a) = lease_of("node-a", &store, &clock);
    let (_b_leases, b) = lease_of("node-b", &store, &clock);
    a.until_held().await;
    assert_eq!(a.placement().await, Placement::Here);
    assert_eq!(b.placement().await, Placement::Elsewhere { owner: Some("node-a".to_owned()) });
    let standby = tokio::time::timeout(Duration::from_millis(50), b.until_held()).await;
    assert!(standby.is_err(), "B cannot take a live lease");

    // when A stops renewing (frozen, killed) and the ttl passes
    clock.advance(TimeDelta::seconds(4));

    // then B takes the lease at its next try, and A's next renewal pass finds it lost, so
    // A's operator stops
    tokio::time::timeout(Duration::from_secs(1), b.until_held()).await.expect("B takes the expired lease");
    assert_eq!(b.placement().await, Placement::Here);
    assert_eq!(a_leases.renew_all().await, vec![format!("lock:{}", StreamId::operator(UserId([7; 20])))]);
    tokio::time::timeout(Duration::from_secs(1), a.until_lost()).await.expect("A sees its lease lost");
    assert_eq!(a.placement().await, Placement::Elsewhere { owner: Some("node-b".to_owned()) });
}

// ---------------------------------------------------------------------------------------------
// Two `hob serve` processes: what a standby node answers
// ---------------------------------------------------------------------------------------------

const OPERATOR_TOKEN: &str = "operator-leases-token-0123456789";

/// A `hob serve` process; SIGTERM (a graceful stop) when dropped.
struct Serve {
    base: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// An exchange with the demo's three tokens deployed on anvil, `name`'s admin owning it and
/// `name`'s operator allowed to settle; the `[auth]` and `[chain]` sections naming them.
async fn serve_chain(name: &str) -> (String, Vec<(&'static str, String)>) {
    let admin_key = key(&format!("{name}/admin"));
    let admin = provider(&admin_key);
    let funding = U256::from(10u128.pow(21));
    admin.anvil_set_balance(admin_key.address(), funding).await.unwrap();
    let exchange = *HobExchange::deploy(admin.clone(), key(&format!("{name}/fees")).address(), ESCAPE_PERIOD_S)
        .await
        .unwrap()
        .address();
    let operator = key(&format!("{name}/operator"));
    admin.anvil_set_balance(operator.address(), funding).await.unwrap();
    exec(HobExchange::new(exchange, admin.clone()).setOperator(operator.address(), true)).await;
    let mut tokens = String::new();
    for (symbol, decimals) in [("BTC", 8u8), ("ETH", 18), ("USDT", 6)] {
        let token = TestToken::deploy(admin.clone(), symbol.into(), symbol.into(), decimals).await.unwrap();
        tokens.push_str(&format!("{symbol} = \"{}\"\n", token.address()));
    }
    let chain_id = admin.get_chain_id().await.unwrap();
    let config = format!(
        "[auth]\nchain_id = {chain_id}\nexchange_address = \"{exchange}\"\n\n[chain]\nmode = \"rpc\"\nrpc_url = \"{}\"\n\n[chain.tokens]\n{tokens}",
        anvil::anvil().endpoint_url()
    );
    let hex = |k: &alloy::signers::local::PrivateKeySigner| format!("0x{}", alloy::hex::encode(k.to_bytes()));
    (config, vec![("HOB_OPERATOR_KEY", hex(&operator)), ("HOB_ADMIN_KEY", hex(&admin_key))])
}

fn start_serve(node: &str, config: &str, keys: &[(&'static str, String)], db: &str, prefix: &str) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hob.toml");
    std::fs::write(&file, config).unwrap();
    let port = servers::free_port();
    let mongo = |name: &str| format!("mongodb://127.0.0.1:{}/{db}_{name}?replicaSet=secantus", mongo().port);
    let log = std::fs::File::create(dir.path().join("hob.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hob"))
        .args(["serve", "--workers", "1", "--config", &file.display().to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--store", &mongo("events"), "--views", &mongo("views")])
        .env("HOB_NODE_ID", node)
        .env("HOB_LEASE_TTL_MS", LEASE_TTL.as_millis().to_string())
        .env("HOB_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("HOB_QUEUE", "sqs")
        .env("HOB_SQS_ENDPOINT", format!("http://127.0.0.1:{}", moto().port))
        .env("HOB_SQS_CREATE_QUEUES", "true")
        .env("HOB_SQS_QUEUE_PREFIX", prefix)
        .env("HOB_SQS_MAX_RECEIVE_COUNT", "100")
        .env("HOB_SQS_WAIT_TIME_MS", "0")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .envs(keys.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Serve { base: format!("http://127.0.0.1:{port}"), child, _dir: dir }
}

/// `GET path` with the operator's token: (status, JSON body or null; 502 if nobody answers).
async fn get(serve: &Serve, path: &str) -> (u16, serde_json::Value) {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let sent = client
        .get(format!("{}{path}", serve.base))
        .insert_header(("authorization", format!("Bearer {OPERATOR_TOKEN}")))
        .send()
        .await;
    let Ok(mut res) = sent else { return (502, serde_json::Value::Null) };
    let bytes = res.body().limit(1 << 20).await.unwrap_or_default();
    (res.status().as_u16(), serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Waits until `serve` answers `/readyz` with 200; its checks.
async fn ready(serve: &Serve) -> serde_json::Value {
    let log = serve._dir.path().join("hob.log");
    let what = format!("{} is ready (log: {})", serve.base, log.display());
    eventually(&what, async || {
        let (status, body) = get(serve, "/readyz").await;
        (status == 200).then_some(body["checks"].clone())
    })
    .await
}

fn check<'a>(checks: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    checks.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name} in {checks}"))
}

#[actix_rt::test]
async fn given_two_hob_serve_nodes_when_asked_then_the_standby_names_the_operators_host_and_takes_over_when_it_stops() {
    // given node A serving with a chain, then node B on the same store, queues and chain
    let (config, keys) = serve_chain("serve-leases").await;
    let (db, prefix) = (format!("serve_{}", std::process::id()), format!("sl{}-", std::process::id()));
    let a = start_serve("node-a", &config, &keys, &db, &prefix);
    // (the first to ask takes the lease, a moment after start)
    eventually("A runs the settlement operator", async || {
        let on_a = ready(&a).await;
        (check(&on_a, "settlement_operator")["detail"] == serde_json::Value::Null).then_some(())
    })
    .await;
    let b = start_serve("node-b", &config, &keys, &db, &prefix);

    // when B is asked about the operators
    let on_b = ready(&b).await;
    let (status, pipeline) = get(&b, "/operator/settlement").await;
    let (chain_status, chain) = get(&b, "/operator/chain").await;

    // then B is ready and says A runs them, instead of failing
    assert_eq!(check(&on_b, "settlement_operator")["ok"], true, "{on_b}");
    assert_eq!(check(&on_b, "settlement_operator")["detail"], "hosted on node-a", "{on_b}");
    assert_eq!((status, &pipeline["hosted_on"], &pipeline["running"]), (200, &"node-a".into(), &false.into()));
    assert_eq!(pipeline["error"], serde_json::Value::Null, "{pipeline}");
    assert_eq!((chain_status, &chain["admin_hosted_on"]), (200, &"node-a".into()), "{chain}");
    let (_, on_a_pipeline) = get(&a, "/operator/settlement").await;
    assert_eq!((&on_a_pipeline["hosted_on"], &on_a_pipeline["running"]), (&serde_json::Value::Null, &true.into()));

    // and when A stops gracefully, B runs the operators
    drop(a);
    let taken = eventually("B runs the settlement operator", async || {
        let (_, pipeline) = get(&b, "/operator/settlement").await;
        (pipeline["running"] == true).then_some(pipeline)
    })
    .await;
    assert_eq!(taken["hosted_on"], serde_json::Value::Null, "{taken}");
    assert!(taken["stream"].as_str().is_some_and(|s| s.starts_with("operator:")), "{taken}");
    let (_, chain) = get(&b, "/operator/chain").await;
    assert_eq!(chain["admin_hosted_on"], serde_json::Value::Null, "{chain}");
    let on_b = ready(&b).await;
    assert_eq!(check(&on_b, "settlement_operator")["detail"], serde_json::Value::Null, "{on_b}");
}
