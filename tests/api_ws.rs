//! The WebSocket protocol over real sockets (docs/websocket.md).

mod api_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use api_support::{start, start_with, user, Ended, TestServer, WsClient};

/// A client's copy of an L2 book: price -> quantity per side, as decimals.
#[derive(Debug, Default, PartialEq)]
struct Book {
    bids: BTreeMap<Decimal, String>,
    asks: BTreeMap<Decimal, String>,
    last_update_id: u64,
}

impl Book {
    fn from_snapshot(s: &Value) -> Book {
        let mut book = Book { last_update_id: s["last_update_id"].as_u64().unwrap(), ..Book::default() };
        book.apply_levels(s);
        book
    }

    fn apply_levels(&mut self, message: &Value) {
        for (side, levels) in [("bids", &mut self.bids), ("asks", &mut self.asks)] {
            for level in message[side].as_array().unwrap() {
                let price: Decimal = level[0].as_str().unwrap().parse().unwrap();
                let qty = level[1].as_str().unwrap();
                if qty.parse::<Decimal>().unwrap().is_zero() {
                    levels.remove(&price);
                } else {
                    levels.insert(price, qty.to_owned());
                }
            }
        }
    }

    /// Applies a diff, checking it continues the book without a gap.
    fn apply_diff(&mut self, diff: &Value) {
        let (first, last) = (diff["first_update_id"].as_u64().unwrap(), diff["last_update_id"].as_u64().unwrap());
        assert!(
            first <= self.last_update_id + 1 && self.last_update_id < last,
            "gap: book at {}, diff {first}..={last}",
            self.last_update_id
        );
        self.apply_levels(diff);
        self.last_update_id = last;
        assert_eq!(diff["checksum"].as_u64(), Some(u64::from(self.checksum())), "checksum after {last}");
    }

    fn levels(&self) -> (Vec<[String; 2]>, Vec<[String; 2]>) {
        let text = |(p, q): (&Decimal, &String)| [format!("{p:.2}"), q.clone()];
        (self.bids.iter().rev().map(text).collect(), self.asks.iter().map(text).collect())
    }

    fn checksum(&self) -> u32 {
        let (bids, asks) = self.levels();
        let mut parts = Vec::new();
        for i in 0..10 {
            for side in [&bids, &asks] {
                if let Some([p, q]) = side.get(i) {
                    parts.push(p.clone());
                    parts.push(q.clone());
                }
            }
        }
        crc32fast::hash(parts.join(":").as_bytes())
    }
}

async fn subscribe(ws: &mut WsClient, id: u64, channel: &str, market: Option<&str>) -> Value {
    let mut request = json!({"op": "subscribe", "id": id, "channel": channel});
    if let Some(market) = market {
        request["market"] = json!(market);
    }
    ws.send(request).await;
    let ack = ws.recv_until(|m| m["id"] == id).await;
    assert_eq!((ack["type"].as_str(), ack["channel"].as_str()), (Some("ack"), Some(channel)), "{ack}");
    ack
}

async fn funded(s: &TestServer) -> (String, String) {
    let (alice, bob) = (user(1), user(2));
    s.fund(&alice, "USDT", "1000000").await;
    s.fund(&bob, "BTC", "1000").await;
    (alice, bob)
}

#[actix_rt::test]
async fn l2_diffs_applied_to_the_snapshot_rebuild_the_book_without_gaps() {
    let s = start().await;
    let (alice, bob) = funded(&s).await;
    // some book before the subscription
    s.limit(&alice, "buy", "99.00", "1", 100).await;
    s.wait_for(None, "/api/v1/markets/BTC-USDT/book", |b| b["bids"] != json!([])).await;

    let mut ws = s.ws(None).await;
    subscribe(&mut ws, 1, "l2", Some("BTC-USDT")).await;
    let snapshot = ws.recv().await;
    assert_eq!((snapshot["type"].as_str(), snapshot["channel"].as_str()), (Some("snapshot"), Some("l2")));
    let mut book = Book::from_snapshot(&snapshot);
    assert_eq!(book.bids.len(), 1);
    assert_eq!(snapshot["checksum"].as_u64(), Some(u64::from(book.checksum())));

    // when the book moves: new levels, a trade through two levels, an amend and a cancel
    let mut nonce = 0;
    let mut next = || {
        nonce += 1;
        nonce
    };
    for (i, price) in ["100.00", "100.50", "101.00", "102.00"].iter().enumerate() {
        s.limit(&bob, "sell", price, &format!("0.{}", i + 1), next()).await;
    }
    // (orders of different users reach the market in no fixed order: let the asks rest first)
    s.wait_for(None, "/api/v1/markets/BTC-USDT/book", |b| b["asks"].as_array().is_some_and(|a| a.len() == 4)).await;
    let bid = s.limit(&alice, "buy", "98.00", "2", next()).await;
    s.limit(&alice, "buy", "100.50", "0.25", next()).await;
    let res = s
        .send_as(
            actix_web::http::Method::PATCH,
            &alice,
            &format!("/api/v1/orders/{bid}"),
            json!({"price": "97.50", "qty": "1.5"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let cancel =
        s.send_as(actix_web::http::Method::DELETE, &alice, &format!("/api/v1/orders/{bid}"), json!(null)).await;
    assert!(
        cancel.status == StatusCode::OK
            || cancel.body["code"] == "cancel_pending"
            || cancel.body["code"] == "amend_pending",
        "{}",
        cancel.text
    );

    // then the diffs chain without gaps and, once caught up, equal the REST book
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rest = s.get("/api/v1/markets/BTC-USDT/book").await.body;
        let rest_version = rest["last_update_id"].as_u64().unwrap();
        while book.last_update_id < rest_version {
            let diff = ws.recv_until(|m| m["channel"] == "l2").await;
            assert_eq!(diff["type"], "update");
            book.apply_diff(&diff);
        }
        let (bids, asks) = book.levels();
        if book.last_update_id == rest_version && json!(bids) == rest["bids"] && json!(asks) == rest["asks"] {
            // Caught up only once alice's last request, the cancel, is seen in her orders AND
            // in the book (the market feed may trail the user's): only the 99.00 bid is left,
            // and the crossing bid's trade (handled before the cancel) took the 100.00 ask. A
            // book from before alice's bids also has only the 99.00 bid, so both are needed.
            let status = s.get_as(&alice, &format!("/api/v1/orders/{bid}")).await.body;
            let only_first_bid = rest["bids"].as_array().is_some_and(|b| b.len() == 1);
            let traded = !book.asks.contains_key(&"100.00".parse().unwrap());
            if status["status"] == "cancelled" && only_first_bid && traded {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the book never converged: {book:?} vs {rest}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(book.asks.contains_key(&"101.00".parse().unwrap()));
    assert_eq!(book.asks.get(&"100.50".parse().unwrap()).map(String::as_str), Some("0.0500"), "{book:?}");
    s.stop().await;
}

#[actix_rt::test]
async fn trades_ticker_candles_and_heartbeat_channels() {
    let s = start().await;
    let (alice, bob) = funded(&s).await;
    let mut ws = s.ws(None).await;
    subscribe(&mut ws, 1, "trades", Some("BTC-USDT")).await;
    assert_eq!(ws.recv().await["trades"], json!([]), "the trades snapshot");
    subscribe(&mut ws, 2, "ticker", Some("BTC-USDT")).await;
    assert_eq!(ws.recv().await["last_price"], Value::Null);
    ws.send(json!({"op": "subscribe", "id": 3, "channel": "candles", "market": "BTC-USDT", "interval": "1h"})).await;
    assert_eq!(ws.recv().await["interval"], "1h");
    assert_eq!(ws.recv().await["candles"], json!([]));
    subscribe(&mut ws, 4, "heartbeat", None).await;

    s.limit(&bob, "sell", "100.00", "1", 1).await;
    s.limit(&alice, "buy", "100.00", "0.4", 1).await;
    // one batch of events updates the three channels, in no particular order
    let got = ws
        .recv_each(&[
            &|m: &Value| m["channel"] == "trades",
            &|m: &Value| m["channel"] == "ticker" && m["last_price"] == "100.00",
            &|m: &Value| m["channel"] == "candles",
        ])
        .await;
    let (trades, ticker, candles) = (&got[0], &got[1], &got[2]);
    assert_eq!(trades["type"], "update");
    assert_eq!(
        (trades["trades"][0]["price"].as_str(), trades["trades"][0]["qty"].as_str()),
        (Some("100.00"), Some("0.4000"))
    );
    assert_eq!(ticker["volume_24h"], "0.4000");
    assert_eq!(
        (candles["candles"][0]["close"].as_str(), candles["candles"][0]["trades"].as_u64()),
        (Some("100.00"), Some(1))
    );
    let first = ws.recv_until(|m| m["channel"] == "heartbeat").await["counter"].as_u64().unwrap();
    let second = ws.recv_until(|m| m["channel"] == "heartbeat").await["counter"].as_u64().unwrap();
    assert_eq!(second, first + 1);

    // unsubscribing is acknowledged and stops the updates
    ws.send(json!({"op": "unsubscribe", "id": 5, "channel": "trades", "market": "BTC-USDT"})).await;
    let ack = ws.recv_until(|m| m["id"] == 5).await;
    assert_eq!((ack["type"].as_str(), ack["op"].as_str()), (Some("ack"), Some("unsubscribe")));
    s.limit(&alice, "buy", "100.00", "0.1", 2).await;
    ws.recv_until(|m| m["channel"] == "ticker" && m["volume_24h"] == "0.5000").await;
    ws.send(json!({"op": "ping", "id": "last"})).await;
    let rest = ws.recv_until(|m| m["type"] == "pong").await;
    assert_eq!(rest["id"], "last");
    s.stop().await;
}

#[actix_rt::test]
async fn bad_messages_get_errors_and_the_connection_stays_usable() {
    let s = start_with(|c| c.websocket.max_message_bytes = 1_024).await;
    let mut ws = s.ws(None).await;
    let cases = [
        ("{not json".to_owned(), "malformed"),
        (json!({"op": "dance", "id": 1}).to_string(), "unknown_op"),
        (json!({"op": "subscribe", "id": 2, "channel": "gossip"}).to_string(), "unknown_channel"),
        (json!({"op": "subscribe", "id": 3, "channel": "l2", "market": "DOGE-USDT"}).to_string(), "unknown_market"),
        (json!({"op": "subscribe", "id": 4, "channel": "l2"}).to_string(), "missing_market"),
        (json!({"op": "subscribe", "id": 5, "channel": "orders"}).to_string(), "unauthorized"),
        (json!({"op": "unsubscribe", "id": 6, "channel": "trades", "market": "BTC-USDT"}).to_string(), "not_subscribed"),
        (
            json!({"op": "place", "id": 7, "order": {"market": "BTC-USDT", "side": "buy", "price": "1", "qty": "1", "nonce": 1}})
                .to_string(),
            "unauthorized",
        ),
        (json!({"op": "subscribe", "id": 8, "channel": "l2", "market": "BTC-USDT", "extra": 1}).to_string(), "malformed"),
    ];
    for (text, code) in cases {
        ws.send_text(text.clone()).await;
        let error = ws.recv().await;
        assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some(code)), "{text} -> {error}");
        if let Ok(request) = serde_json::from_str::<Value>(&text) {
            assert_eq!(error["id"], request["id"], "the error carries the request's id");
        }
    }
    ws.send(json!({"op": "ping", "id": 9})).await;
    assert_eq!(ws.recv().await, json!({"type": "pong", "id": 9}));

    // a message over the limit closes the connection with 1009 and a reason
    ws.send_text(format!("{{\"op\":\"ping\",\"id\":\"{}\"}}", "x".repeat(2_000))).await;
    match ws.until_end().await {
        Ended::Closed(Some(reason)) => {
            assert_eq!(u16::from(reason.code), 1009);
            assert!(reason.description.unwrap_or_default().contains("too large"));
        }
        other => panic!("expected a close with a reason, got {other:?}"),
    }
    let metrics = s.get("/metrics").await.text;
    assert!(metrics.contains("hob_ws_dropped_total{reason=\"too_large\"} 1"), "{metrics}");
    s.stop().await;
}

#[actix_rt::test]
async fn private_channels_snapshot_then_update_and_again_after_reconnect() {
    let s = start().await;
    let (alice, bob) = funded(&s).await;
    let mut ws = s.ws(Some(&alice)).await;
    subscribe(&mut ws, 1, "orders", None).await;
    assert_eq!(ws.recv().await["orders"], json!([]));
    subscribe(&mut ws, 2, "balances", None).await;
    let balances = ws.recv().await;
    assert_eq!(
        balances["balances"],
        json!([{"asset": "USDT", "available": "1000000", "locked": "0", "settling": "0"}])
    );
    subscribe(&mut ws, 3, "fills", None).await;
    assert_eq!(ws.recv().await["fills"], json!([]));

    // order entry over the socket, answered by request id
    let order = json!({"market": "BTC-USDT", "side": "buy", "price": "100.00", "qty": "2", "nonce": 1, "client_order_id": "a1"});
    ws.send(json!({"op": "place", "id": "p1", "order": order})).await;
    let placed = ws.recv_until(|m| m["id"] == "p1").await;
    assert_eq!((placed["type"].as_str(), placed["op"].as_str()), (Some("result"), Some("place")), "{placed}");
    let order_id = placed["result"]["order_id"].as_str().unwrap().to_owned();
    let working = ws.recv_until(|m| m["channel"] == "orders" && m["orders"][0]["status"] == "working").await;
    assert_eq!(working["orders"][0]["order_id"].as_str(), Some(order_id.as_str()));

    // a fill reaches fills, orders and balances
    s.limit(&bob, "sell", "100.00", "0.5", 1).await;
    // (the three channels' updates of one batch of events come in any order)
    let (mut fill, mut filled, mut moved) = (None, false, None);
    while fill.is_none() || !filled || moved.is_none() {
        let m = ws.recv().await;
        match m["channel"].as_str() {
            Some("fills") if m["type"] == "update" => fill = Some(m),
            Some("orders") if m["orders"][0]["filled"] == "0.5000" => filled = true,
            Some("balances") if m["balances"].to_string().contains("BTC") => moved = Some(m),
            _ => {}
        }
    }
    let (fill, moved) = (fill.unwrap(), moved.unwrap());
    assert_eq!(
        (fill["fills"][0]["qty"].as_str(), fill["fills"][0]["liquidity"].as_str()),
        (Some("0.5000"), Some("maker"))
    );
    let version = moved["version"].as_u64().unwrap();
    ws.close().await;

    // a reconnecting client reconciles from the snapshots alone
    let mut again = s.ws(Some(&alice)).await;
    subscribe(&mut again, 1, "orders", None).await;
    let orders = again.recv().await;
    assert_eq!(orders["orders"][0]["remaining"], "1.5000");
    assert_eq!(orders["orders"][0]["client_order_id"], "a1");
    subscribe(&mut again, 2, "fills", None).await;
    assert_eq!(again.recv().await["fills"].as_array().map(Vec::len), Some(1));
    subscribe(&mut again, 3, "balances", None).await;
    let snapshot = again.recv().await;
    assert!(snapshot["version"].as_u64().unwrap() >= version);
    let rest = s.get_as(&alice, "/api/v1/balances").await.body;
    assert_eq!(snapshot["balances"], rest);
    s.stop().await;
}

#[actix_rt::test]
async fn order_entry_requests_are_answered_by_id() {
    let s = start().await;
    let (alice, _) = funded(&s).await;
    let mut ws = s.ws(Some(&alice)).await;
    let call = async |ws: &mut WsClient, id: &str, request: Value| {
        let mut request = request;
        request["id"] = json!(id);
        ws.send(request).await;
        ws.recv_until(|m| m["id"] == id).await
    };
    let place = json!({"op": "place", "order": {"market": "BTC-USDT", "side": "buy", "price": "90.00", "qty": "1", "nonce": 1}});
    let placed = call(&mut ws, "a", place).await;
    let order_id = placed["result"]["order_id"].as_str().unwrap().to_owned();
    s.wait_for(Some(&alice), &format!("/api/v1/orders/{order_id}"), |o| o["status"] == "working").await;
    let amended = call(&mut ws, "b", json!({"op": "amend", "order_id": order_id, "price": "91.00", "qty": "1"})).await;
    assert_eq!(amended["result"]["status"], "amend_requested", "{amended}");
    s.wait_for(Some(&alice), &format!("/api/v1/orders/{order_id}"), |o| o["price"] == "91.00").await;
    let off_grid = json!({"op": "place", "order": {"market": "BTC-USDT", "side": "buy", "price": "90.001", "qty": "1", "nonce": 2}});
    let refused = call(&mut ws, "c", off_grid).await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("off_grid_price")));
    let batch = json!({"op": "batch", "ops": [
        {"op": "place", "market": "ETH-USDT", "side": "buy", "price": "10.00", "qty": "1", "nonce": 3},
        {"op": "cancel", "order_id": "7"},
    ]});
    let batched = call(&mut ws, "d", batch).await;
    assert_eq!(batched["result"]["results"][0]["result"]["status"], "accepted");
    assert_eq!(batched["result"]["results"][1]["error"]["code"], "unknown_order");
    let cancelled = call(&mut ws, "e", json!({"op": "cancel", "order_id": order_id})).await;
    assert_eq!(cancelled["result"]["status"], "cancel_requested");
    s.wait_for(Some(&alice), "/api/v1/orders", |o| o.as_array().is_some_and(|a| a.len() == 1)).await;
    let all = call(&mut ws, "f", json!({"op": "cancel_all", "market": "ETH-USDT"})).await;
    assert_eq!(all["result"]["cancel_requested"].as_array().map(Vec::len), Some(1));
    s.wait_for(Some(&alice), "/api/v1/orders", |o| o == &json!([])).await;
    s.stop().await;
}

async fn place_over(ws: &mut WsClient, id: &str, nonce: u64) -> String {
    let order = json!({"market": "BTC-USDT", "side": "buy", "price": "50.00", "qty": "1", "nonce": nonce});
    ws.send(json!({"op": "place", "id": id, "order": order})).await;
    let placed = ws.recv_until(|m| m["id"] == id).await;
    placed["result"]["order_id"].as_str().unwrap_or_else(|| panic!("{placed}")).to_owned()
}

#[actix_rt::test]
async fn cancel_on_disconnect_is_opt_in() {
    let s = start().await;
    let (alice, _) = funded(&s).await;
    // a session that did not opt in leaves its orders
    let mut plain = s.ws(Some(&alice)).await;
    let kept = place_over(&mut plain, "k", 1).await;
    s.wait_for(Some(&alice), &format!("/api/v1/orders/{kept}"), |o| o["status"] == "working").await;
    plain.close().await;
    // one that opted in has them cancelled when it goes
    let mut ws = s.ws(Some(&alice)).await;
    ws.send(json!({"op": "cancel_on_disconnect", "id": 1, "enabled": true})).await;
    assert_eq!(ws.recv_until(|m| m["id"] == 1).await["result"]["enabled"], true);
    let a = place_over(&mut ws, "a", 2).await;
    let b = place_over(&mut ws, "b", 3).await;
    s.wait_for(Some(&alice), "/api/v1/orders", |o| o.as_array().is_some_and(|a| a.len() == 3)).await;
    drop(ws);
    // every open order of the user goes, the earlier session's included (cancel-all)
    let history =
        s.wait_for(Some(&alice), "/api/v1/orders/history", |h| h.as_array().is_some_and(|h| h.len() == 3)).await;
    let closed: Vec<&str> = history.as_array().unwrap().iter().filter_map(|o| o["order_id"].as_str()).collect();
    assert!(closed.contains(&a.as_str()) && closed.contains(&b.as_str()) && closed.contains(&kept.as_str()));
    s.stop().await;
}

#[actix_rt::test]
async fn the_dead_man_switch_cancels_unless_renewed() {
    let s = start().await;
    let (alice, _) = funded(&s).await;
    let mut ws = s.ws(Some(&alice)).await;
    ws.send(json!({"op": "dead_man", "id": 1, "timeout_ms": 400})).await;
    assert_eq!(ws.recv_until(|m| m["id"] == 1).await["result"]["timeout_ms"], 400);
    let order = place_over(&mut ws, "o", 1).await;
    // renewed in time, it does not fire
    for i in 0..6 {
        actix_rt::time::sleep(Duration::from_millis(150)).await;
        ws.send(json!({"op": "dead_man", "id": 10 + i, "timeout_ms": 400})).await;
        ws.recv_until(|m| m["id"] == 10 + i).await;
    }
    let open = s.get_as(&alice, &format!("/api/v1/orders/{order}")).await.body;
    assert_eq!(open["status"], "working", "renewed in time, nothing was cancelled");
    // left alone, it cancels everything and says so
    let fired = ws.recv_until(|m| m["type"] == "dead_man_triggered").await;
    assert_eq!(fired["cancel_requested"], json!([order]));
    s.wait_for(Some(&alice), "/api/v1/orders", |o| o == &json!([])).await;
    // disarmed, it stays quiet
    ws.send(json!({"op": "dead_man", "id": 2, "timeout_ms": 400})).await;
    ws.recv_until(|m| m["id"] == 2).await;
    ws.send(json!({"op": "dead_man", "id": 3, "timeout_ms": 0})).await;
    ws.recv_until(|m| m["id"] == 3).await;
    place_over(&mut ws, "p", 2).await;
    actix_rt::time::sleep(Duration::from_millis(600)).await;
    ws.send(json!({"op": "ping", "id": 4})).await;
    let next = ws.recv_until(|m| m["id"] == 4 || m["type"] == "dead_man_triggered").await;
    assert_eq!(next["type"], "pong");
    s.stop().await;
}

#[actix_rt::test]
async fn a_slow_consumer_is_dropped_and_nothing_else_waits_for_it() {
    let s = start_with(|c| c.websocket.send_buffer = 16).await;
    let (alice, bob) = funded(&s).await;
    let mut watcher = s.ws(None).await;
    subscribe(&mut watcher, 1, "l2", Some("BTC-USDT")).await;
    watcher.recv().await;

    // a client that asks for a lot and reads nothing
    let mut slow = s.ws(None).await;
    subscribe(&mut slow, 1, "l2", Some("BTC-USDT")).await;
    let big_id = "x".repeat(30_000);
    for _ in 0..600 {
        slow.send(json!({"op": "ping", "id": big_id})).await;
    }
    // meanwhile trading and the other subscriber go on
    let started = Instant::now();
    s.limit(&bob, "sell", "100.00", "1", 1).await;
    s.limit(&alice, "buy", "99.00", "1", 1).await;
    assert!(started.elapsed() < Duration::from_secs(5), "order entry did not wait for the slow client");
    watcher.recv_until(|m| m["channel"] == "l2" && m["asks"].to_string().contains("100.00")).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = s.get("/metrics").await.text;
        if metrics.contains("hob_ws_dropped_total{reason=\"slow_consumer\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the slow consumer was not dropped:\n{metrics}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    // the slow client finds its connection ended (with the reason, if the close frame fit)
    match slow.until_end().await {
        Ended::Closed(Some(reason)) => assert!(reason.description.unwrap_or_default().contains("slow consumer")),
        Ended::Closed(None) | Ended::Gone => {}
    }
    s.limit(&alice, "buy", "98.00", "1", 2).await;
    watcher.recv_until(|m| m["channel"] == "l2" && m["bids"].to_string().contains("98.00")).await;
    s.stop().await;
}

#[actix_rt::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let s = start_with(|c| {
        c.websocket.ping_interval_ms = 50;
        c.websocket.idle_timeout_ms = 300;
    })
    .await;
    let mut ws = s.ws(None).await;
    // read without ever answering the server's pings
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut pinged = false;
    let reason = loop {
        assert!(Instant::now() < deadline, "never closed");
        match tokio::time::timeout(Duration::from_secs(5), ws.framed.next()).await.unwrap() {
            Some(Ok(awc::ws::Frame::Ping(_))) => pinged = true,
            Some(Ok(awc::ws::Frame::Close(reason))) => break reason,
            Some(Ok(_)) => {}
            other => panic!("unexpected end: {other:?}"),
        }
    };
    assert!(pinged, "the server pinged first");
    assert!(reason.and_then(|r| r.description).unwrap_or_default().starts_with("idle"));
    s.stop().await;
}
