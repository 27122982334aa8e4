//! Signed mode (the default): login by signing a challenge, sessions on private routes and
//! the WebSocket, and order entry with EIP-712 signatures by the wallet or an agent key it
//! authorised. Over real sockets, with local alloy keys standing in for wallets.

mod api_support;

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use alloy::dyn_abi::TypedData;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use serde_json::{json, Value};

use api_support::{start_with, Response, TestServer};
use hob::chain::eip712::{self, AgentAuthorization, MessageJson, Order};

const EXCHANGE: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const CHAIN_ID: u64 = 31_337;
/// BTC-USDT's id in the settlement contract (the demo configuration).
const BTC_USDT_CHAIN_ID: u32 = 1;

async fn signed_server() -> TestServer {
    start_with(|c| {
        c.server.dev_insecure_user_header = false;
        c.auth.exchange_address = EXCHANGE.to_owned();
        c.auth.chain_id = CHAIN_ID;
    })
    .await
}

fn address(key: &PrivateKeySigner) -> String {
    key.address().to_checksum(None)
}

fn domain() -> alloy::sol_types::Eip712Domain {
    eip712::domain(CHAIN_ID, EXCHANGE.parse().unwrap())
}

fn hex_signature(signature: &alloy::primitives::Signature) -> String {
    format!("0x{}", alloy::hex::encode(signature.as_bytes()))
}

async fn send(s: &TestServer, method: Method, token: Option<&str>, path: &str, body: Option<Value>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
    s.request(method, path, &headers, bytes.as_deref()).await
}

/// Logs in as `user` with a challenge signed by `signer` (the wallet itself or its agent).
async fn try_login(s: &TestServer, user: &str, signer: &PrivateKeySigner) -> Response {
    let challenge = send(s, Method::POST, None, "/api/v1/auth/challenge", Some(json!({ "address": user }))).await;
    assert_eq!(challenge.status, StatusCode::OK, "{}", challenge.text);
    let message = challenge.body["message"].as_str().unwrap();
    assert!(message.contains(user), "the challenge names the user: {message}");
    let signature = signer.sign_message_sync(message.as_bytes()).unwrap();
    let body = json!({ "nonce": challenge.body["nonce"], "signature": hex_signature(&signature) });
    send(s, Method::POST, None, "/api/v1/auth/login", Some(body)).await
}

async fn login(s: &TestServer, key: &PrivateKeySigner) -> String {
    let res = try_login(s, &address(key), key).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.body["token"].as_str().unwrap().to_owned()
}

/// A BTC-USDT limit order: the request, and the EIP-712 order it is (price in ticks of 0.01
/// USDT, quantity in lots of 0.0001 BTC).
fn order(trader: &PrivateKeySigner, side: &str, price: &str, qty: &str, nonce: u64) -> (Value, Order) {
    let request = json!({ "market": "BTC-USDT", "side": side, "price": price, "qty": qty, "nonce": nonce });
    let ticks = (price.parse::<f64>().unwrap() * 100.0).round() as u64;
    let lots = (qty.parse::<f64>().unwrap() * 10_000.0).round() as u64;
    let signed = Order {
        trader: trader.address(),
        market: BTC_USDT_CHAIN_ID,
        side: if side == "buy" { 0 } else { 1 },
        orderType: 0,
        timeInForce: 0,
        postOnly: false,
        price: ticks,
        quantity: lots,
        maxFeeBps: 30,
        nonce,
        expiry: 0,
    };
    (request, signed)
}

/// `request` with `order` signed by `signer` attached.
fn with_signature(mut request: Value, order: &Order, signer: &PrivateKeySigner) -> Value {
    let signature = eip712::sign(signer, order, &domain()).unwrap();
    request["signed_order"] = json!({ "order": order.message_json(), "signature": hex_signature(&signature) });
    request
}

async fn place(s: &TestServer, token: &str, request: Value) -> Response {
    send(s, Method::POST, Some(token), "/api/v1/orders", Some(request)).await
}

async fn get(s: &TestServer, token: &str, path: &str) -> Response {
    send(s, Method::GET, Some(token), path, None).await
}

/// Polls `path` until `done` holds.
async fn wait_for(s: &TestServer, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let res = get(s, token, path).await;
        if res.status == StatusCode::OK && done(&res.body) {
            return res.body;
        }
        assert!(std::time::Instant::now() < deadline, "{path} never satisfied the condition; last: {}", res.text);
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn an_order_signed_from_the_served_typed_data_trades() {
    let s = signed_server().await;
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    s.fund(&address(&alice), "USDT", "1000").await;
    s.fund(&address(&bob), "BTC", "1").await;
    let (alice_token, bob_token) = (login(&s, &alice).await, login(&s, &bob).await);

    let (ask, ask_order) = order(&bob, "sell", "100", "0.01", 1);
    let res = place(&s, &bob_token, with_signature(ask, &ask_order, &bob)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let ask_id = res.body["order_id"].as_str().unwrap().to_owned();

    // Alice signs as a browser wallet would: the served domain and types, plus her message,
    // given to an eth_signTypedData_v4 implementation.
    let mut typed = s.get("/api/v1/eip712").await.body;
    assert_eq!(typed["domain"]["chainId"], CHAIN_ID);
    assert_eq!(typed["domain"]["verifyingContract"], EXCHANGE);
    assert_eq!(typed["markets"][0], json!({"market": "BTC-USDT", "chain_market_id": 1, "min_max_fee_bps": 20}));
    typed.as_object_mut().unwrap().remove("markets");
    let (bid, bid_order) = order(&alice, "buy", "100", "0.01", 1);
    typed["primaryType"] = json!("Order");
    typed["message"] = bid_order.message_json();
    let typed: TypedData = serde_json::from_value(typed).unwrap();
    let signature = alice.sign_hash_sync(&typed.eip712_signing_hash().unwrap()).unwrap();
    let mut bid = bid;
    bid["signed_order"] = json!({ "order": bid_order.message_json(), "signature": hex_signature(&signature) });
    let res = place(&s, &alice_token, bid).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let bid_id = res.body["order_id"].as_str().unwrap().to_owned();

    wait_for(&s, &alice_token, &format!("/api/v1/orders/{bid_id}"), |o| o["status"] == "filled").await;
    wait_for(&s, &bob_token, &format!("/api/v1/orders/{ask_id}"), |o| o["status"] == "filled").await;
    s.stop().await;
}

#[actix_rt::test]
async fn an_agent_the_wallet_authorised_logs_in_and_trades_for_it() {
    let s = signed_server().await;
    let (carol, agent, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random(), PrivateKeySigner::random());
    s.fund(&address(&carol), "USDT", "1000").await;
    s.fund(&address(&bob), "BTC", "1").await;
    let (carol_token, bob_token) = (login(&s, &carol).await, login(&s, &bob).await);

    // Before the wallet authorises it, the agent can neither log in nor sign orders for it.
    let res = try_login(&s, &address(&carol), &agent).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_signer")));
    let (bid, bid_order) = order(&carol, "buy", "100", "0.01", 1);
    let res = place(&s, &carol_token, with_signature(bid.clone(), &bid_order, &agent)).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("wrong_signer")), "{}", res.text);

    let expiry = chrono::Utc::now().timestamp() as u64 + 3_600;
    let grant = AgentAuthorization { owner: carol.address(), agent: agent.address(), expiry, nonce: 1 };
    // Only the owner's signature authorises an agent; the agent cannot authorise itself.
    let self_signed = eip712::sign(&agent, &grant, &domain()).unwrap();
    let body = json!({ "authorization": grant.message_json(), "signature": hex_signature(&self_signed) });
    let res = send(&s, Method::POST, Some(&carol_token), "/api/v1/auth/agents", Some(body)).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("wrong_signer")));
    let signature = eip712::sign(&carol, &grant, &domain()).unwrap();
    let body = json!({ "authorization": grant.message_json(), "signature": hex_signature(&signature) });
    let res = send(&s, Method::POST, Some(&carol_token), "/api/v1/auth/agents", Some(body.clone())).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let res = send(&s, Method::POST, Some(&carol_token), "/api/v1/auth/agents", Some(body)).await;
    assert_eq!(res.body["code"], "nonce_used", "an authorisation is accepted once: {}", res.text);

    // The agent logs in for the wallet and places an order it signed, which trades.
    let res = try_login(&s, &address(&carol), &agent).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["agent"].as_str(), Some(address(&agent).as_str()));
    assert_eq!(res.body["user"].as_str().map(str::to_lowercase), Some(address(&carol).to_lowercase()));
    let agent_token = res.body["token"].as_str().unwrap().to_owned();
    let (ask, ask_order) = order(&bob, "sell", "100", "0.01", 1);
    assert_eq!(place(&s, &bob_token, with_signature(ask, &ask_order, &bob)).await.status, StatusCode::OK);
    let res = place(&s, &agent_token, with_signature(bid, &bid_order, &agent)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let bid_id = res.body["order_id"].as_str().unwrap().to_owned();
    wait_for(&s, &carol_token, &format!("/api/v1/orders/{bid_id}"), |o| o["status"] == "filled").await;
    s.stop().await;
}

/// The state a refused order must leave untouched.
async fn account(s: &TestServer, token: &str) -> (Value, Value) {
    let balances = get(s, token, "/api/v1/balances").await;
    let open = get(s, token, "/api/v1/orders").await;
    assert_eq!((balances.status, open.status), (StatusCode::OK, StatusCode::OK));
    (balances.body, open.body)
}

#[actix_rt::test]
async fn bad_signatures_are_refused_with_a_code_and_change_nothing() {
    let s = signed_server().await;
    let (alice, mallory) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    s.fund(&address(&alice), "USDT", "1000").await;
    s.fund(&address(&mallory), "USDT", "1000").await;
    let (token, mallory_token) = (login(&s, &alice).await, login(&s, &mallory).await);
    let (resting, resting_order) = order(&alice, "buy", "90", "0.02", 7);
    let res = place(&s, &token, with_signature(resting, &resting_order, &alice)).await;
    assert_eq!(res.status, StatusCode::OK, "the nonce 7 is now used: {}", res.text);
    wait_for(&s, &token, "/api/v1/orders", |o| {
        o.as_array().is_some_and(|a| a.len() == 1 && a[0]["status"] == "working")
    })
    .await;
    let before = account(&s, &token).await;

    let past = (chrono::Utc::now().timestamp() as u64 - 60) * 1_000;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("unsigned", order(&alice, "buy", "100", "0.01", 1).0, "signature_required"),
        (
            "signed by another key",
            {
                let (r, o) = order(&alice, "buy", "100", "0.01", 1);
                with_signature(r, &o, &mallory)
            },
            "wrong_signer",
        ),
        (
            "signed price differs",
            {
                let (r, o) = order(&alice, "buy", "100", "0.01", 1);
                with_signature(r, &Order { price: 9_000, ..o }, &alice)
            },
            "signed_field_mismatch",
        ),
        (
            "signed for another market",
            {
                let (r, o) = order(&alice, "buy", "100", "0.01", 1);
                with_signature(r, &Order { market: 2, ..o }, &alice)
            },
            "signed_field_mismatch",
        ),
        (
            "fee cap below the market's fee",
            {
                let (r, o) = order(&alice, "buy", "100", "0.01", 1);
                with_signature(r, &Order { maxFeeBps: 19, ..o }, &alice)
            },
            "fee_cap_too_low",
        ),
        (
            "expired",
            {
                let (mut r, o) = order(&alice, "buy", "100", "0.01", 1);
                r["tif"] = json!("gtd");
                r["expires_at"] = json!(past);
                with_signature(r, &Order { timeInForce: 3, expiry: past / 1_000, ..o }, &alice)
            },
            "order_expired",
        ),
        (
            "reused nonce",
            {
                let (r, o) = order(&alice, "buy", "95", "0.01", 7);
                with_signature(r, &o, &alice)
            },
            "nonce_used",
        ),
        (
            "malformed signature",
            {
                let (mut r, o) = order(&alice, "buy", "100", "0.01", 1);
                r["signed_order"] = json!({ "order": o.message_json(), "signature": "0x1234" });
                r
            },
            "malformed_signed_order",
        ),
    ];
    for (name, request, code) in cases {
        let res = place(&s, &token, request).await;
        assert_eq!(res.body["code"].as_str(), Some(code), "{name}: {}", res.text);
        assert!(res.status.is_client_error(), "{name}: {}", res.status);
        assert_eq!(account(&s, &token).await, before, "{name} changed nothing");
    }
    // A valid signature of Alice's order does not let Mallory's session place it.
    let (r, o) = order(&alice, "buy", "100", "0.01", 1);
    let res = place(&s, &mallory_token, with_signature(r, &o, &alice)).await;
    assert_eq!(res.body["code"], "signed_field_mismatch", "{}", res.text);
    assert_eq!(account(&s, &token).await, before);
    // In signed mode an amend without a new signed order would leave the old signature on the
    // order: refused.
    let open = before.1[0]["order_id"].as_str().unwrap().to_owned();
    let body = json!({ "price": "91", "qty": "0.02" });
    let res = send(&s, Method::PATCH, Some(&token), &format!("/api/v1/orders/{open}"), Some(body)).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("signature_required")));
    // A cancel needs only the session.
    let res = send(&s, Method::DELETE, Some(&token), &format!("/api/v1/orders/{open}"), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    s.stop().await;
}

/// A signed amend of `order_id` to `price` / `qty`: the request and its new EIP-712 order
/// (the original's terms at the new price, the new open quantity as its quantity, `nonce`).
fn amend(trader: &PrivateKeySigner, side: &str, price: &str, qty: &str, nonce: u64) -> (Value, Order) {
    let (_, signed) = order(trader, side, price, qty, nonce);
    (json!({ "price": price, "qty": qty, "nonce": nonce }), signed)
}

async fn patch(s: &TestServer, token: &str, order_id: &str, request: Value) -> Response {
    send(s, Method::PATCH, Some(token), &format!("/api/v1/orders/{order_id}"), Some(request)).await
}

#[actix_rt::test]
async fn a_signed_amend_is_checked_like_a_placement_and_a_refused_one_changes_nothing() {
    let s = signed_server().await;
    let (alice, mallory) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    s.fund(&address(&alice), "USDT", "1000").await;
    let token = login(&s, &alice).await;
    // Given Alice's bid of 0.02 at 90, placed under nonce 7
    let (bid, bid_order) = order(&alice, "buy", "90", "0.02", 7);
    let res = place(&s, &token, with_signature(bid, &bid_order, &alice)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let id = res.body["order_id"].as_str().unwrap().to_owned();
    wait_for(&s, &token, "/api/v1/orders", |o| {
        o.as_array().is_some_and(|a| a.len() == 1 && a[0]["status"] == "working")
    })
    .await;
    let before = account(&s, &token).await;

    // When she amends it with a new signed order that does not fit, then each is refused
    // with its code and nothing changes.
    let past = chrono::Utc::now().timestamp() as u64 - 60;
    let signed = |o: &Order, by: &PrivateKeySigner| {
        let (request, _) = amend(&alice, "buy", "91", "0.015", o.nonce);
        with_signature(request, o, by)
    };
    let (_, good) = amend(&alice, "buy", "91", "0.015", 8);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("unsigned", json!({ "price": "91", "qty": "0.015" }), "signature_required"),
        ("a nonce without a signed order", json!({ "price": "91", "qty": "0.015", "nonce": 8 }), "invalid_amend"),
        ("signed by another key", signed(&good, &mallory), "wrong_signer"),
        ("signed for the other side", signed(&Order { side: 1, ..good.clone() }, &alice), "signed_field_mismatch"),
        ("signed for another market", signed(&Order { market: 2, ..good.clone() }, &alice), "signed_field_mismatch"),
        ("signed at another price", signed(&Order { price: 9_200, ..good.clone() }, &alice), "signed_field_mismatch"),
        (
            "signed for the old quantity, not the new open one",
            signed(&Order { quantity: 200, ..good.clone() }, &alice),
            "signed_field_mismatch",
        ),
        (
            "signed for another trader",
            signed(&Order { trader: mallory.address(), ..good.clone() }, &alice),
            "signed_field_mismatch",
        ),
        ("expired", signed(&Order { expiry: past, ..good.clone() }, &alice), "order_expired"),
        ("the placement's nonce again", signed(&Order { nonce: 7, ..good.clone() }, &alice), "nonce_used"),
        (
            "off the grid",
            with_signature(json!({ "price": "91.001", "qty": "0.015", "nonce": 8 }), &good, &alice),
            "off_grid_price",
        ),
    ];
    for (name, request, code) in cases {
        let res = patch(&s, &token, &id, request).await;
        assert_eq!(res.body["code"].as_str(), Some(code), "{name}: {}", res.text);
        assert!(res.status.is_client_error(), "{name}: {}", res.status);
        assert_eq!(account(&s, &token).await, before, "{name} changed nothing");
    }

    // When the amend carries a fitting signed order, then it is applied ...
    let res = patch(&s, &token, &id, signed(&good, &alice)).await;
    assert_eq!((res.status, res.body["status"].as_str()), (StatusCode::OK, Some("amend_requested")), "{}", res.text);
    wait_for(&s, &token, &format!("/api/v1/orders/{id}"), |o| o["price"] == "91.00" && o["remaining"] == "0.0150")
        .await;
    // ... and its nonce is used: another amend signed under nonce 8 is a replay.
    let (request, again) = amend(&alice, "buy", "92", "0.015", 8);
    let res = patch(&s, &token, &id, with_signature(request, &again, &alice)).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::CONFLICT, Some("nonce_used")), "{}", res.text);
    s.stop().await;
}

#[actix_rt::test]
async fn a_signed_amend_over_rest_and_the_websocket_trades_at_its_new_terms() {
    let s = signed_server().await;
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    s.fund(&address(&alice), "USDT", "1000").await;
    s.fund(&address(&bob), "BTC", "1").await;
    let (alice_token, bob_token) = (login(&s, &alice).await, login(&s, &bob).await);
    // Given Bob's ask of 0.03 at 100, partly taken (0.01) by Alice
    let (ask, ask_order) = order(&bob, "sell", "100", "0.03", 1);
    let res = place(&s, &bob_token, with_signature(ask, &ask_order, &bob)).await;
    let ask_id = res.body["order_id"].as_str().unwrap().to_owned();
    let (bid, bid_order) = order(&alice, "buy", "100", "0.01", 1);
    assert_eq!(place(&s, &alice_token, with_signature(bid, &bid_order, &alice)).await.status, StatusCode::OK);
    wait_for(&s, &bob_token, &format!("/api/v1/orders/{ask_id}"), |o| o["remaining"] == "0.0200").await;

    // When Bob moves the remainder to 101 over REST (it re-enters) ...
    let (request, new_order) = amend(&bob, "sell", "101", "0.02", 2);
    let res = patch(&s, &bob_token, &ask_id, with_signature(request, &new_order, &bob)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    wait_for(&s, &bob_token, &format!("/api/v1/orders/{ask_id}"), |o| o["price"] == "101.00").await;
    // ... and reduces it to 0.015 over the WebSocket (it keeps its priority)
    let mut ws = s.ws(None).await;
    ws.send(json!({"op": "login", "id": 1, "token": bob_token})).await;
    ws.recv_until(|m| m["id"] == 1).await;
    let (_, reduced) = amend(&bob, "sell", "101", "0.015", 3);
    let signature = eip712::sign(&bob, &reduced, &domain()).unwrap();
    ws.send(json!({
        "op": "amend", "id": 2, "order_id": ask_id, "price": "101", "qty": "0.015", "nonce": 3,
        "signed_order": { "order": reduced.message_json(), "signature": hex_signature(&signature) },
    }))
    .await;
    let answer = ws.recv_until(|m| m["id"] == 2).await;
    assert_eq!(answer["result"]["status"], "amend_requested", "{answer}");
    // An unsigned amend over the socket is refused like over REST.
    ws.send(json!({"op": "amend", "id": 3, "order_id": ask_id, "price": "101", "qty": "0.01"})).await;
    assert_eq!(ws.recv_until(|m| m["id"] == 3).await["code"], "signature_required");
    ws.close().await;
    wait_for(&s, &bob_token, &format!("/api/v1/orders/{ask_id}"), |o| o["remaining"] == "0.0150").await;

    // Then Alice's bid at 101 fills the rest at the new price
    let (bid, bid_order) = order(&alice, "buy", "101", "0.015", 2);
    let res = place(&s, &alice_token, with_signature(bid, &bid_order, &alice)).await;
    let bid_id = res.body["order_id"].as_str().unwrap().to_owned();
    wait_for(&s, &alice_token, &format!("/api/v1/orders/{bid_id}"), |o| o["status"] == "filled").await;
    let ask = wait_for(&s, &bob_token, &format!("/api/v1/orders/{ask_id}"), |o| o["status"] == "filled").await;
    assert_eq!(ask["filled"], "0.0250", "{ask}");
    s.stop().await;
}

#[actix_rt::test]
async fn a_challenge_expires_and_is_used_once() {
    let s = start_with(|c| {
        c.server.dev_insecure_user_header = false;
        c.auth.challenge_ttl_ms = 300;
    })
    .await;
    let key = PrivateKeySigner::random();
    let challenge =
        send(&s, Method::POST, None, "/api/v1/auth/challenge", Some(json!({ "address": address(&key) }))).await;
    let signature = key.sign_message_sync(challenge.body["message"].as_str().unwrap().as_bytes()).unwrap();
    let login = json!({ "nonce": challenge.body["nonce"], "signature": hex_signature(&signature) });
    actix_rt::time::sleep(Duration::from_millis(400)).await;
    let res = send(&s, Method::POST, None, "/api/v1/auth/login", Some(login.clone())).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("challenge_expired")));
    let res = send(&s, Method::POST, None, "/api/v1/auth/login", Some(login)).await;
    assert_eq!(res.body["code"], "unknown_challenge", "a challenge is used once: {}", res.text);
    // In time, it works.
    let res = try_login(&s, &address(&key), &key).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    s.stop().await;
}

#[actix_rt::test]
async fn without_a_session_private_routes_are_401() {
    let s = signed_server().await;
    let routes = [
        (Method::GET, "/api/v1/balances"),
        (Method::GET, "/api/v1/orders"),
        (Method::GET, "/api/v1/orders/history"),
        (Method::GET, "/api/v1/orders/1"),
        (Method::GET, "/api/v1/orders/client/x"),
        (Method::GET, "/api/v1/fills"),
        (Method::POST, "/api/v1/orders"),
        (Method::POST, "/api/v1/orders/batch"),
        (Method::POST, "/api/v1/auth/agents"),
        (Method::DELETE, "/api/v1/orders"),
        (Method::DELETE, "/api/v1/orders/1"),
        (Method::PATCH, "/api/v1/orders/1"),
    ];
    let someone = Address::repeat_byte(1).to_string();
    for (method, path) in routes {
        for token in [None, Some("not-a-session")] {
            let res = send(&s, method.clone(), token, path, Some(json!({}))).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}: {}", res.text);
        }
        // The development header means nothing in signed mode.
        let res = s.request(method.clone(), path, &[("x-hob-user", someone.as_str())], None).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{method} {path} with X-Hob-User: {}", res.text);
    }
    s.stop().await;
}

#[actix_rt::test]
async fn a_websocket_logs_in_with_its_session_then_trades_signed() {
    let s = signed_server().await;
    let alice = PrivateKeySigner::random();
    s.fund(&address(&alice), "USDT", "1000").await;
    let token = login(&s, &alice).await;
    let mut ws = s.ws(None).await;
    let (request, signed) = order(&alice, "buy", "100", "0.01", 3);
    let request = with_signature(request, &signed, &alice);
    ws.send(json!({"op": "place", "id": 1, "order": request})).await;
    let refused = ws.recv_until(|m| m["id"] == 1).await;
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    ws.send(json!({"op": "login", "id": 2, "token": "wrong"})).await;
    assert_eq!(ws.recv_until(|m| m["id"] == 2).await["code"], "unauthorized");
    ws.send(json!({"op": "login", "id": 3, "token": token})).await;
    let ok = ws.recv_until(|m| m["id"] == 3).await;
    assert_eq!((ok["type"].as_str(), ok["op"].as_str()), (Some("result"), Some("login")), "{ok}");
    ws.send(json!({"op": "subscribe", "id": 4, "channel": "orders"})).await;
    ws.recv_until(|m| m["type"] == "snapshot" && m["channel"] == "orders").await;
    ws.send(json!({"op": "place", "id": 5, "order": request})).await;
    let placed = ws.recv_until(|m| m["id"] == 5).await;
    assert_eq!(placed["result"]["status"], "accepted", "{placed}");
    ws.close().await;
    s.stop().await;
}

#[actix_rt::test]
async fn each_signed_batch_item_is_checked_on_its_own() {
    let s = signed_server().await;
    let (alice, mallory) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    s.fund(&address(&alice), "USDT", "1000").await;
    let token = login(&s, &alice).await;
    let item = |request: Value| {
        let mut item = request;
        item["op"] = json!("place");
        item
    };
    let (good, good_order) = order(&alice, "buy", "90", "0.02", 1);
    let (forged, forged_order) = order(&alice, "buy", "90", "0.02", 2);
    let (unsigned, _) = order(&alice, "buy", "90", "0.02", 3);
    let ops = json!({ "ops": [
        item(with_signature(good, &good_order, &alice)),
        item(with_signature(forged, &forged_order, &mallory)),
        item(unsigned),
    ]});
    let res = send(&s, Method::POST, Some(&token), "/api/v1/orders/batch", Some(ops)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let results = &res.body["results"];
    assert_eq!(results[0]["result"]["status"], "accepted", "{}", res.text);
    assert_eq!(results[1]["error"]["code"], "wrong_signer", "{}", res.text);
    assert_eq!(results[2]["error"]["code"], "signature_required", "{}", res.text);
    wait_for(&s, &token, "/api/v1/orders", |o| o.as_array().is_some_and(|a| a.len() == 1)).await;
    s.stop().await;
}

/// README.md's worked example is what a wallet signs for that order: its typed data hashes
/// to the same digest as the order the server would rebuild from the request.
#[test]
fn the_readme_worked_example_is_the_order_it_describes() {
    let readme = include_str!("../README.md");
    let after = readme.split("The wallet is asked to sign").nth(1).expect("README has the worked example");
    let block = after.split("```json").nth(1).and_then(|b| b.split("```").next()).expect("a json block");
    let typed: TypedData = serde_json::from_str(block).expect("the example is eth_signTypedData_v4 JSON");
    let order = Order {
        trader: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().unwrap(),
        market: BTC_USDT_CHAIN_ID,
        side: 0,
        orderType: 0,
        timeInForce: 0,
        postOnly: false,
        price: 10_000,
        quantity: 5_000,
        maxFeeBps: 20,
        nonce: 1,
        expiry: 0,
    };
    assert_eq!(typed.eip712_signing_hash().unwrap(), eip712::signing_hash(&order, &domain()));
}
