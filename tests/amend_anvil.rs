//! Signed amends settle on-chain: the real `hob serve` in anvil mode (as `make run` starts
//! it: it spawns anvil from `.tools/`, deploys the tokens and `HobExchange`, registers the
//! markets and settles trades), driven over HTTP, read back from the contract over JSON-RPC.
//!
//! An order partly fills, is amended twice with new signed orders (a price move that
//! re-enters, then a reduction that keeps its place), fills again, and both trades settle:
//! the first under the order's original signature, the second under the last amend's, each
//! filled on-chain within the quantity it signed, and the vaults equal the ledgers.
//!
//! One hob for this binary, in a static; a watchdog shell stops it (SIGTERM, so it stops its
//! anvil) once this test process is gone (the pattern of `tests/serve_chain.rs`).

// Test code unwraps: a failure should fail the test.

#[path = "support/hob_serve.rs"]
mod hob_serve;
use hob_serve::{address_of, call, hex_signature, login, node, ok, ready, token, wait_until, HobServe};

use std::sync::OnceLock;

use actix_web::http::Method;
use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use serde_json::{json, Value};

use hob::chain::contract::{HobExchange, TestToken};
use hob::chain::eip712::{self, MessageJson, Order};

const TOKEN: &str = "operator-token-for-amend-anvil-tests";
/// The demo BTC-USDT market: its id in the contract, lots of 0.0001 BTC, ticks of 0.01 USDT.
const BTC_USDT: u32 = 1;
/// Token decimals of the demo assets.
const DECIMALS: [(&str, usize); 2] = [("BTC", 8), ("USDT", 6)];

// ---------------------------------------------------------------------------------------------
// The hob process
// ---------------------------------------------------------------------------------------------

type Hob = HobServe;

fn shared() -> &'static Hob {
    static HOB: OnceLock<Hob> = OnceLock::new();
    HOB.get_or_init(|| {
        let env = [("HOB_OPERATOR_TOKEN", TOKEN.to_owned()), ("HOB_CHAIN_BATCH_WINDOW_MS", "100".to_owned())];
        HobServe::spawn_on_anvil(&[], &env)
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP and chain clients
// ---------------------------------------------------------------------------------------------

fn exchange(chain: &Value) -> HobExchange::HobExchangeInstance<DynProvider> {
    HobExchange::new(address_of(chain, "exchange"), node(chain, None))
}

/// Test funds as on `make run`: the faucet mints to the wallet, the wallet deposits into
/// the exchange, and hob's chain watcher credits it once it is deep enough.
async fn deposit(hob: &Hob, chain: &Value, key: &PrivateKeySigner, asset: &str, amount: &str) {
    let who = key.address().to_checksum(None);
    let body = json!({ "user": who, "asset": asset, "amount": amount });
    ok(hob, Method::POST, "/api/v1/dev/faucet", None, Some(body)).await;
    let units = U256::from(base_units(asset, amount));
    let wallet = node(chain, Some(key));
    let (vault, token) = (address_of(chain, "exchange"), token(chain, asset));
    let approve = TestToken::new(token, wallet.clone()).approve(vault, units).send().await.unwrap();
    assert!(approve.get_receipt().await.unwrap().status());
    let deposited = HobExchange::new(vault, wallet).deposit(token, units).send().await.unwrap();
    assert!(deposited.get_receipt().await.unwrap().status());
    let session = login(hob, key).await;
    wait_until("the deposit is credited", || async { ledger(hob, &session, asset).await == base_units(asset, amount) })
        .await;
}

/// A decimal amount of `asset` in its token's base units.
fn base_units(asset: &str, decimal: &str) -> u128 {
    let decimals = DECIMALS.iter().find(|(a, _)| *a == asset).unwrap().1;
    let (whole, fraction) = decimal.split_once('.').unwrap_or((decimal, ""));
    assert!(fraction.len() <= decimals, "{decimal} has more than {decimals} decimals");
    format!("{whole}{fraction:0<decimals$}").parse().unwrap()
}

/// The user's off-chain balance of `asset` (available + locked + settling), in base units,
/// once nothing of it is still settling; `u128::MAX` while something is.
async fn ledger(hob: &Hob, session: &str, asset: &str) -> u128 {
    let balances = ok(hob, Method::GET, "/api/v1/balances", Some(session), None).await;
    let Some(b) = balances.as_array().unwrap().iter().find(|b| b["asset"] == asset) else { return 0 };
    let part = |field: &str| base_units(asset, b[field].as_str().unwrap());
    if part("settling") != 0 {
        return u128::MAX;
    }
    part("available") + part("locked")
}

async fn vault(chain: &Value, user: Address, asset: &str) -> u128 {
    exchange(chain).balances(user, token(chain, asset)).call().await.unwrap().to::<u128>()
}

/// The EIP-712 order of a BTC-USDT limit order: price in ticks of 0.01 USDT, lots of
/// 0.0001 BTC, good till cancelled.
fn btc_order(key: &PrivateKeySigner, side: &str, price_ticks: u64, lots: u64, nonce: u64) -> Order {
    Order {
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
    }
}

/// `order`'s price, quantity and nonce as request fields, with its signature attached.
fn signed_fields(chain: &Value, key: &PrivateKeySigner, order: &Order) -> Value {
    let domain = eip712::domain(chain["chain_id"].as_u64().unwrap(), address_of(chain, "exchange"));
    let signature = eip712::sign(key, order, &domain).unwrap();
    json!({
        "price": format!("{}.{:02}", order.price / 100, order.price % 100),
        "qty": format!("{}.{:04}", order.quantity / 10_000, order.quantity % 10_000),
        "nonce": order.nonce,
        "signed_order": { "order": order.message_json(), "signature": hex_signature(&signature) },
    })
}

async fn place(hob: &Hob, chain: &Value, session: &str, key: &PrivateKeySigner, order: &Order) -> String {
    let mut body = signed_fields(chain, key, order);
    body["market"] = json!("BTC-USDT");
    body["side"] = json!(if order.side == 0 { "buy" } else { "sell" });
    let placed = ok(hob, Method::POST, "/api/v1/orders", Some(session), Some(body)).await;
    placed["order_id"].as_str().unwrap().to_owned()
}

async fn amend(hob: &Hob, chain: &Value, session: &str, key: &PrivateKeySigner, id: &str, order: &Order) {
    let body = signed_fields(chain, key, order);
    let answer = ok(hob, Method::PATCH, &format!("/api/v1/orders/{id}"), Some(session), Some(body)).await;
    assert_eq!(answer["status"], "amend_requested", "{answer}");
}

/// Waits until the order `id` satisfies `done`.
async fn order_until(hob: &Hob, session: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) {
    let path = format!("/api/v1/orders/{id}");
    wait_until(what, || async { done(&call(hob, Method::GET, &path, Some(session), None).await.1) }).await;
}

// ---------------------------------------------------------------------------------------------
// The specification
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn given_a_partly_filled_order_when_it_is_amended_with_new_signatures_and_fills_again_then_both_trades_settle_on_chain(
) {
    let hob = shared();
    let chain = ready(hob).await;
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    deposit(hob, &chain, &alice, "USDT", "1000").await;
    deposit(hob, &chain, &bob, "BTC", "1").await;
    let (alice_session, bob_session) = (login(hob, &alice).await, login(hob, &bob).await);

    // Given Bob's ask of 0.1 BTC at 100 USDT (nonce 1), of which Alice takes 0.04
    let ask = place(hob, &chain, &bob_session, &bob, &btc_order(&bob, "sell", 10_000, 1_000, 1)).await;
    let first = place(hob, &chain, &alice_session, &alice, &btc_order(&alice, "buy", 10_000, 400, 1)).await;
    order_until(hob, &alice_session, &first, "the first bid fills", |o| o["status"] == "filled").await;
    order_until(hob, &bob_session, &ask, "the ask is partly filled", |o| o["remaining"] == "0.0600").await;

    // When Bob moves the remaining 0.06 to 101 under nonce 2 (the order re-enters) ...
    amend(hob, &chain, &bob_session, &bob, &ask, &btc_order(&bob, "sell", 10_100, 600, 2)).await;
    order_until(hob, &bob_session, &ask, "the ask moves to 101", |o| o["price"] == "101.00").await;
    // ... then reduces it to 0.05 under nonce 3 (it keeps its place) ...
    amend(hob, &chain, &bob_session, &bob, &ask, &btc_order(&bob, "sell", 10_100, 500, 3)).await;
    order_until(hob, &bob_session, &ask, "the ask shrinks to 0.05", |o| o["remaining"] == "0.0500").await;
    // ... and Alice takes the rest at 101
    let second = place(hob, &chain, &alice_session, &alice, &btc_order(&alice, "buy", 10_100, 500, 2)).await;
    order_until(hob, &alice_session, &second, "the second bid fills", |o| o["status"] == "filled").await;
    order_until(hob, &bob_session, &ask, "the ask fills", |o| o["status"] == "filled").await;

    // Then both trades settle: Alice's vault holds the 0.09 BTC she bought
    let bought = base_units("BTC", "0.09");
    wait_until("both trades settle", || async { vault(&chain, alice.address(), "BTC").await == bought }).await;
    // Each of Bob's signed orders was filled on-chain within what it signed: the original
    // (nonce 1) by the first trade only, the re-entry's (nonce 2) never, the last amend's
    // (nonce 3) in full by the second trade.
    let contract = exchange(&chain);
    let fill = |nonce: u64| {
        let contract = contract.clone();
        let bob = bob.address();
        async move {
            let f = contract.orderFill(bob, nonce).call().await.unwrap();
            (f.done, f.filledLots)
        }
    };
    assert_eq!(fill(1).await, (false, 400), "the original order settled the first trade");
    assert_eq!(fill(2).await, (false, 0), "the superseded amend settled nothing");
    assert!(fill(3).await.0, "the last amend's order settled the second trade in full");
    // And every vault equals its owner's ledger, once the confirmations are applied.
    for (who, session) in [(&alice, &alice_session), (&bob, &bob_session)] {
        for (asset, _) in DECIMALS {
            let on_chain = vault(&chain, who.address(), asset).await;
            wait_until("the ledger equals the vault", || async { ledger(hob, session, asset).await == on_chain }).await;
        }
    }
    let status = ok(hob, Method::GET, "/operator/chain", Some(TOKEN), None).await;
    assert_eq!(status["settlement_alerts"], 0, "{status}");
}
