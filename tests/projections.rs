//! Read models (`src/projections/`) as a specification: events come from the real domain
//! (`Market::execute`, `UserState::decide` / `apply`), are stored as real envelopes in a
//! SQLite event store, and the views folded live in increments must equal a rebuild from the
//! events alone, the book's own depth, and the users' own accounts.

#[path = "support/exchange.rs"]
mod exchange;
#[path = "support/scenario.rs"]
mod scenario;
#[path = "support/view_specs.rs"]
mod view_specs;

use std::process::Command;

use chrono::{DateTime, TimeDelta};
use exchange::{json_view, step, Exchange, STEPS};
use hob::domain::{Amount, MarketEvent, OrderId, PriceTicks, QtyLots, Side, Trade, TradeId};
use hob::events::{EventStore, NewEvent, StreamId};
use hob::projections::candles::bucket_start_ms;
use hob::projections::{
    diff_views, BalancesView, CandlesView, DepthView, EventMeta, MemoryViewStore, ProjectionError, Projector,
    TradeTapeView, UserFillsView, UserOrdersView, View,
};
use hob::store::sqlite_views::SqliteViewStore;
use scenario::{spec, ALICE, BOB};
use serde_json::json;
use uuid::Uuid;

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[tokio::test]
async fn live_views_in_increments_equal_a_rebuild_from_events_alone() {
    let dir = temp_dir();
    let mut ex = Exchange::open(&dir.path().join("events.db"));
    let live = SqliteViewStore::open(dir.path().join("views.db")).unwrap();
    view_specs::live_views_in_increments_equal_a_rebuild_from_events_alone(&mut ex, &live).await;
}

#[tokio::test]
async fn views_agree_with_the_book_and_the_accounts() {
    let dir = temp_dir();
    let mut ex = Exchange::open(&dir.path().join("events.db"));
    let views = MemoryViewStore::new();
    for n in 0..STEPS {
        step(&mut ex, n).await;
        Projector::new().catch_up(&ex.store, &views).await.unwrap();
        let depth: DepthView = match n {
            0 => DepthView::empty(spec().id), // no market event yet
            _ => json_view(&views, "BTC-USDT").await,
        };
        for side in [Side::Buy, Side::Sell] {
            let book: Vec<_> =
                ex.market.book().depth(side, 100).iter().map(|l| (l.price.0, l.qty.0, l.orders)).collect();
            let view: Vec<_> = depth.depth(side, 100).iter().map(|l| (l.price_ticks, l.qty_lots, l.orders)).collect();
            assert_eq!(view, book, "step {n}, {side:?}");
        }
        for (user, state) in &ex.users {
            let key = user.to_string();
            let balances: BalancesView = json_view(&views, &key).await;
            assert_eq!(balances.state(), state, "step {n}: the fold is the user's own state");
            for (asset, b) in state.account().balances() {
                let row = &balances.balances[asset.as_str()];
                assert_eq!(
                    (row.available.clone(), row.locked.clone(), row.settling.clone()),
                    (b.available.0.to_string(), b.locked.0.to_string(), b.settling.0.to_string())
                );
            }
            let orders: UserOrdersView = json_view(&views, &key).await;
            let open: Vec<_> = state.open_orders().map(|(id, o)| (id.0, o.qty.0)).collect();
            let view_open: Vec<_> = orders.open.values().map(|r| (r.order_id, r.remaining_lots)).collect();
            assert_eq!(view_open, open, "step {n}: open orders of {key}");
        }
    }
    // The last step's book: bids 100 x 1 (ALICE's 9 after BOB's IOC took 1), BOB's 99 x 2.
    let depth: DepthView = json_view(&views, "BTC-USDT").await;
    assert_eq!(
        depth.depth(Side::Buy, 10).iter().map(|l| (l.price_ticks, l.qty_lots)).collect::<Vec<_>>(),
        [(100, 1), (99, 2)]
    );

    let tape: TradeTapeView = json_view(&views, "BTC-USDT").await;
    let trades: Vec<_> = tape.trades.iter().map(|t| (t.trade_id, t.price_ticks, t.qty_lots)).collect();
    assert_eq!(trades, [(1, 101, 6), (2, 101, 4), (3, 101, 1), (4, 99, 2), (5, 100, 1)]);
    assert_eq!(tape.total_trades, 5);

    let bob: UserFillsView = json_view(&views, &BOB.to_string()).await;
    assert_eq!(bob.total_fills, 5, "BOB is on every trade");
    let alice: UserOrdersView = json_view(&views, &ALICE.to_string()).await;
    let closed: Vec<_> = alice.history.iter().map(|r| (r.order_id, r.filled_lots, r.reason.clone())).collect();
    assert_eq!(closed, [(1, 10, None), (2, 0, Some("user".to_owned()))]);
}

#[tokio::test]
async fn catch_up_is_idempotent() {
    let dir = temp_dir();
    let mut ex = Exchange::open(&dir.path().join("events.db"));
    let views = SqliteViewStore::open(dir.path().join("views.db")).unwrap();
    view_specs::catch_up_is_idempotent(&mut ex, &views).await;
}

#[tokio::test]
async fn a_save_from_a_stale_checkpoint_is_refused_whole() {
    let dir = temp_dir();
    let views = SqliteViewStore::open(dir.path().join("views.db")).unwrap();
    view_specs::a_save_from_a_stale_checkpoint_is_refused_whole(&views).await;
}

#[tokio::test]
async fn an_undecodable_event_names_its_stream_and_version() {
    let dir = temp_dir();
    let mut ex = Exchange::open(&dir.path().join("events.db"));
    step(&mut ex, 0).await;
    step(&mut ex, 1).await;
    let stream = StreamId::market(spec().id);
    let bad = NewEvent::new(&ex.clock, Uuid::nil(), Uuid::nil(), "market.Traded", 1, json!({ "bogus": 1 }));
    ex.append(stream.clone(), vec![bad]).await;
    let version = ex.versions[&stream];
    let err = Projector::new().catch_up(&ex.store, &MemoryViewStore::new()).await.unwrap_err();
    assert!(matches!(&err, ProjectionError::Decode { .. }), "{err}");
    assert_eq!(err.position(), Some((&stream, version)));
    assert!(err.to_string().contains(&format!("{stream} v{version}")), "{err}");
}

fn trade(id: u64, price: u64, qty: u64) -> MarketEvent {
    MarketEvent::Traded(Trade {
        id: TradeId(id),
        maker_order: OrderId(1),
        maker_user: ALICE,
        taker_order: OrderId(2),
        taker_user: BOB,
        taker_side: Side::Buy,
        price: PriceTicks(price),
        qty: QtyLots(qty),
        base_amount: Amount(qty as u128 * 1_000),
        quote_amount: Amount((price * qty * 10) as u128),
        maker_fee: Amount(0),
        taker_fee: Amount(0),
    })
}

#[test]
fn candles_split_at_bucket_boundaries() {
    let hour = DateTime::from_timestamp_millis(1_700_002_800_000).unwrap(); // a whole hour
    assert_eq!(bucket_start_ms(hour, 3_600_000), hour.timestamp_millis());
    let at = |ms: i64| EventMeta { version: 1, occurred_at: hour + TimeDelta::milliseconds(ms) };
    // (time from the hour in ms, price, qty)
    let trades =
        [(-1, 100, 1), (0, 105, 2), (59_999, 95, 3), (60_000, 101, 4), (3_599_999, 102, 5), (3_600_000, 99, 6)];
    let mut view = CandlesView::empty(spec().id);
    for (i, (ms, price, qty)) in trades.into_iter().enumerate() {
        view.apply(at(ms), &trade(i as u64 + 1, price, qty)).unwrap();
    }
    let h = hour.timestamp_millis();
    let ohlcv = |c: &hob::projections::Candle| (c.open_ticks, c.high_ticks, c.low_ticks, c.close_ticks, c.volume_lots);
    let m1: Vec<_> = view.m1.iter().map(|(k, c)| (k - h, ohlcv(c))).collect();
    assert_eq!(
        m1,
        [
            (-60_000, (100, 100, 100, 100, 1)),
            (0, (105, 105, 95, 95, 5)),
            (60_000, (101, 101, 101, 101, 4)),
            (3_540_000, (102, 102, 102, 102, 5)),
            (3_600_000, (99, 99, 99, 99, 6)),
        ]
    );
    let h1: Vec<_> = view.h1.iter().map(|(k, c)| (k - h, ohlcv(c), c.trades)).collect();
    assert_eq!(
        h1,
        [
            (-3_600_000, (100, 100, 100, 100, 1), 1),
            (0, (105, 105, 95, 102, 14), 4),
            (3_600_000, (99, 99, 99, 99, 6), 1),
        ]
    );
    assert_eq!(view.h1[&h].quote_volume, (10 * (105 * 2 + 95 * 3 + 101 * 4 + 102 * 5)).to_string());
    assert_eq!(view.m1[&h].start, hour);
}

#[tokio::test]
async fn hob_replay_views_rebuilds_and_compares_with_the_live_views() {
    let dir = temp_dir();
    let events_db = dir.path().join("events.db");
    let live_db = dir.path().join("live-views.db");
    let mut ex = Exchange::open(&events_db);
    let live = SqliteViewStore::open(&live_db).unwrap();
    for n in 0..STEPS {
        step(&mut ex, n).await;
        Projector::new().catch_up(&ex.store, &live).await.unwrap();
    }
    let total: u64 = ex.versions.values().sum();
    drop(ex);
    drop(live);

    let hob = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_hob")).args(args).output().unwrap();
    let store_arg = format!("sqlite:{}", events_db.display());
    let out_db = dir.path().join("rebuilt.db");
    let out = hob(&[
        "replay",
        "--views",
        "--store",
        &store_arg,
        "--out",
        out_db.to_str().unwrap(),
        "--compare",
        live_db.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("events folded: {total}")), "{stdout}");
    assert!(
        stdout.contains("views: 12") && stdout.contains("  balances: 3") && stdout.contains("  depth: 1"),
        "{stdout}"
    );
    assert!(stdout.contains("compare: identical"), "{stdout}");
    let rebuilt = SqliteViewStore::open(&out_db).unwrap();
    let live = SqliteViewStore::open(&live_db).unwrap();
    assert_eq!(diff_views(&rebuilt, &live).await.unwrap(), vec![]);

    // A fresh output only: replay never folds into an existing store.
    let again = hob(&["replay", "--views", "--store", &store_arg, "--out", out_db.to_str().unwrap()]);
    assert!(!again.status.success());

    // Live views behind the events differ, and the command says so.
    let mut ex = Exchange::open(&events_db);
    for s in ex.store.list_streams().await.unwrap() {
        let v = ex.store.stream_version(&s).await.unwrap();
        ex.versions.insert(s, v);
    }
    ex.deposit(ALICE).await;
    drop(ex);
    let behind = hob(&["replay", "--views", "--store", &store_arg, "--compare", live_db.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&behind.stdout);
    assert!(!behind.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("differs: balances / {ALICE}")), "{stdout}");
}
