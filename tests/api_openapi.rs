//! The OpenAPI document is generated from the mounted routes. Here, on a running server: the
//! document lists exactly the routes this specification names, and every documented route
//! answers on the socket (with anything but "no such route"), in both configurations.

mod api_support;

use std::collections::BTreeSet;

use actix_web::http::Method;

use api_support::{start_with, user, TOKEN};

const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/ws"),
    ("GET", "/console"),
    ("GET", "/console/{asset}"),
    ("GET", "/api/v1/markets"),
    ("GET", "/api/v1/markets/{market}"),
    ("GET", "/api/v1/markets/{market}/book"),
    ("GET", "/api/v1/markets/{market}/trades"),
    ("GET", "/api/v1/markets/{market}/candles"),
    ("GET", "/api/v1/markets/{market}/ticker"),
    ("GET", "/api/v1/eip712"),
    ("GET", "/api/v1/chain"),
    ("GET", "/operator/actors"),
    ("GET", "/operator/markets/{market}"),
    ("GET", "/operator/users/{address}"),
    ("POST", "/operator/markets/{market}/halt"),
    ("POST", "/operator/markets/{market}/resume"),
    ("POST", "/operator/views/rebuild"),
    ("GET", "/operator/dead-letters"),
    ("GET", "/operator/settlement"),
    ("GET", "/operator/chain"),
    ("POST", "/operator/chain/pause"),
    ("POST", "/operator/chain/unpause"),
];

/// Mounted in both modes: a session token (signed mode) or `X-Hob-User` (development mode).
const PRIVATE: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/agents"),
    ("GET", "/api/v1/balances"),
    ("GET", "/api/v1/orders"),
    ("GET", "/api/v1/orders/history"),
    ("GET", "/api/v1/orders/{order_id}"),
    ("GET", "/api/v1/orders/client/{client_order_id}"),
    ("GET", "/api/v1/fills"),
    ("POST", "/api/v1/orders"),
    ("POST", "/api/v1/orders/batch"),
    ("POST", "/api/v1/withdrawals"),
    ("GET", "/api/v1/withdrawals"),
    ("DELETE", "/api/v1/orders"),
    ("DELETE", "/api/v1/orders/{order_id}"),
    ("PATCH", "/api/v1/orders/{order_id}"),
];

/// Mounted only in signed mode (the default): development mode has no sessions.
const LOGIN: &[(&str, &str)] = &[("POST", "/api/v1/auth/challenge"), ("POST", "/api/v1/auth/login")];

/// Mounted only with `--dev-faucet`.
const FAUCET: &[(&str, &str)] = &[("POST", "/api/v1/dev/faucet")];

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, ops)| {
            let ops = ops.as_object().expect("operations by method");
            ops.keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

fn set(groups: &[&[(&str, &str)]]) -> BTreeSet<(String, String)> {
    groups.iter().flat_map(|g| g.iter()).map(|(m, p)| (m.to_string(), p.to_string())).collect()
}

fn concrete(path: &str) -> String {
    path.replace("{market}", "BTC-USDT")
        .replace("{order_id}", "1")
        .replace("{client_order_id}", "nobody")
        .replace("{address}", &user(1))
        .replace("{asset}", "console.js")
}

/// Requests every route and asserts it is mounted: whatever it answers, it is not the
/// fallback's `no_such_route`.
async fn assert_mounted(s: &api_support::TestServer, routes: &BTreeSet<(String, String)>) {
    let auth = format!("Bearer {TOKEN}");
    let alice = user(1);
    let headers = [("x-hob-user", alice.as_str()), ("authorization", auth.as_str())];
    for (method, path) in routes {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let res = s.request(method.clone(), &concrete(path), &headers, None).await;
        assert_ne!(res.body["code"], "no_such_route", "{method} {path} is documented but not mounted");
    }
}

#[actix_rt::test]
async fn the_document_lists_exactly_the_mounted_routes_with_the_dev_flags() {
    let s = start_with(|_| {}).await;
    let served = s.get("/openapi.json").await;
    assert_eq!(served.text, s.server.openapi(), "the served document is the generated one");
    let doc = documented(&served.body);
    assert_eq!(doc, set(&[PUBLIC, PRIVATE, FAUCET]));
    assert_mounted(&s, &doc).await;
    // and the probe can tell: a route nobody mounted is reported as such
    let res = s.request(Method::PUT, "/api/v1/orders", &[], None).await;
    assert_eq!(res.body["code"], "no_such_route");
    s.stop().await;
}

#[actix_rt::test]
async fn without_the_dev_flags_login_replaces_the_header_and_the_faucet_is_gone() {
    let s = start_with(|c| {
        c.server.dev_insecure_user_header = false;
        c.server.dev_faucet = false;
    })
    .await;
    let doc = documented(&s.get("/openapi.json").await.body);
    assert_eq!(doc, set(&[PUBLIC, PRIVATE, LOGIN]));
    assert_mounted(&s, &doc).await;
    let alice = user(1);
    for (method, path) in PRIVATE {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let res = s.request(method.clone(), &concrete(path), &[("x-hob-user", alice.as_str())], None).await;
        assert_eq!(res.status.as_u16(), 401, "{method} {path} needs a session, not X-Hob-User: {}", res.text);
    }
    for (method, path) in FAUCET {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let res = s.request(method.clone(), &concrete(path), &[], None).await;
        assert_eq!(res.body["code"], "no_such_route", "{method} {path} must not be mounted: {}", res.text);
    }
    s.stop().await;
}
