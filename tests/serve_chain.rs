//! `hob serve` with `chain.mode = "anvil"`, as `make run` starts it: the real binary, which
//! spawns anvil from `.tools/`, deploys the test tokens and `HobExchange`, registers the
//! configured markets through its admin operator, and settles trades on-chain. Driven over
//! real sockets: HTTP to hob, JSON-RPC to anvil (read back from the contract).
//!
//! One hob serves the read-only and trading tests (`shared()`); the tests that pause the
//! contract or kill hob start their own. A watchdog shell kills every hob the tests spawned
//! once this test process is gone, and hob's own watchdog then kills its anvil.

// Test code unwraps: a failure should fail the test.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use serde_json::{json, Value};

use hob::chain::contract::{HobExchange, TestToken};
use hob::chain::eip712::{self, MessageJson, Order};

#[path = "support/hob_serve.rs"]
mod hob_serve;
use hob_serve::{address_of, call, hex_signature, login, node, ok, ready, token, wait_until, HobServe};

const TOKEN: &str = "operator-token-for-serve-chain-tests";
/// The demo BTC-USDT market: its id in the contract, lots of 0.0001 BTC, ticks of 0.01 USDT.
const BTC_USDT: u32 = 1;
const ETH_USDT: u32 = 2;
const SATS_PER_LOT: u128 = 10_000;

// ---------------------------------------------------------------------------------------------
// A hob process
// ---------------------------------------------------------------------------------------------

type Hob = HobServe;

/// Starts `hob serve --chain anvil --dev-faucet` on a fresh data directory and a free port,
/// and reads its banner up to the last line.
fn spawn_hob() -> Hob {
    HobServe::spawn_on_anvil(&[], &defaults())
}

/// The operator token the tests use, and settlement batches that close quickly.
fn defaults() -> Vec<(&'static str, String)> {
    vec![("HOB_OPERATOR_TOKEN", TOKEN.to_owned()), ("HOB_CHAIN_BATCH_WINDOW_MS", "100".to_owned())]
}

/// Starts `hob serve` with `args` and `env` (over the defaults) on a fresh data directory in
/// `dir`; `Err` with hob's output if it exits first.
fn launch(dir: tempfile::TempDir, args: &[&str], env: &[(&str, String)]) -> Result<Hob, String> {
    let env: Vec<(&str, String)> = defaults().into_iter().chain(env.iter().cloned()).collect();
    HobServe::launch(dir, args, &env)
}

fn shared() -> &'static Hob {
    static HOB: OnceLock<Hob> = OnceLock::new();
    HOB.get_or_init(spawn_hob)
}

/// Whether `pid` runs: it exists and is not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: "pid (comm) S ...".
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP and chain clients
// ---------------------------------------------------------------------------------------------

/// Test funds for `key`'s wallet, as a user gets them on `make run`: the faucet mints the
/// token to the wallet, the wallet approves and deposits it into the exchange, and hob's chain
/// watcher credits the deposit off-chain once it is deep enough.
async fn deposit(hob: &Hob, chain: &Value, key: &PrivateKeySigner, asset: &str, amount: &str, base_units: u128) {
    let who = key.address().to_checksum(None);
    let minted = ok(
        hob,
        Method::POST,
        "/api/v1/dev/faucet",
        None,
        Some(json!({ "user": who, "asset": asset, "amount": amount })),
    )
    .await;
    assert_eq!(minted["target"], "wallet", "{minted}");
    let wallet = node(chain, Some(key));
    let (exchange, token) = (address_of(chain, "exchange"), token(chain, asset));
    let erc20 = TestToken::new(token, wallet.clone());
    assert_eq!(erc20.balanceOf(key.address()).call().await.unwrap(), U256::from(base_units), "minted to the wallet");
    let approve = erc20.approve(exchange, U256::from(base_units)).send().await.unwrap();
    assert!(approve.get_receipt().await.unwrap().status());
    let vault = HobExchange::new(exchange, wallet);
    let deposited = vault.deposit(token, U256::from(base_units)).send().await.unwrap();
    assert!(deposited.get_receipt().await.unwrap().status());
    let session = login(hob, key).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let balances = ok(hob, Method::GET, "/api/v1/balances", Some(&session), None).await;
        let credited = balances
            .as_array()
            .and_then(|all| all.iter().find(|b| b["asset"] == asset))
            .is_some_and(|b| b["available"].as_str().and_then(|a| a.parse::<f64>().ok()) >= amount.parse::<f64>().ok());
        if credited {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the deposit of {amount} {asset} was never credited: {balances}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A signed BTC-USDT limit order request: price in USDT, quantity in lots.
fn btc_order(chain: &Value, key: &PrivateKeySigner, side: &str, price_ticks: u64, lots: u64, nonce: u64) -> Value {
    let order = Order {
        trader: key.address(),
        market: BTC_USDT,
        side: if side == "buy" { 0 } else { 1 },
        orderType: 0,
        timeInForce: 0,
        postOnly: false,
        price: price_ticks,
        quantity: lots,
        maxFeeBps: 30,
        nonce,
        expiry: 0,
    };
    let domain = eip712::domain(chain["chain_id"].as_u64().unwrap(), address_of(chain, "exchange"));
    let signature = eip712::sign(key, &order, &domain).unwrap();
    let price = format!("{}.{:02}", price_ticks / 100, price_ticks % 100);
    let qty = format!("{}", lots as f64 / 10_000.0);
    json!({
        "market": "BTC-USDT", "side": side, "price": price, "qty": qty, "nonce": nonce,
        "signed_order": { "order": order.message_json(), "signature": hex_signature(&signature) },
    })
}

async fn vault(chain: &Value, user: Address, asset: &str) -> u128 {
    let exchange = HobExchange::new(address_of(chain, "exchange"), node(chain, None));
    exchange.balances(user, token(chain, asset)).call().await.unwrap().to::<u128>()
}

// ---------------------------------------------------------------------------------------------
// The specification
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn given_hob_serve_on_anvil_when_it_is_ready_then_every_configured_market_is_registered_on_chain() {
    let hob = shared();
    let chain = ready(hob).await;
    assert_eq!(chain["mode"], "anvil");
    assert_eq!(chain["faucet"], true);
    let exchange = HobExchange::new(address_of(&chain, "exchange"), node(&chain, None));
    let btc = exchange.markets(BTC_USDT).call().await.unwrap();
    assert_eq!((btc.base, btc.quote), (token(&chain, "BTC"), token(&chain, "USDT")));
    assert_eq!((btc.baseLot, btc.quoteTick), (SATS_PER_LOT, 1));
    let eth = exchange.markets(ETH_USDT).call().await.unwrap();
    assert_eq!((eth.base, eth.quote), (token(&chain, "ETH"), token(&chain, "USDT")));
    assert_eq!((eth.baseLot, eth.quoteTick), (100_000_000_000_000, 1));

    // The registrations went through the admin operator, which recorded them.
    let status = ok(hob, Method::GET, "/operator/chain", Some(TOKEN), None).await;
    let outcomes: Vec<&str> =
        status["recent"].as_array().unwrap().iter().filter_map(|r| r["outcome"]["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["market_registered", "market_registered"], "{status}");
    assert_eq!(status["unregistered_markets"], json!([]));
    // The signing domain is the deployed contract's.
    let typed = ok(hob, Method::GET, "/api/v1/eip712", None, None).await;
    assert_eq!(typed["domain"]["verifyingContract"], chain["exchange"]);
}

#[actix_rt::test]
async fn given_two_funded_users_when_they_trade_through_the_api_then_the_trade_settles_on_chain() {
    let hob = shared();
    let chain = ready(hob).await;
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    deposit(hob, &chain, &alice, "USDT", "1000", 1_000_000_000).await;
    deposit(hob, &chain, &bob, "BTC", "1", 100_000_000).await;
    let (alice_session, bob_session) = (login(hob, &alice).await, login(hob, &bob).await);

    // Bob rests a sell of 0.01 BTC at 100 USDT; Alice takes it.
    let ask = btc_order(&chain, &bob, "sell", 10_000, 100, 1);
    ok(hob, Method::POST, "/api/v1/orders", Some(&bob_session), Some(ask)).await;
    let bid = btc_order(&chain, &alice, "buy", 10_000, 100, 1);
    let placed = ok(hob, Method::POST, "/api/v1/orders", Some(&alice_session), Some(bid)).await;
    let order_path = format!("/api/v1/orders/{}", placed["order_id"].as_str().unwrap());
    wait_until("the bid fills", || async {
        call(hob, Method::GET, &order_path, Some(&alice_session), None).await.1["status"] == "filled"
    })
    .await;

    // The settlement operator settles it: a batch lands and the vault moves 0.01 BTC.
    let traded = 100 * SATS_PER_LOT;
    wait_until("the trade settles on-chain", || async { vault(&chain, alice.address(), "BTC").await == traded }).await;
    assert_eq!(vault(&chain, bob.address(), "BTC").await, 100_000_000 - traded);
    // 0.01 BTC at 100 USDT is 1 USDT; Alice (taker) pays 20 bps on top.
    assert_eq!(vault(&chain, alice.address(), "USDT").await, 1_000_000_000 - 1_000_000 - 2_000);
    let exchange = HobExchange::new(address_of(&chain, "exchange"), node(&chain, None));
    assert!(exchange.nextBatchIndex().call().await.unwrap() >= 1, "a BatchSettled batch");
    let status = ok(hob, Method::GET, "/operator/chain", Some(TOKEN), None).await;
    assert_eq!(status["settlement_alerts"], 0, "{status}");
    // The operator's view of the pipeline (what the console shows) counts it.
    wait_until("the settlement pipeline counts the trade", || async {
        call(hob, Method::GET, "/operator/settlement", Some(TOKEN), None).await.1["settled_trades"].as_u64() >= Some(1)
    })
    .await;
    let pipeline = ok(hob, Method::GET, "/operator/settlement", Some(TOKEN), None).await;
    assert_eq!(pipeline["running"], true, "{pipeline}");
    assert!(pipeline["settled_batches"].as_u64() >= Some(1), "{pipeline}");
    assert!(pipeline["nonces"]["next"].as_u64() >= Some(1), "a nonce was used: {pipeline}");
    assert!(pipeline["nonces"]["chain_latest"].as_u64() >= Some(1), "and mined: {pipeline}");
    assert_eq!(pipeline["alerts_total"], 0, "{pipeline}");
}

#[actix_rt::test]
async fn given_an_operator_when_it_pauses_and_unpauses_then_the_admin_operator_carries_it_out_and_sigterm_stops_anvil()
{
    let mut hob = spawn_hob();
    let chain = ready(&hob).await;
    let exchange = HobExchange::new(address_of(&chain, "exchange"), node(&chain, None));

    // No token, no access.
    let (status, body) = call(&hob, Method::POST, "/operator/chain/pause", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!exchange.paused().call().await.unwrap());

    let accepted = call(&hob, Method::POST, "/operator/chain/pause", Some(TOKEN), None).await;
    assert_eq!((accepted.0, accepted.1["command"].as_str()), (StatusCode::ACCEPTED, Some("pause")));
    wait_until("the contract pauses", || async { exchange.paused().call().await.unwrap() }).await;
    // Pausing again is a no-op that is still recorded.
    ok(&hob, Method::POST, "/operator/chain/pause", Some(TOKEN), None).await;
    ok(&hob, Method::POST, "/operator/chain/unpause", Some(TOKEN), None).await;
    wait_until("the contract unpauses", || async { !exchange.paused().call().await.unwrap() }).await;
    let status = ok(&hob, Method::GET, "/operator/chain", Some(TOKEN), None).await;
    let outcomes: Vec<Value> = status["recent"].as_array().unwrap().iter().map(|r| r["outcome"].clone()).collect();
    let paused: Vec<&Value> = outcomes.iter().filter(|o| o["outcome"] == "paused").collect();
    assert_eq!(paused.len(), 2, "{outcomes:?}");
    assert!(paused[0]["tx"].is_string() && paused[1]["tx"].is_null(), "the second pause sent nothing: {outcomes:?}");

    // SIGTERM: hob stops cleanly and takes its anvil with it.
    let anvil_pid = hob.anvil_pid.unwrap();
    assert!(alive(anvil_pid));
    Command::new("kill").args(["-TERM", &hob.child.id().to_string()]).status().unwrap();
    let exit = hob.child.wait().unwrap();
    assert!(exit.success(), "a clean stop: {exit:?}");
    wait_until("anvil exits", || async { !alive(anvil_pid) }).await;
}

#[actix_rt::test]
async fn given_hob_is_killed_outright_then_its_watchdog_stops_anvil() {
    let mut hob = spawn_hob();
    ready(&hob).await;
    let anvil_pid = hob.anvil_pid.unwrap();
    assert!(alive(anvil_pid));
    hob.child.kill().unwrap();
    hob.child.wait().unwrap();
    wait_until("anvil exits after hob's SIGKILL", || async { !alive(anvil_pid) }).await;
}

// ---------------------------------------------------------------------------------------------
// rpc mode: a node hob did not start, a contract it did not deploy
// ---------------------------------------------------------------------------------------------

/// A node with the exchange and the demo's tokens deployed by dev account 0 (the admin),
/// account 1 made settlement operator, and hob's configuration file for it.
struct ExistingChain {
    devnet: hob::chain::devnet::Devnet,
    exchange: Address,
    admin: PrivateKeySigner,
    operator: PrivateKeySigner,
}

async fn existing_chain() -> ExistingChain {
    let devnet = hob::chain::devnet::Devnet::spawn(Duration::ZERO, 0).unwrap();
    let (admin, operator) = (devnet.account(0).unwrap(), devnet.account(1).unwrap());
    let url = devnet.endpoint().parse().unwrap();
    let deployer = ProviderBuilder::new().wallet(EthereumWallet::from(admin.clone())).connect_http(url).erased();
    let exchange = HobExchange::deploy(deployer, devnet.account(3).unwrap().address(), 86_400).await.unwrap();
    let receipt = exchange.setOperator(operator.address(), true).send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    ExistingChain { exchange: *exchange.address(), devnet, admin, operator }
}

impl ExistingChain {
    /// Deploys a token per demo asset; the `[chain]` and `[auth]` sections naming them.
    async fn config(&self, chain_id: u64) -> String {
        let url = self.devnet.endpoint().parse().unwrap();
        let deployer =
            ProviderBuilder::new().wallet(EthereumWallet::from(self.admin.clone())).connect_http(url).erased();
        let mut tokens = String::new();
        for (symbol, decimals) in [("BTC", 8u8), ("ETH", 18), ("USDT", 6)] {
            let token = TestToken::deploy(deployer.clone(), symbol.into(), symbol.into(), decimals).await.unwrap();
            tokens.push_str(&format!("{symbol} = \"{}\"\n", token.address()));
        }
        format!(
            "[auth]\nchain_id = {chain_id}\nexchange_address = \"{}\"\n\n[chain]\nmode = \"rpc\"\nrpc_url = \"{}\"\n\n[chain.tokens]\n{tokens}",
            self.exchange,
            self.devnet.endpoint()
        )
    }

    /// The keys as hob reads them: the operator's from a file, the admin's from a variable.
    fn key_env(&self, dir: &std::path::Path) -> Vec<(&'static str, String)> {
        let file = dir.join("operator.key");
        std::fs::write(&file, format!("0x{}\n", alloy::hex::encode(self.operator.to_bytes()))).unwrap();
        vec![
            ("HOB_OPERATOR_KEY_FILE", file.display().to_string()),
            ("HOB_ADMIN_KEY", format!("0x{}", alloy::hex::encode(self.admin.to_bytes()))),
        ]
    }
}

fn with_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("hob.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[actix_rt::test]
async fn given_an_existing_node_and_contract_when_hob_serves_in_rpc_mode_then_it_registers_the_markets_and_is_ready() {
    let chain = existing_chain().await;
    let dir = tempfile::tempdir().unwrap();
    let config = with_config(&dir, &chain.config(chain.devnet.chain_id()).await);
    let env = chain.key_env(dir.path());
    let hob = launch(dir, &["--config", &config], &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hob.anvil_pid, None, "rpc mode starts no node");
    let info = ready(&hob).await;
    assert_eq!(info["mode"], "rpc");
    assert_eq!(address_of(&info, "exchange"), chain.exchange);
    assert_eq!(address_of(&info, "operator"), chain.operator.address());
    let exchange = HobExchange::new(chain.exchange, node(&info, None));
    assert_eq!(exchange.markets(BTC_USDT).call().await.unwrap().base, token(&info, "BTC"));
    assert_eq!(exchange.markets(ETH_USDT).call().await.unwrap().base, token(&info, "ETH"));
}

#[actix_rt::test]
async fn given_rpc_mode_when_the_chain_id_or_the_keys_are_wrong_then_hob_refuses_to_start_saying_why() {
    let chain = existing_chain().await;
    let dir = tempfile::tempdir().unwrap();
    let config = with_config(&dir, &chain.config(56).await);
    let env = chain.key_env(dir.path());
    let err = launch(dir, &["--config", &config], &env).err().expect("a wrong chain id is refused");
    assert!(err.contains("is chain 31337, but auth.chain_id says 56"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let config = with_config(&dir, &chain.config(chain.devnet.chain_id()).await);
    let err = launch(dir, &["--config", &config], &[]).err().expect("no keys is refused");
    assert!(err.contains("HOB_OPERATOR_KEY"), "{err}");
    assert!(!err.contains(&alloy::hex::encode(chain.admin.to_bytes())), "no key is ever printed");
}

#[actix_rt::test]
async fn given_a_store_from_an_earlier_run_when_anvil_mode_starts_then_it_refuses_before_spawning_anvil() {
    use hob::events::{AppendRequest, EventStore, NewEvent, StreamId, SystemClock};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let store = hob::store::sqlite::SqliteEventStore::open(dir.path().join("data/hob.db")).unwrap();
    let id = uuid::Uuid::now_v7();
    let event = NewEvent::new(&SystemClock, id, id, "admin.CommandIssued", 1, json!({"command": "pause"}));
    let request = AppendRequest {
        stream: StreamId::admin(),
        expected_version: 0,
        events: vec![event],
        outbox: Vec::new(),
        idempotency_key: None,
    };
    store.append(request).await.unwrap();
    drop(store);

    let err = launch(dir, &["--chain", "anvil"], &[]).err().expect("a stale store is refused");
    assert!(err.contains("holds an earlier run's events"), "{err}");
    assert!(!err.contains("(anvil, pid"), "refused before any anvil was spawned: {err}");
}
