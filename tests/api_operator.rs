//! The operator API: a bearer token or no access; live actors, markets and users; halting
//! and resuming a market; rebuilding the views.

mod api_support;

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use api_support::{start, start_with, user, TOKEN};

#[actix_rt::test]
async fn no_token_no_access() {
    let s = start().await;
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for headers in [vec![], vec![("authorization", wrong.as_str())], vec![("authorization", basic.as_str())]] {
        for (method, path) in [(Method::GET, "/operator/actors"), (Method::POST, "/operator/markets/BTC-USDT/halt")] {
            let res = s.request(method.clone(), path, &headers, None).await;
            assert_eq!(
                (res.status, res.body["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{path}"
            );
        }
    }
    assert_eq!(s.get("/api/v1/markets/BTC-USDT").await.body["status"], "open", "the refused halt did nothing");
    s.stop().await;

    // without a configured token nobody gets in, whatever they send
    let s = start_with(|c| c.operator.token = None).await;
    let res = s.operator(Method::GET, "/operator/actors").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.body["message"].as_str().unwrap().contains("disabled"));
    s.stop().await;
}

#[actix_rt::test]
async fn operators_see_actors_markets_and_users() {
    let s = start_with(|c| c.engine.snapshot_every = 2).await;
    let alice = user(1);
    s.fund(&alice, "USDT", "1000").await;
    s.fund(&alice, "USDT", "1000").await;
    let order = s.limit(&alice, "buy", "100.00", "1", 7).await;
    s.wait_for(Some(&alice), &format!("/api/v1/orders/{order}"), |o| o["status"] == "working").await;

    let actors = s.operator(Method::GET, "/operator/actors").await;
    assert_eq!(actors.status, StatusCode::OK, "{}", actors.text);
    let market = &actors.body["markets"][0];
    assert_eq!(market["stream"], "market:BTC-USDT");
    assert!(market["version"].as_u64().unwrap() > 0);
    assert_eq!(market["mailbox_depth"], 0);
    let alice_actor = &actors.body["users"][0];
    assert_eq!(alice_actor["stream"], format!("user:{alice}"));
    assert_eq!(alice_actor["state_hash"].as_str().map(str::len), Some(64));
    assert!(alice_actor["last_snapshot"]["version"].as_u64().unwrap() >= 2, "{alice_actor}");
    assert!(actors.body["counters"]["appends"].as_u64().unwrap() >= 4);

    let book = s.operator(Method::GET, "/operator/markets/BTC-USDT").await.body;
    assert_eq!(book["status"], "open");
    assert_eq!(book["bids"], json!([["100.00", "1.0000", "1"]]));
    assert_eq!(book["resting_orders"], 1);

    let who = s.operator(Method::GET, &format!("/operator/users/{alice}")).await.body;
    assert_eq!(who["nonces"], json!([7]));
    assert_eq!(who["open_orders"][0]["order_id"], order.as_str());
    assert_eq!(who["open_orders"][0]["status"], "working");
    assert_eq!(who["open_orders"][0]["locked"], "100.2");
    assert_eq!(who["balances"], json!([{"asset": "USDT", "available": "1899.8", "locked": "100.2", "settling": "0"}]));
    assert_eq!(who["state_hash"], alice_actor["state_hash"]);
    let bad = s.operator(Method::GET, "/operator/users/0x12").await;
    assert_eq!(bad.body["code"], "invalid_user");
    s.stop().await;
}

#[actix_rt::test]
async fn a_halted_market_refuses_orders_but_lets_users_cancel_until_resumed() {
    let s = start().await;
    let alice = user(1);
    s.fund(&alice, "USDT", "1000").await;
    let order = s.limit(&alice, "buy", "100.00", "1", 1).await;
    s.wait_for(Some(&alice), &format!("/api/v1/orders/{order}"), |o| o["status"] == "working").await;

    let halted = s.operator(Method::POST, "/operator/markets/BTC-USDT/halt").await;
    assert_eq!(halted.body, json!({"market": "BTC-USDT", "status": "halted"}));
    s.wait_for(None, "/api/v1/markets/BTC-USDT", |m| m["status"] == "halted").await;
    let refused = s
        .post_as(
            &alice,
            "/api/v1/orders",
            json!({"market": "BTC-USDT", "side": "buy", "price": "99", "qty": "1", "nonce": 2}),
        )
        .await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (StatusCode::CONFLICT, Some("market_halted")));
    let cancel = s.send_as(Method::DELETE, &alice, &format!("/api/v1/orders/{order}"), json!(null)).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text);
    s.wait_for(Some(&alice), &format!("/api/v1/orders/{order}"), |o| o["status"] == "cancelled").await;

    let resumed = s.operator(Method::POST, "/operator/markets/BTC-USDT/resume").await;
    assert_eq!(resumed.body["status"], "open");
    s.wait_for(None, "/api/v1/markets/BTC-USDT", |m| m["status"] == "open").await;
    s.limit(&alice, "buy", "99.00", "1", 3).await;
    let unknown = s.operator(Method::POST, "/operator/markets/DOGE-USDT/halt").await;
    assert_eq!(unknown.body["code"], "unknown_market");
    s.stop().await;
}

#[actix_rt::test]
async fn rebuilding_the_views_writes_what_the_events_alone_give() {
    let s = start().await;
    let (alice, bob) = (user(1), user(2));
    s.fund(&alice, "USDT", "1000").await;
    s.fund(&bob, "BTC", "10").await;
    s.limit(&bob, "sell", "100.00", "1", 1).await;
    s.limit(&alice, "buy", "100.00", "0.5", 1).await;
    s.wait_for(None, "/api/v1/markets/BTC-USDT/trades", |t| t.as_array().is_some_and(|t| t.len() == 1)).await;

    let first = s.operator(Method::POST, "/operator/views/rebuild").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(first.body["events_folded"].as_u64().unwrap() > 0);
    assert_eq!(first.body["views_written"], 9, "3 views of one market + 3 of each of two users");
    // the live views already equal a rebuild, so a second one finds nothing to correct
    let second = s.operator(Method::POST, "/operator/views/rebuild").await;
    assert_eq!(second.body["views_differing"], 0, "{}", second.text);
    let fills = s.get_as(&alice, "/api/v1/fills").await.body;
    assert_eq!(fills.as_array().map(Vec::len), Some(1));
    s.stop().await;
}

#[actix_rt::test]
async fn operators_see_the_records_a_queue_gave_up_delivering() {
    use hob::domain::UserId;
    use hob::events::StreamId;
    use hob::queue::{MessageSource, Queue, QueueMessage, MARKET_QUEUE};

    let s = start().await;
    let empty = s.operator(Method::GET, "/operator/dead-letters").await;
    assert_eq!((empty.status, empty.body["dead_letters"].clone()), (StatusCode::OK, json!([])));

    // given a record on the market queue that the market's consumer cannot read
    let source = MessageSource { stream: StreamId::user(UserId([7; 20])), version: 3, index: 1 };
    let message = QueueMessage {
        group: "market:BTC-USDT".into(),
        dedup_id: source.key(),
        body: json!({ "not": "a command" }),
        source: source.clone(),
    };
    s.server.state().engine.queue().send_batch(MARKET_QUEUE, vec![message]).await.unwrap();

    // when its deliveries run out, then the operator API lists it: where it was going, what
    // it carries and which append wrote it
    let dead = s.wait_for_operator("/operator/dead-letters", |b| b["dead_letters"] != json!([])).await;
    let letter = &dead["dead_letters"][0];
    assert_eq!(letter["destination"], "market");
    assert_eq!(letter["group"], "market:BTC-USDT");
    assert_eq!(letter["source"], source.key());
    assert_eq!(letter["body"], json!({ "not": "a command" }));
    assert!(letter["receive_count"].as_u64().unwrap() >= 1);
    s.stop().await;
}
