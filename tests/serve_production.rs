//! `hob serve` on the production adapters: its events and views in MongoDB (SecantusDB) and
//! its queues on SQS FIFO (moto), chosen by configuration alone. Two users trade through the
//! REST API, the server is stopped, and a new one on the same database and queues holds the
//! same balances.
//!
//! Test code unwraps: a failure should fail the test.

#[path = "support/servers.rs"]
mod servers;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::{Method, StatusCode};
use serde_json::{json, Value};

const ALICE: &str = "0x0101010101010101010101010101010101010101";
const BOB: &str = "0x0202020202020202020202020202020202020202";

struct Hob {
    base: String,
    child: Child,
}

impl Drop for Hob {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hob(mongo: u16, moto: u16) -> Hob {
    let port = servers::free_port();
    let db = |name: &str| format!("mongodb://127.0.0.1:{mongo}/{name}?replicaSet=secantus");
    let child = Command::new(env!("CARGO_BIN_EXE_hob"))
        .args(["serve", "--workers", "1", "--dev-insecure-user-header", "--dev-faucet"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--store", &db("hob_events"), "--views", &db("hob_views")])
        .env("HOB_QUEUE", "sqs")
        .env("HOB_SQS_ENDPOINT", format!("http://127.0.0.1:{moto}"))
        .env("HOB_SQS_CREATE_QUEUES", "true")
        .env("HOB_SQS_QUEUE_PREFIX", "serve-")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Hob { base: format!("http://127.0.0.1:{port}"), child }
}

async fn call(hob: &Hob, method: Method, path: &str, user: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    servers::call_as(&hob.base, method, path, user, body).await
}

async fn ok(hob: &Hob, method: Method, path: &str, user: Option<&str>, body: Option<Value>) -> Value {
    let (status, body) = call(hob, method, path, user, body).await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn balances(hob: &Hob, user: &str) -> Value {
    ok(hob, Method::GET, "/api/v1/balances", Some(user), None).await
}

#[actix_rt::test]
async fn given_mongodb_and_sqs_when_two_users_trade_then_a_restarted_server_holds_the_same_balances() {
    let (mongo, moto) = (servers::secantus(), servers::moto());
    let hob = start_hob(mongo.port, moto.port);
    eventually("hob serve is ready on MongoDB and SQS", || async {
        call(&hob, Method::GET, "/readyz", None, None).await.0 == StatusCode::OK
    })
    .await;

    for (user, asset, amount) in [(ALICE, "USDT", "10000"), (BOB, "BTC", "1")] {
        let body = json!({ "user": user, "asset": asset, "amount": amount });
        ok(&hob, Method::POST, "/api/v1/dev/faucet", None, Some(body)).await;
    }
    let order = |side: &str| json!({ "market": "BTC-USDT", "side": side, "price": "100.00", "qty": "0.5", "nonce": 1 });
    ok(&hob, Method::POST, "/api/v1/orders", Some(BOB), Some(order("sell"))).await;
    ok(&hob, Method::POST, "/api/v1/orders", Some(ALICE), Some(order("buy"))).await;
    eventually("the orders cross through the SQS market queue", || async {
        let trades = ok(&hob, Method::GET, "/api/v1/markets/BTC-USDT/trades", None, None).await;
        trades.as_array().is_some_and(|t| t.len() == 1)
    })
    .await;
    eventually("both fills reach the users through the SQS user queue", || async {
        let alice = balances(&hob, ALICE).await.to_string();
        let bob = balances(&hob, BOB).await.to_string();
        alice.contains("\"settling\":\"0.5") && bob.contains("\"settling\":\"49.9")
    })
    .await;
    let before = (balances(&hob, ALICE).await, balances(&hob, BOB).await);
    drop(hob);

    let again = start_hob(mongo.port, moto.port);
    eventually("a new server on the same database is ready", || async {
        call(&again, Method::GET, "/readyz", None, None).await.0 == StatusCode::OK
    })
    .await;
    let after = (balances(&again, ALICE).await, balances(&again, BOB).await);
    assert_eq!(after, before, "the events in MongoDB rebuild the same balances");
    drop(again);

    // an auditor replays the same MongoDB events and finds every invariant holding
    let audit = Command::new(env!("CARGO_BIN_EXE_hob"))
        .args([
            "audit",
            "--json",
            "--store",
            &format!("mongodb://127.0.0.1:{}/hob_events?replicaSet=secantus", mongo.port),
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&audit.stdout).unwrap_or(Value::Null);
    assert_eq!(audit.status.code(), Some(0), "{report} {}", String::from_utf8_lossy(&audit.stderr));
    let streams = report["streams"].as_u64().unwrap_or(0);
    assert!(streams >= 3, "the audit read the market and both users' streams: {report}");
}
