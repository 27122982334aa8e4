//! The chain routes of a server without a chain (`chain.mode = "none"`, the library default):
//! clients learn there is none, the operator's chain commands are refused with a clear code,
//! and the faucet keeps crediting off-chain balances. With a chain: `tests/serve_chain.rs`.

// Test code unwraps: a failure should fail the test.

mod api_support;

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use api_support::{start, user};

#[actix_rt::test]
async fn given_no_chain_when_a_client_asks_where_trades_settle_then_it_is_told_none() {
    let s = start().await;
    let res = s.get("/api/v1/chain").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["mode"], "none");
    assert_eq!(res.body["exchange"], serde_json::Value::Null);
    assert_eq!(res.body["faucet"], false);
    // Ready without a chain: no chain checks.
    let ready = s.get("/readyz").await;
    let names: Vec<&str> = ready.body["checks"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["event_store", "view_store", "queue"]);
    s.stop().await;
}

#[actix_rt::test]
async fn given_no_chain_when_the_operator_pauses_then_it_is_refused_as_no_chain() {
    let s = start().await;
    for (method, path) in [
        (Method::POST, "/operator/chain/pause"),
        (Method::POST, "/operator/chain/unpause"),
        (Method::GET, "/operator/chain"),
        (Method::GET, "/operator/settlement"),
    ] {
        let res = s.operator(method.clone(), path).await;
        assert_eq!(
            (res.status, res.body["code"].as_str()),
            (StatusCode::CONFLICT, Some("no_chain")),
            "{method} {path}: {}",
            res.text
        );
    }
    // Without the token, nobody learns even that.
    let res = s.request(Method::POST, "/operator/chain/pause", &[], None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[actix_rt::test]
async fn given_no_chain_when_the_faucet_is_asked_then_it_credits_the_ledger_and_refuses_a_wallet_mint() {
    let s = start().await;
    let alice = user(1);
    let res = s.post_as(&alice, "/api/v1/dev/faucet", json!({"user": alice, "asset": "USDT", "amount": "5"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["target"], "ledger");
    assert_eq!(s.balance(&alice, "USDT").await["available"], "5");

    let wallet = json!({"user": alice, "asset": "USDT", "amount": "5", "target": "wallet"});
    let res = s.post_as(&alice, "/api/v1/dev/faucet", wallet).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::CONFLICT, Some("no_chain")), "{}", res.text);
    let bad = json!({"user": alice, "asset": "USDT", "amount": "5", "target": "moon"});
    let res = s.post_as(&alice, "/api/v1/dev/faucet", bad).await;
    assert_eq!((res.status, res.body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")));
    assert_eq!(s.balance(&alice, "USDT").await["available"], "5", "refused requests change nothing");
    s.stop().await;
}
