//! The order pipeline end to end on the embedded default: SQLite store, in-process queues,
//! real actors. Given funded users, when they trade, then both sides' balances, the book and
//! the fee account agree, and restarting everything from the same file changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hob::domain::{Amount, MarketId, PriceTicks, QtyLots, Side};
use hob::engine::{Engine, EngineConfig, EngineError, PlaceOrder};
use hob::events::{EventStore, SystemClock};
use hob::projections::View;
use hob::queue::inprocess::{DestinationConfig, InProcessQueue};
use hob::queue::{MARKET_QUEUE, USER_QUEUE};
use hob::store::sqlite::SqliteEventStore;

#[path = "support/btc_usdt.rs"]
mod btc_usdt;
use btc_usdt::{asset, limit, spec, user};

type TestEngine = Engine<SqliteEventStore, InProcessQueue>;

fn start(path: &std::path::Path) -> TestEngine {
    start_with(path, 1_000)
}

fn start_with(path: &std::path::Path, snapshot_every: u64) -> TestEngine {
    let clock = Arc::new(SystemClock);
    let store = Arc::new(SqliteEventStore::open(path).unwrap());
    let queue = Arc::new(InProcessQueue::new(clock.clone(), DestinationConfig::default()));
    let config = EngineConfig {
        markets: vec![spec()],
        settlement_group: "operator:test".into(),
        snapshot_every,
        relay_poll: Duration::from_millis(20),
    };
    Engine::start(config, store, queue, clock)
}

/// Waits until every outbox record is published and every queue the engine consumes is empty.
async fn quiesce(engine: &TestEngine) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut calm = 0;
    while calm < 3 {
        assert!(Instant::now() < deadline, "the pipeline did not settle");
        let unpublished = engine.store().fetch_unpublished(1).await.unwrap().len();
        let busy: usize = [MARKET_QUEUE, USER_QUEUE].iter().map(|d| engine.queue().depth(d)).sum();
        calm = if unpublished == 0 && busy == 0 { calm + 1 } else { 0 };
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_crossing_pair_trades_and_both_users_balances_follow() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir.path().join("hob.db"));
    let (alice, bob) = (user(1), user(2));
    engine.deposit(alice, asset("USDT"), Amount(10_000_000)).await.unwrap();
    engine.deposit(bob, asset("BTC"), Amount(100_000)).await.unwrap();

    // given bob's ask 10 lots at 1,000 ticks; when alice bids 4 lots at 1,005
    let ask = engine.place(bob, limit(Side::Sell, 1_000, 10, 1)).await.unwrap();
    quiesce(&engine).await;
    engine.place(alice, limit(Side::Buy, 1_005, 4, 1)).await.unwrap();
    quiesce(&engine).await;

    // then 4 lots trade at the maker's price: 4 x 1,000 x 10 = 40,000 quote units
    let a = engine.user(alice).await.unwrap().state.account().clone();
    let b = engine.user(bob).await.unwrap().state.account().clone();
    let (taker_fee, maker_fee) = (Amount(80), Amount(40));
    assert_eq!(a.balance(asset("BTC")).settling, Amount(4_000));
    assert_eq!(a.balance(asset("USDT")).locked, Amount(0));
    assert_eq!(a.balance(asset("USDT")).available, Amount(10_000_000 - 40_000 - taker_fee.0));
    assert_eq!(b.balance(asset("USDT")).settling, Amount(40_000 - maker_fee.0));
    assert_eq!(b.balance(asset("BTC")).locked, Amount(6_000));
    let book = engine.market(spec().id, 5, Some(ask)).await.unwrap();
    assert_eq!(book.order.map(|o| o.qty), Some(QtyLots(6)));
    assert!(book.bids.is_empty());

    // and the same file, replayed by a fresh engine, gives the same state
    let before = (engine.user(alice).await.unwrap().state, engine.user(bob).await.unwrap().state, book);
    engine.shutdown();
    drop(engine);
    let engine = start(&dir.path().join("hob.db"));
    let after = (
        engine.user(alice).await.unwrap().state,
        engine.user(bob).await.unwrap().state,
        engine.market(spec().id, 5, Some(ask)).await.unwrap(),
    );
    assert_eq!(before.0.canonical_bytes(), after.0.canonical_bytes());
    assert_eq!(before.1.canonical_bytes(), after.1.canonical_bytes());
    assert_eq!(before.2, after.2);
}

#[actix_rt::test]
async fn a_cancel_releases_the_lock_and_bad_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir.path().join("hob.db"));
    let alice = user(1);
    engine.deposit(alice, asset("USDT"), Amount(1_000_000)).await.unwrap();
    let order = engine.place(alice, limit(Side::Buy, 1_000, 10, 7)).await.unwrap();
    quiesce(&engine).await;
    let locked = engine.user(alice).await.unwrap().state.account().balance(asset("USDT")).locked;
    assert_eq!(locked, Amount(100_000 + 200)); // notional + the fee at the higher (taker) rate

    // a replayed nonce, an unaffordable order and an unknown market are refused, nothing moves
    assert!(matches!(engine.place(alice, limit(Side::Buy, 1_000, 1, 7)).await, Err(EngineError::Rejected(_))));
    assert!(matches!(engine.place(alice, limit(Side::Buy, 1_000, 1_000, 8)).await, Err(EngineError::Rejected(_))));
    let mut elsewhere = limit(Side::Buy, 1_000, 1, 9);
    elsewhere.market = MarketId::new("ETH-USDT").unwrap();
    assert!(matches!(engine.place(alice, elsewhere).await, Err(EngineError::UnknownMarket(_))));

    engine.cancel(alice, spec().id, order).await.unwrap();
    quiesce(&engine).await;
    let balance = engine.user(alice).await.unwrap().state.account().balance(asset("USDT"));
    assert_eq!((balance.available, balance.locked), (Amount(1_000_000), Amount(0)));
    assert_eq!(engine.market(spec().id, 5, None).await.unwrap().resting_orders, 0);
}

#[actix_rt::test]
async fn actors_restart_from_their_latest_snapshot_plus_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hob.db");
    let engine = start_with(&path, 3);
    let (alice, bob) = (user(1), user(2));
    engine.deposit(alice, asset("USDT"), Amount(10_000_000)).await.unwrap();
    engine.deposit(bob, asset("BTC"), Amount(100_000)).await.unwrap();
    for nonce in 1..=6 {
        engine.place(bob, limit(Side::Sell, 1_000 + nonce, 2, nonce)).await.unwrap();
        engine.place(alice, limit(Side::Buy, 1_000 + nonce, 1, nonce)).await.unwrap();
    }
    quiesce(&engine).await;
    let counters = &engine.registry().deps().counters;
    assert!(counters.snapshots.load(std::sync::atomic::Ordering::Relaxed) > 0, "snapshots were taken");
    let before = (
        engine.user(alice).await.unwrap().state.canonical_bytes(),
        engine.user(bob).await.unwrap().state.canonical_bytes(),
        engine.market(spec().id, 20, None).await.unwrap(),
    );
    let stream = hob::events::StreamId::market(spec().id);
    let snap = engine.store().load_latest_snapshot(&stream).await.unwrap().expect("a market snapshot");
    assert!(snap.version > 0 && snap.version <= before.2.version);
    engine.shutdown();
    drop(engine);

    let engine = start_with(&path, 3);
    let after = (
        engine.user(alice).await.unwrap().state.canonical_bytes(),
        engine.user(bob).await.unwrap().state.canonical_bytes(),
        engine.market(spec().id, 20, None).await.unwrap(),
    );
    assert_eq!(before, after);
    let refused = engine.registry().deps().counters.snapshots_refused.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 0, "every snapshot's state hash matched");
}

#[actix_rt::test]
async fn a_snapshot_whose_hash_does_not_match_is_refused_and_the_stream_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hob.db");
    let engine = start_with(&path, 1_000);
    let alice = user(1);
    engine.deposit(alice, asset("USDT"), Amount(5_000)).await.unwrap();
    let stream = hob::events::StreamId::user(alice);
    // A snapshot claiming a balance the events never produced.
    let mut forged = hob::domain::user::UserState::new(alice);
    forged.apply(&hob::domain::user::UserEvent::Deposited { asset: asset("USDT"), amount: Amount(9_999_999) }).unwrap();
    let state = hob::events::user_payload::encode_user_snapshot(&forged);
    let snapshot = hob::events::Snapshot { stream, version: 1, state, state_hash: [7; 32] };
    engine.store().save_snapshot(snapshot).await.unwrap();
    engine.shutdown();
    drop(engine);

    let engine = start_with(&path, 1_000);
    let balance = engine.user(alice).await.unwrap().state.account().balance(asset("USDT"));
    assert_eq!(balance.available, Amount(5_000));
    let refused = engine.registry().deps().counters.snapshots_refused.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 1);
}

#[actix_rt::test]
async fn live_views_follow_the_engine_and_equal_a_rebuild_from_events() {
    use hob::projections::{diff_views, DepthView, MemoryViewStore, Projector, ViewStore};
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir.path().join("hob.db"));
    let views = Arc::new(MemoryViewStore::new());
    let stats = engine.start_projections(views.clone(), Duration::from_millis(20));
    let (alice, bob) = (user(1), user(2));
    engine.deposit(alice, asset("USDT"), Amount(10_000_000)).await.unwrap();
    engine.deposit(bob, asset("BTC"), Amount(100_000)).await.unwrap();
    let mut ask = limit(Side::Sell, 1_000, 10, 1);
    ask.client_order_id = Some(hob::domain::ClientOrderId::new("bob-1").unwrap());
    let ask_id = engine.place(bob, ask).await.unwrap();
    engine.place(alice, limit(Side::Buy, 1_000, 4, 1)).await.unwrap();
    quiesce(&engine).await;

    // the open order, by client order id
    let client = hob::engine::OrderRef::Client(hob::domain::ClientOrderId::new("bob-1").unwrap());
    let open = engine.open_order(bob, client).await.unwrap().expect("bob's ask is open");
    assert_eq!((open.order.id, open.qty), (ask_id, QtyLots(6)));

    // the live depth view catches up with the book
    let deadline = Instant::now() + Duration::from_secs(10);
    let key = spec().id.to_string();
    loop {
        let depth = views.load(DepthView::KIND, &key).await.unwrap();
        let lots = depth.as_ref().and_then(|d| d["asks"]["1000"]["qty_lots"].as_u64());
        if lots == Some(6) && stats.events_folded.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the depth view did not catch up: {depth:?}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    // and, once caught up, the live views equal views rebuilt from the events alone
    Projector::new().catch_up(engine.store().as_ref(), views.as_ref()).await.unwrap();
    let rebuilt = MemoryViewStore::new();
    Projector::new().catch_up(engine.store().as_ref(), &rebuilt).await.unwrap();
    assert!(diff_views(views.as_ref(), &rebuilt).await.unwrap().is_empty());
}

#[actix_rt::test]
async fn an_unreadable_queue_record_ends_as_a_dead_letter_and_trading_goes_on() {
    use hob::queue::{market_group, MessageSource, Queue, QueueMessage};
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir.path().join("hob.db"));
    let (alice, bob) = (user(1), user(2));
    engine.deposit(alice, asset("USDT"), Amount(10_000_000)).await.unwrap();
    engine.deposit(bob, asset("BTC"), Amount(100_000)).await.unwrap();
    // given a record on the market queue that is not a market command
    let bad = QueueMessage {
        group: market_group(spec().id),
        dedup_id: "garbage".into(),
        body: serde_json::json!({"op": "explode"}),
        source: MessageSource { stream: hob::events::StreamId::admin(), version: 1, index: 0 },
    };
    engine.queue().send_batch(MARKET_QUEUE, vec![bad]).await.unwrap();
    // when orders for the same market follow it
    engine.place(bob, limit(Side::Sell, 1_000, 3, 1)).await.unwrap();
    engine.place(alice, limit(Side::Buy, 1_000, 3, 1)).await.unwrap();
    quiesce(&engine).await;
    // then the bad record is set aside and the orders trade
    let dead = engine.queue().dead_letters(MARKET_QUEUE).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.body["op"], "explode");
    let alice_btc = engine.user(alice).await.unwrap().state.account().balance(asset("BTC"));
    assert_eq!(alice_btc.settling, Amount(3_000));
}

#[actix_rt::test]
async fn a_version_conflict_stops_the_actor_and_the_next_message_rebuilds_it() {
    // Two engines on one file: each user actor believes it is the only writer of its stream.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hob.db");
    let a = start(&path);
    let b = start(&path);
    let alice = user(1);
    // both load alice's actor at version 0
    a.deposit(alice, asset("USDT"), Amount(1_000)).await.unwrap();
    assert_eq!(b.user(alice).await.unwrap().version, 1, "b replays a's deposit on first use");
    a.deposit(alice, asset("USDT"), Amount(2_000)).await.unwrap();
    // when b appends from its stale version 1, the store refuses and b's actor stops
    let stale = b.deposit(alice, asset("USDT"), Amount(4_000)).await;
    assert!(matches!(stale, Err(EngineError::Actor(hob::actors::ActorError::Conflict(_)))), "{stale:?}");
    let counters = &b.registry().deps().counters;
    assert_eq!(counters.conflicts.load(std::sync::atomic::Ordering::Relaxed), 1);
    // then the next message rebuilds it from the stream, and nothing was lost or doubled
    b.deposit(alice, asset("USDT"), Amount(4_000)).await.unwrap();
    assert_eq!(counters.restarts.load(std::sync::atomic::Ordering::Relaxed), 1);
    let balance = b.user(alice).await.unwrap().state.account().balance(asset("USDT"));
    assert_eq!(balance.available, Amount(7_000));
}

fn signed(order: PlaceOrder, auth: &str) -> PlaceOrder {
    PlaceOrder { auth: Some(hob::domain::OrderAuth::new(auth)), ..order }
}

/// The settlement records waiting in the in-process queue, as (maker_auth, taker_auth).
async fn settlement_auths(engine: &TestEngine) -> Vec<(serde_json::Value, serde_json::Value)> {
    use hob::queue::{Queue, SETTLEMENT_QUEUE};
    let got = engine.queue().receive(SETTLEMENT_QUEUE, 100, Duration::from_millis(50)).await.unwrap();
    got.iter().map(|d| (d.message.body["maker_auth"].clone(), d.message.body["taker_auth"].clone())).collect()
}

#[actix_rt::test]
async fn each_trade_carries_both_signed_orders_to_settlement_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hob.db");
    // A snapshot after every few events, so the restart loads the signed orders from one.
    let engine = start_with(&path, 2);
    let (alice, bob) = (user(1), user(2));
    engine.deposit(alice, asset("USDT"), Amount(10_000_000)).await.unwrap();
    engine.deposit(bob, asset("BTC"), Amount(100_000)).await.unwrap();

    // given bob's signed ask of 10 lots; when alice's signed bid takes 4
    engine.place(bob, signed(limit(Side::Sell, 1_000, 10, 1), "bob-ask")).await.unwrap();
    quiesce(&engine).await;
    engine.place(alice, signed(limit(Side::Buy, 1_000, 4, 1), "alice-bid-1")).await.unwrap();
    quiesce(&engine).await;
    // then the trade's settlement record holds both signed orders
    assert_eq!(settlement_auths(&engine).await, vec![(serde_json::json!("bob-ask"), serde_json::json!("alice-bid-1"))]);

    // and after a restart, the resting ask still carries its signature into the next trade
    engine.shutdown();
    drop(engine);
    let engine = start_with(&path, 2);
    engine.place(alice, signed(limit(Side::Buy, 1_000, 6, 2), "alice-bid-2")).await.unwrap();
    quiesce(&engine).await;
    assert_eq!(settlement_auths(&engine).await, vec![(serde_json::json!("bob-ask"), serde_json::json!("alice-bid-2"))]);
}

/// As `settlement_auths`, acking what it took, so the operator's group delivers the next ones.
async fn taken_settlement_auths(engine: &TestEngine) -> Vec<(serde_json::Value, serde_json::Value)> {
    use hob::queue::{Queue, SETTLEMENT_QUEUE};
    let got = engine.queue().receive(SETTLEMENT_QUEUE, 100, Duration::from_millis(50)).await.unwrap();
    for delivery in &got {
        engine.queue().ack(SETTLEMENT_QUEUE, &delivery.receipt).await.unwrap();
    }
    got.iter().map(|d| (d.message.body["maker_auth"].clone(), d.message.body["taker_auth"].clone())).collect()
}

fn amend_auth(nonce: u64, auth: &str) -> hob::domain::AmendAuth {
    hob::domain::AmendAuth { nonce, auth: hob::domain::OrderAuth::new(auth) }
}

#[actix_rt::test]
async fn a_signed_amend_the_market_applies_carries_its_new_signed_order_into_later_trades_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hob.db");
    // A snapshot after every few events, so the restart loads the signed orders from one.
    let engine = start_with(&path, 2);
    let (alice, bob) = (user(1), user(2));
    engine.deposit(alice, asset("USDT"), Amount(10_000_000)).await.unwrap();
    engine.deposit(bob, asset("BTC"), Amount(100_000)).await.unwrap();
    let market = spec().id;

    // Given bob's signed ask of 10 lots, of which alice takes 4 under its first signature
    let ask = engine.place(bob, signed(limit(Side::Sell, 1_000, 10, 1), "bob-ask")).await.unwrap();
    quiesce(&engine).await;
    engine.place(alice, signed(limit(Side::Buy, 1_000, 4, 1), "alice-bid-1")).await.unwrap();
    quiesce(&engine).await;
    assert_eq!(
        taken_settlement_auths(&engine).await,
        vec![(serde_json::json!("bob-ask"), serde_json::json!("alice-bid-1"))]
    );

    // When the market refuses a signed amend (halted), its signed order is not recorded, and
    // its nonce is used all the same
    engine.set_halted(market, true).await.unwrap();
    let refused = amend_auth(2, "bob-amend-refused");
    engine.amend_signed(bob, market, ask, PriceTicks(1_001), QtyLots(6), refused).await.unwrap();
    quiesce(&engine).await;
    engine.set_halted(market, false).await.unwrap();
    let again = engine.amend_signed(bob, market, ask, PriceTicks(1_001), QtyLots(6), amend_auth(2, "x")).await;
    assert!(matches!(again, Err(EngineError::Rejected(hob::domain::UserReject::NonceUsed))), "{again:?}");
    // (the order's next trade still settles under its first signature)
    engine.place(alice, signed(limit(Side::Buy, 1_000, 1, 3), "alice-bid-2")).await.unwrap();
    quiesce(&engine).await;
    assert_eq!(
        taken_settlement_auths(&engine).await,
        vec![(serde_json::json!("bob-ask"), serde_json::json!("alice-bid-2"))]
    );
    // and when it applies the next one (the remaining 5 lots re-enter at 1,001)
    engine.amend_signed(bob, market, ask, PriceTicks(1_001), QtyLots(5), amend_auth(3, "bob-amend")).await.unwrap();
    quiesce(&engine).await;

    // Then, across a restart, the next trade of the order carries the applied amend's signed order
    engine.shutdown();
    drop(engine);
    let engine = start_with(&path, 2);
    engine.place(alice, signed(limit(Side::Buy, 1_001, 5, 4), "alice-bid-3")).await.unwrap();
    quiesce(&engine).await;
    assert_eq!(
        taken_settlement_auths(&engine).await,
        vec![(serde_json::json!("bob-amend"), serde_json::json!("alice-bid-3"))]
    );
}
