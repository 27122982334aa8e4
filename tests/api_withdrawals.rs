//! `POST /api/v1/withdrawals` and `GET /api/v1/withdrawals` in signed mode, over real sockets:
//! a wallet's own EIP-712 `Withdrawal` debits its available funds to withdrawing; an agent's
//! signature or session, a signature over other terms, more than is available or a nonce used
//! twice is refused with a code and changes nothing. (The on-chain half, the operator
//! executing it, is tested against anvil in `chain_watcher_anvil.rs`.)
//!
//! Test code unwraps: a failure should fail the test.

mod api_support;

use std::collections::BTreeMap;

use actix_web::http::{Method, StatusCode};
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use serde_json::{json, Value};

use api_support::{start_with, Response, TestServer};
use hob::chain::eip712::{self, AgentAuthorization, MessageJson, Withdrawal};
use hob::domain::AssetId;

const EXCHANGE: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const CHAIN_ID: u64 = 31_337;
/// USDT's token in these tests (any address: nothing here goes on-chain).
const USDT_TOKEN: Address = Address::repeat_byte(0x77);

async fn signed_server() -> TestServer {
    let s = start_with(|c| {
        c.server.dev_insecure_user_header = false;
        c.auth.exchange_address = EXCHANGE.to_owned();
        c.auth.chain_id = CHAIN_ID;
    })
    .await;
    s.server.state().set_withdrawal_tokens(BTreeMap::from([(AssetId::new("USDT").unwrap(), USDT_TOKEN)]));
    s
}

fn address(key: &PrivateKeySigner) -> String {
    key.address().to_checksum(None)
}

fn domain() -> alloy::sol_types::Eip712Domain {
    eip712::domain(CHAIN_ID, EXCHANGE.parse().unwrap())
}

fn hex(signature: &alloy::primitives::Signature) -> String {
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

/// Logs in for `user`'s wallet with a challenge signed by `signer` (the wallet or its agent).
async fn login_as(s: &TestServer, user: &PrivateKeySigner, signer: &PrivateKeySigner) -> String {
    let body = json!({ "address": address(user) });
    let challenge = send(s, Method::POST, None, "/api/v1/auth/challenge", Some(body)).await;
    let signature = signer.sign_message_sync(challenge.body["message"].as_str().unwrap().as_bytes()).unwrap();
    let body = json!({ "nonce": challenge.body["nonce"], "signature": hex(&signature) });
    let res = send(s, Method::POST, None, "/api/v1/auth/login", Some(body)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.body["token"].as_str().unwrap().to_owned()
}

/// A withdrawal of `usdt` USDT (6 decimals) at `nonce`, signed by `signer` for `user`.
fn withdrawal(user: &PrivateKeySigner, signer: &PrivateKeySigner, usdt: &str, nonce: u64) -> Value {
    let units = (usdt.parse::<f64>().unwrap() * 1e6).round() as u128;
    let w = Withdrawal { user: user.address(), token: USDT_TOKEN, amount: U256::from(units), nonce, expiry: 0 };
    let signature = eip712::sign(signer, &w, &domain()).unwrap();
    json!({ "asset": "USDT", "amount": usdt, "nonce": nonce.to_string(), "signature": hex(&signature) })
}

async fn withdraw(s: &TestServer, token: &str, body: Value) -> Response {
    send(s, Method::POST, Some(token), "/api/v1/withdrawals", Some(body)).await
}

async fn usdt_available(s: &TestServer, token: &str) -> String {
    let balances = send(s, Method::GET, Some(token), "/api/v1/balances", None).await.body;
    let usdt = balances.as_array().unwrap().iter().find(|b| b["asset"] == "USDT").cloned().unwrap_or(Value::Null);
    usdt["available"].as_str().unwrap_or("0").to_owned()
}

/// What a refused request must leave untouched: the balance and the history.
async fn account(s: &TestServer, token: &str) -> (String, Value) {
    let history = send(s, Method::GET, Some(token), "/api/v1/withdrawals", None).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    (usdt_available(s, token).await, history.body)
}

#[actix_rt::test]
async fn a_withdrawal_signed_by_the_wallet_moves_funds_to_withdrawing_and_is_listed() {
    let s = signed_server().await;
    let alice = PrivateKeySigner::random();
    s.fund(&address(&alice), "USDT", "100").await;
    let token = login_as(&s, &alice, &alice).await;
    // Given the served schema, which names the Withdrawal type and USDT's token,
    let typed = s.get("/api/v1/eip712").await.body;
    assert!(typed["types"]["Withdrawal"].is_array(), "{typed}");
    assert_eq!(typed["withdrawal_tokens"], json!([{ "asset": "USDT", "token": USDT_TOKEN.to_checksum(None) }]));
    // when Alice signs a withdrawal of 40 USDT,
    let res = withdraw(&s, &token, withdrawal(&alice, &alice, "40", 1)).await;
    // then 40 leave available, and her history shows it withdrawing.
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!((res.body["status"].as_str(), res.body["amount"].as_str()), (Some("withdrawing"), Some("40")));
    assert_eq!(usdt_available(&s, &token).await, "60");
    let history = send(&s, Method::GET, Some(&token), "/api/v1/withdrawals", None).await.body;
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!((history[0]["nonce"].as_str(), history[0]["status"].as_str()), (Some("1"), Some("withdrawing")));
    s.stop().await;
}

#[actix_rt::test]
async fn agents_bad_signatures_overdrafts_and_reused_nonces_are_refused_and_change_nothing() {
    let s = signed_server().await;
    let (carol, agent) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    s.fund(&address(&carol), "USDT", "100").await;
    let token = login_as(&s, &carol, &carol).await;
    // Carol authorises an agent, which may trade for her.
    let expiry = chrono::Utc::now().timestamp() as u64 + 3_600;
    let grant = AgentAuthorization { owner: carol.address(), agent: agent.address(), expiry, nonce: 1 };
    let signature = eip712::sign(&carol, &grant, &domain()).unwrap();
    let body = json!({ "authorization": grant.message_json(), "signature": hex(&signature) });
    assert_eq!(send(&s, Method::POST, Some(&token), "/api/v1/auth/agents", Some(body)).await.status, StatusCode::OK);
    let agent_token = login_as(&s, &carol, &agent).await;
    let before = account(&s, &token).await;

    let mut terms_changed = withdrawal(&carol, &carol, "10", 2);
    terms_changed["amount"] = json!("90");
    let cases: Vec<(&str, &str, Value, StatusCode, &str)> = vec![
        (
            "an agent's session",
            &agent_token,
            withdrawal(&carol, &carol, "10", 1),
            StatusCode::FORBIDDEN,
            "agent_cannot_withdraw",
        ),
        ("an agent's signature", &token, withdrawal(&carol, &agent, "10", 1), StatusCode::FORBIDDEN, "wrong_signer"),
        ("other terms than signed", &token, terms_changed, StatusCode::FORBIDDEN, "wrong_signer"),
        (
            "more than available",
            &token,
            withdrawal(&carol, &carol, "100.000001", 1),
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_balance",
        ),
        (
            "a malformed signature",
            &token,
            json!({"asset": "USDT", "amount": "1", "nonce": "1", "signature": "0x12"}),
            StatusCode::BAD_REQUEST,
            "malformed_signature",
        ),
        ("a zero amount", &token, withdrawal(&carol, &carol, "0", 1), StatusCode::BAD_REQUEST, "zero_amount"),
        (
            "a nonce that is not a number",
            &token,
            json!({"asset": "USDT", "amount": "1", "nonce": "-1", "signature": "0x"}),
            StatusCode::BAD_REQUEST,
            "invalid_number",
        ),
        (
            "an unknown asset",
            &token,
            json!({"asset": "DOGE", "amount": "1", "nonce": "1", "signature": "0x"}),
            StatusCode::NOT_FOUND,
            "unknown_asset",
        ),
        (
            "an asset with no token",
            &token,
            json!({"asset": "BTC", "amount": "1", "nonce": "1", "signature": "0x"}),
            StatusCode::SERVICE_UNAVAILABLE,
            "withdrawals_unavailable",
        ),
    ];
    for (what, who, body, status, code) in cases {
        let res = withdraw(&s, who, body).await;
        assert_eq!((res.status, res.body["code"].as_str()), (status, Some(code)), "{what}: {}", res.text);
        assert_eq!(account(&s, &token).await, before, "{what} changed something");
    }
    // A nonce is used once, even for another amount.
    assert_eq!(withdraw(&s, &token, withdrawal(&carol, &carol, "10", 5)).await.status, StatusCode::OK);
    let after_one = account(&s, &token).await;
    let res = withdraw(&s, &token, withdrawal(&carol, &carol, "5", 5)).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::CONFLICT, Some("withdrawal_nonce_used")));
    assert_eq!(account(&s, &token).await, after_one);
    s.stop().await;
}

#[actix_rt::test]
async fn without_a_session_withdrawals_are_401() {
    let s = signed_server().await;
    let res = send(&s, Method::GET, None, "/api/v1/withdrawals", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let carol = PrivateKeySigner::random();
    let res = send(&s, Method::POST, None, "/api/v1/withdrawals", Some(withdrawal(&carol, &carol, "1", 1))).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}
