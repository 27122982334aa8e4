//! The REST API over real sockets, against a running server on the embedded default.

mod api_support;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use api_support::{start, start_with, user, Response};

fn order(market: &str, side: &str, price: &str, qty: &str, nonce: u64) -> Value {
    json!({"market": market, "side": side, "price": price, "qty": qty, "nonce": nonce})
}

#[actix_rt::test]
async fn markets_list_their_decimal_grid() {
    let s = start().await;
    let res = s.get("/api/v1/markets").await;
    assert_eq!(res.status, StatusCode::OK);
    let btc = &res.body[0];
    assert_eq!(btc["id"], "BTC-USDT");
    assert_eq!((btc["tick_size"].as_str(), btc["lot_size"].as_str()), (Some("0.01"), Some("0.0001")));
    assert_eq!((btc["base_lot"].as_str(), btc["quote_tick"].as_str()), (Some("10000"), Some("1")));
    assert_eq!((btc["chain_market_id"].as_u64(), btc["status"].as_str()), (Some(1), Some("open")));
    let one = s.get("/api/v1/markets/ETH-USDT").await;
    assert_eq!(one.body["base_decimals"], 18);
    let unknown = s.get("/api/v1/markets/DOGE-USDT").await;
    assert_eq!((unknown.status, unknown.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_market")));
    s.stop().await;
}

#[actix_rt::test]
async fn a_trade_shows_in_book_trades_candles_ticker_balances_and_fills() {
    let s = start().await;
    let (alice, bob) = (user(1), user(2));
    s.fund(&alice, "USDT", "10000").await;
    s.fund(&bob, "BTC", "10").await;

    // given bob's ask of 0.5 at 100.00; when alice bids 0.2 at 101.00
    let ask = s.limit(&bob, "sell", "100.00", "0.5", 1).await;
    s.wait_for(None, "/api/v1/markets/BTC-USDT/book", |b| b["asks"] == json!([["100.00", "0.5000"]])).await;
    s.limit(&alice, "buy", "101.00", "0.2", 1).await;

    // then 0.2 trades at the maker's price and the book keeps the rest
    let trades =
        s.wait_for(None, "/api/v1/markets/BTC-USDT/trades", |t| t.as_array().is_some_and(|a| a.len() == 1)).await;
    assert_eq!((trades[0]["price"].as_str(), trades[0]["qty"].as_str()), (Some("100.00"), Some("0.2000")));
    assert_eq!(trades[0]["side"], "buy");
    let book = s.wait_for(None, "/api/v1/markets/BTC-USDT/book", |b| b["asks"] == json!([["100.00", "0.3000"]])).await;
    assert_eq!(book["bids"], json!([]));
    assert!(book["last_update_id"].as_u64().unwrap() > 0);
    assert_eq!(book["checksum"].as_u64(), Some(u64::from(crc32fast::hash(b"100.00:0.3000"))));

    let candles = s.get("/api/v1/markets/BTC-USDT/candles?interval=1m").await.body;
    assert_eq!(candles.as_array().map(Vec::len), Some(1));
    let c = &candles[0];
    assert_eq!(
        (c["open"].as_str(), c["close"].as_str(), c["volume"].as_str()),
        (Some("100.00"), Some("100.00"), Some("0.2000"))
    );
    assert_eq!((c["quote_volume"].as_str(), c["trades"].as_u64()), (Some("20"), Some(1)));
    let hourly = s.get("/api/v1/markets/BTC-USDT/candles?interval=1h&limit=5").await.body;
    assert_eq!(hourly[0]["trades"], 1);
    let ticker = s.get("/api/v1/markets/BTC-USDT/ticker").await.body;
    assert_eq!((ticker["last_price"].as_str(), ticker["volume_24h"].as_str()), (Some("100.00"), Some("0.2000")));
    assert_eq!((ticker["best_ask"].as_str(), ticker["best_bid"].as_str()), (Some("100.00"), None));
    assert_eq!(ticker["trades_24h"], 1);

    // alice paid 20 USDT + the 0.2% taker fee; the price improvement came back; BTC settles
    let usdt = s.balance(&alice, "USDT").await;
    assert_eq!((usdt["available"].as_str(), usdt["locked"].as_str()), (Some("9979.96"), Some("0")));
    let btc = s.wait_for(Some(&alice), "/api/v1/balances", |b| b.to_string().contains("\"settling\":\"0.2\"")).await;
    assert!(btc.as_array().unwrap().iter().any(|b| b["asset"] == "BTC"));
    let fills = s.get_as(&alice, "/api/v1/fills").await.body;
    assert_eq!((fills[0]["liquidity"].as_str(), fills[0]["fee"].as_str()), (Some("taker"), Some("0.04")));
    assert_eq!((fills[0]["price"].as_str(), fills[0]["qty"].as_str()), (Some("100.00"), Some("0.2000")));
    let maker = s.wait_for(Some(&bob), &format!("/api/v1/orders/{ask}"), |o| o["filled"] == "0.2000").await;
    assert_eq!((maker["status"].as_str(), maker["remaining"].as_str()), (Some("working"), Some("0.3000")));
    s.stop().await;
}

#[actix_rt::test]
async fn bad_requests_get_a_clear_error_and_change_nothing() {
    let s = start_with(|c| c.limits.max_body_bytes = 2_048).await;
    let alice = user(1);
    s.fund(&alice, "USDT", "1000").await;
    let json_headers = [("x-hob-user", alice.as_str()), ("content-type", "application/json")];
    let place_raw = |body: Vec<u8>| {
        let s = &s;
        async move { s.request(Method::POST, "/api/v1/orders", &json_headers, Some(&body)).await }
    };

    let cases: Vec<(Response, StatusCode, &str)> = vec![
        (place_raw(b"{\"market\": \"BTC-USDT\",".to_vec()).await, StatusCode::BAD_REQUEST, "malformed"),
        (
            place_raw(br#"{"market":"BTC-USDT","side":"buy","price":"1","qty":"1","nonce":1,"colour":"red"}"#.to_vec())
                .await,
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (place_raw(vec![b' '; 4_096]).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (
            s.post_as(&alice, "/api/v1/orders", order("DOGE-USDT", "buy", "1", "1", 1)).await,
            StatusCode::NOT_FOUND,
            "unknown_market",
        ),
        (
            s.post_as(&alice, "/api/v1/orders", order("BTC-USDT", "buy", "100.001", "1", 1)).await,
            StatusCode::BAD_REQUEST,
            "off_grid_price",
        ),
        (
            s.post_as(&alice, "/api/v1/orders", order("BTC-USDT", "buy", "100", "0.00001", 1)).await,
            StatusCode::BAD_REQUEST,
            "off_grid_size",
        ),
        (
            s.post_as(&alice, "/api/v1/orders", order("BTC-USDT", "buy", "-5", "1", 1)).await,
            StatusCode::BAD_REQUEST,
            "not_positive",
        ),
        (
            s.post_as(&alice, "/api/v1/orders", order("BTC-USDT", "buy", "100", "1000", 1)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_balance",
        ),
        (
            s.post_as(&alice, "/api/v1/orders", json!({"market": "BTC-USDT", "side": "buy", "qty": "1", "nonce": 1}))
                .await,
            StatusCode::BAD_REQUEST,
            "missing_price",
        ),
        (
            s.request(
                Method::POST,
                "/api/v1/orders",
                &[("x-hob-user", alice.as_str()), ("content-type", "text/plain")],
                Some(b"{}"),
            )
            .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (s.request(Method::GET, "/api/v1/balances", &[], None).await, StatusCode::UNAUTHORIZED, "unauthorized"),
        (s.get_as("0x1234", "/api/v1/balances").await, StatusCode::UNAUTHORIZED, "unauthorized"),
        (s.get("/api/v1/markets/BTC-USDT/book?dpeth=5").await, StatusCode::BAD_REQUEST, "invalid_query"),
        (s.get_as(&alice, "/api/v1/orders/12x").await, StatusCode::BAD_REQUEST, "invalid_order_id"),
        (s.get("/api/v1/nothing-here").await, StatusCode::NOT_FOUND, "no_such_route"),
    ];
    for (i, (res, status, code)) in cases.iter().enumerate() {
        assert_eq!((res.status, res.body["code"].as_str()), (*status, Some(*code)), "case {i}: {}", res.text);
        assert!(!res.body["message"].as_str().unwrap_or("").is_empty(), "case {i} explains itself");
    }

    // nothing moved: the balance is whole, no order exists, the book is empty, and the nonce
    // every refused request carried is still unused
    let usdt = s.balance(&alice, "USDT").await;
    assert_eq!((usdt["available"].as_str(), usdt["locked"].as_str()), (Some("1000"), Some("0")));
    assert_eq!(s.get_as(&alice, "/api/v1/orders").await.body, json!([]));
    assert_eq!(s.get("/api/v1/markets/BTC-USDT/book").await.body["bids"], json!([]));
    s.limit(&alice, "buy", "100.00", "1", 1).await;
    let again = s.post_as(&alice, "/api/v1/orders", order("BTC-USDT", "buy", "100", "1", 1)).await;
    assert_eq!((again.status, again.body["code"].as_str()), (StatusCode::CONFLICT, Some("nonce_used")));
    s.stop().await;
}

#[actix_rt::test]
async fn orders_by_id_and_client_id_amend_cancel_cancel_all_and_history() {
    let s = start().await;
    let alice = user(1);
    s.fund(&alice, "USDT", "100000").await;
    let mut first = order("BTC-USDT", "buy", "90.00", "1", 1);
    first["client_order_id"] = json!("alice-1");
    let placed = s.post_as(&alice, "/api/v1/orders", first.clone()).await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.text);
    let id = placed.body["order_id"].as_str().unwrap().to_owned();

    // a retry with the same client order id returns the same order, and places nothing new
    first["nonce"] = json!(2);
    let retry = s.post_as(&alice, "/api/v1/orders", first).await;
    assert_eq!(retry.body["order_id"].as_str(), Some(id.as_str()));

    let by_client = s.wait_for(Some(&alice), "/api/v1/orders/client/alice-1", |o| o["status"] == "working").await;
    assert_eq!((by_client["order_id"].as_str(), by_client["price"].as_str()), (Some(id.as_str()), Some("90.00")));
    let missing = s.get_as(&alice, "/api/v1/orders/client/nobody").await;
    assert_eq!(missing.body["code"], "unknown_order");
    assert_eq!(s.get_as(&user(9), &format!("/api/v1/orders/{id}")).await.status, StatusCode::NOT_FOUND, "not bob's");

    // amend to a new price and size
    let amended = s
        .send_as(Method::PATCH, &alice, &format!("/api/v1/orders/{id}"), json!({"price": "91.00", "qty": "0.5"}))
        .await;
    assert_eq!(amended.body["status"], "amend_requested", "{}", amended.text);
    s.wait_for(Some(&alice), &format!("/api/v1/orders/{id}"), |o| o["price"] == "91.00" && o["remaining"] == "0.5000")
        .await;
    let off_grid = s
        .send_as(Method::PATCH, &alice, &format!("/api/v1/orders/{id}"), json!({"price": "91.001", "qty": "0.5"}))
        .await;
    assert_eq!(off_grid.body["code"], "off_grid_price");

    // a batch: each item succeeds or fails on its own
    let batch = json!({"ops": [
        {"op": "place", "market": "BTC-USDT", "side": "buy", "price": "80.00", "qty": "1", "nonce": 3},
        {"op": "place", "market": "BTC-USDT", "side": "buy", "price": "80.005", "qty": "1", "nonce": 4},
        {"op": "cancel", "order_id": "12345"},
        {"op": "explode"},
        {"op": "cancel", "order_id": id},
    ]});
    let res = s.post_as(&alice, "/api/v1/orders/batch", batch).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let results = res.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["result"]["status"], "accepted");
    assert_eq!(results[1]["error"]["code"], "off_grid_price");
    assert_eq!(results[2]["error"]["code"], "unknown_order");
    assert_eq!(results[3]["error"]["code"], "malformed");
    assert_eq!(results[4]["result"]["status"], "cancel_requested");
    let too_big: Vec<Value> = (0..21).map(|_| json!({"op": "cancel", "order_id": "1"})).collect();
    let res = s.post_as(&alice, "/api/v1/orders/batch", json!({ "ops": too_big })).await;
    assert_eq!(res.body["code"], "batch_too_large");

    // the cancelled order is in the history with its reason
    let history =
        s.wait_for(Some(&alice), "/api/v1/orders/history", |h| h.as_array().is_some_and(|a| !a.is_empty())).await;
    assert_eq!(
        (history[0]["order_id"].as_str(), history[0]["status"].as_str()),
        (Some(id.as_str()), Some("cancelled"))
    );
    assert_eq!(history[0]["reason"], "user");

    // cancel-all per market, then everywhere
    s.post_as(&alice, "/api/v1/orders", order("BTC-USDT", "buy", "70.00", "1", 5)).await;
    s.post_as(&alice, "/api/v1/orders", order("ETH-USDT", "buy", "10.00", "1", 6)).await;
    s.wait_for(Some(&alice), "/api/v1/orders", |o| o.as_array().is_some_and(|a| a.len() == 3)).await;
    let res = s.send_as(Method::DELETE, &alice, "/api/v1/orders?market=BTC-USDT", json!(null)).await;
    assert_eq!(res.body["cancel_requested"].as_array().map(Vec::len), Some(2), "{}", res.text);
    let left = s.wait_for(Some(&alice), "/api/v1/orders", |o| o.as_array().is_some_and(|a| a.len() == 1)).await;
    assert_eq!(left[0]["market"], "ETH-USDT");
    let res = s.send_as(Method::DELETE, &alice, "/api/v1/orders", json!(null)).await;
    assert_eq!(res.body["cancel_requested"].as_array().map(Vec::len), Some(1));
    s.wait_for(Some(&alice), "/api/v1/orders", |o| o == &json!([])).await;
    let usdt = s.wait_for(Some(&alice), "/api/v1/balances", |b| b[0]["locked"] == "0").await;
    assert_eq!(usdt[0]["available"], "100000");
    let unknown = s.send_as(Method::DELETE, &alice, &format!("/api/v1/orders/{id}"), json!(null)).await;
    assert_eq!((unknown.status, unknown.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_order")));
    s.stop().await;
}

#[actix_rt::test]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let s = start_with(|c| {
        c.limits.ip_requests_per_sec = 1;
        c.limits.ip_burst = 3;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(s.get("/api/v1/markets").await.status, StatusCode::OK);
    }
    let limited = s.get("/api/v1/markets").await;
    assert_eq!((limited.status, limited.body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    let retry: u64 = limited.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert!(limited.body["retry_after_ms"].as_u64().is_some());
    // monitoring is not limited
    assert_eq!(s.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(s.get("/metrics").await.status, StatusCode::OK);
    s.stop().await;
}

#[actix_rt::test]
async fn each_user_has_its_own_bucket() {
    let s = start_with(|c| {
        c.limits.user_requests_per_sec = 1;
        c.limits.user_burst = 2;
    })
    .await;
    let (alice, bob) = (user(1), user(2));
    for _ in 0..2 {
        assert_eq!(s.get_as(&alice, "/api/v1/balances").await.status, StatusCode::OK);
    }
    let limited = s.get_as(&alice, "/api/v1/balances").await;
    assert_eq!((limited.status, limited.body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    assert_eq!(s.get_as(&bob, "/api/v1/balances").await.status, StatusCode::OK, "bob is not limited by alice");
    let metrics = s.get("/metrics").await.text;
    assert!(metrics.contains("hob_rate_limited_total{scope=\"user\"} 1"), "{metrics}");
    s.stop().await;
}

#[actix_rt::test]
async fn health_readiness_and_metrics() {
    let s = start().await;
    let ready = s.get("/readyz").await;
    assert_eq!((ready.status, ready.body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let names: Vec<&str> = ready.body["checks"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["event_store", "view_store", "queue"]);
    let alice = user(1);
    s.fund(&alice, "USDT", "1000").await;
    s.limit(&alice, "buy", "10.00", "1", 1).await;
    let rejected = s.post_as(&alice, "/api/v1/orders", order("BTC-USDT", "buy", "10.00", "1", 1)).await;
    assert_eq!(rejected.body["code"], "nonce_used");
    s.wait_for(None, "/api/v1/markets/BTC-USDT/book", |b| b["bids"] != json!([])).await;
    let metrics = s.get("/metrics").await.text;
    for expected in [
        "hob_orders_total{code=\"\",result=\"accepted\"} 1",
        "hob_orders_total{code=\"nonce_used\",result=\"rejected\"} 1",
        "hob_order_ack_seconds_count 1",
        "hob_match_latency_seconds_count 1",
        "hob_mailbox_depth{kind=\"market\"}",
        "hob_mailbox_depth_max{kind=\"user\"}",
        "hob_outbox_unpublished",
        "hob_queue_depth{destination=\"market\"}",
        "hob_ws_clients 0",
        "hob_actor_events{event=\"appends\"}",
        "hob_feed_version{market=\"BTC-USDT\"}",
        "hob_http_responses_total{class=\"2xx\"}",
    ] {
        assert!(metrics.contains(expected), "metrics lack {expected}:\n{metrics}");
    }
    s.stop().await;
}
