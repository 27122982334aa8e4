//! A real `hob serve` for the API tests: started in the test's actix system on 127.0.0.1:0
//! with fresh stores in a temporary directory, and driven over real sockets with awc (HTTP
//! and WebSocket).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use hob::api::RunningServer;
use hob::config::Config;

pub const TOKEN: &str = "operator-token-for-tests-0123456789";

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub dir: tempfile::TempDir,
}

/// A test configuration: fresh stores, an ephemeral port, fast feeds, an operator token,
/// the development user header and faucet on.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.workers = 1;
    config.server.dev_insecure_user_header = true;
    config.server.dev_faucet = true;
    config.store.events = format!("sqlite:{}", dir.join("hob.db").display());
    config.store.views = format!("sqlite:{}", dir.join("views.db").display());
    config.engine.feed_poll_ms = 5;
    config.engine.projection_interval_ms = 50;
    config.engine.relay_poll_ms = 20;
    config.operator.token = Some(TOKEN.to_owned());
    config.limits.ip_requests_per_sec = 10_000;
    config.limits.ip_burst = 10_000;
    config.limits.user_requests_per_sec = 10_000;
    config.limits.user_burst = 10_000;
    config.websocket.heartbeat_interval_ms = 50;
    config
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let server = RunningServer::start(config).await.expect("the server starts");
    let base = format!("http://{}", server.local_addr());
    TestServer { server, base, dir }
}

/// The address of test user `n`.
pub fn user(n: u8) -> String {
    format!("0x{}", format!("{n:02x}").repeat(20))
}

pub struct Response {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.local_addr())
    }

    /// Any request; `body` is sent as is (raw bytes, so malformed JSON can be sent too).
    pub async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Response {
        let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
        let mut req = client.request(method, self.url(path));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut res = match body {
            Some(b) => req.send_body(b.to_vec()).await.unwrap(),
            None => req.send().await.unwrap(),
        };
        let bytes = res.body().limit(16 * 1024 * 1024).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response { status: res.status(), headers: res.headers().clone(), body, text }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn get_as(&self, who: &str, path: &str) -> Response {
        self.request(Method::GET, path, &[("x-hob-user", who)], None).await
    }

    pub async fn send_as(&self, method: Method, who: &str, path: &str, body: Value) -> Response {
        let bytes = serde_json::to_vec(&body).unwrap();
        let headers = [("x-hob-user", who), ("content-type", "application/json")];
        self.request(method, path, &headers, Some(&bytes)).await
    }

    pub async fn post_as(&self, who: &str, path: &str, body: Value) -> Response {
        self.send_as(Method::POST, who, path, body).await
    }

    pub async fn operator(&self, method: Method, path: &str) -> Response {
        let auth = format!("Bearer {TOKEN}");
        self.request(method, path, &[("authorization", &auth)], None).await
    }

    /// Credits `amount` of `asset` to `who` through the development faucet.
    pub async fn fund(&self, who: &str, asset: &str, amount: &str) {
        let body = json!({"user": who, "asset": asset, "amount": amount});
        let bytes = serde_json::to_vec(&body).unwrap();
        let res = self
            .request(Method::POST, "/api/v1/dev/faucet", &[("content-type", "application/json")], Some(&bytes))
            .await;
        assert_eq!(res.status, StatusCode::OK, "faucet: {}", res.text);
    }

    /// Places a limit order and returns its id.
    pub async fn limit(&self, who: &str, side: &str, price: &str, qty: &str, nonce: u64) -> String {
        let order = json!({"market": "BTC-USDT", "side": side, "price": price, "qty": qty, "nonce": nonce});
        let res = self.post_as(who, "/api/v1/orders", order).await;
        assert_eq!(res.status, StatusCode::OK, "place: {}", res.text);
        res.body["order_id"].as_str().unwrap().to_owned()
    }

    /// Polls `path` (as `who`, if given) until `done` holds for its body.
    pub async fn wait_for(&self, who: Option<&str>, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let res = match who {
                Some(who) => self.get_as(who, path).await,
                None => self.get(path).await,
            };
            if res.status == StatusCode::OK && done(&res.body) {
                return res.body;
            }
            assert!(Instant::now() < deadline, "{path} never satisfied the condition; last: {}", res.text);
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls an operator route until `done` holds (10 s at most).
    pub async fn wait_for_operator(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let res = self.operator(Method::GET, path).await;
            if res.status == StatusCode::OK && done(&res.body) {
                return res.body;
            }
            assert!(Instant::now() < deadline, "{path} never satisfied the condition; last: {}", res.text);
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The user's balance row of `asset`.
    pub async fn balance(&self, who: &str, asset: &str) -> Value {
        let res = self.get_as(who, "/api/v1/balances").await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        res.body.as_array().unwrap().iter().find(|b| b["asset"] == asset).cloned().unwrap_or(Value::Null)
    }

    pub async fn ws(&self, who: Option<&str>) -> WsClient {
        let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
        let mut req = client.ws(self.ws_url()).max_frame_size(16 * 1024 * 1024);
        if let Some(who) = who {
            req = req.header("x-hob-user", who);
        }
        let (_, framed) = req.connect().await.expect("the WebSocket upgrade succeeds");
        let mut ws = WsClient { framed };
        let welcome = ws.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

pub struct WsClient {
    pub framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
}

/// What the server sent, other than JSON text.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(Option<ws::CloseReason>),
    Gone,
}

impl WsClient {
    pub async fn send(&mut self, message: Value) {
        self.framed.send(ws::Message::Text(message.to_string().into())).await.unwrap();
    }

    pub async fn send_text(&mut self, text: String) {
        self.framed.send(ws::Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON message (pings are answered and skipped); panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Ok(v) => v,
            Err(end) => panic!("the connection ended: {end:?}"),
        }
    }

    /// The next JSON message, or how the connection ended.
    pub async fn next(&mut self) -> Result<Value, Ended> {
        loop {
            let frame =
                tokio::time::timeout(Duration::from_secs(10), self.framed.next()).await.expect("a message within 10 s");
            match frame {
                Some(Ok(ws::Frame::Text(bytes))) => return Ok(serde_json::from_slice(&bytes).unwrap()),
                Some(Ok(ws::Frame::Ping(bytes))) => {
                    self.framed.send(ws::Message::Pong(bytes)).await.unwrap();
                }
                Some(Ok(ws::Frame::Close(reason))) => return Err(Ended::Closed(reason)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Ended::Gone),
            }
        }
    }

    /// Skips messages until one satisfies `want` (for at most 15 s).
    pub async fn recv_until(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut skipped = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "no wanted message in 15 s; the last skipped: {:?}", skipped);
            let message = self.recv().await;
            if want(&message) {
                return message;
            }
            if message["channel"] != "heartbeat" {
                skipped.push(message);
                if skipped.len() > 5 {
                    skipped.remove(0);
                }
            }
        }
    }

    /// One message for each of `wants`, whatever order they come in (others are skipped).
    pub async fn recv_each(&mut self, wants: &[&dyn Fn(&Value) -> bool]) -> Vec<Value> {
        let mut found: Vec<Option<Value>> = vec![None; wants.len()];
        let deadline = Instant::now() + Duration::from_secs(15);
        while found.iter().any(Option::is_none) {
            assert!(Instant::now() < deadline, "not every wanted message came in 15 s: {found:?}");
            let message = self.recv().await;
            if let Some(i) = (0..wants.len()).find(|&i| found[i].is_none() && wants[i](&message)) {
                found[i] = Some(message);
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Reads until the connection ends; returns how.
    pub async fn until_end(&mut self) -> Ended {
        loop {
            if let Err(end) = self.next().await {
                return end;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.framed.send(ws::Message::Close(None)).await;
    }
}
