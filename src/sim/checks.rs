//! What must hold after any run, crashes and chaos included: checked against the stored
//! events (what an auditor sees) and against the live actors (what clients see).

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::runner::{Node, World};
use crate::actors::{is_bookkeeping, MarketView};
use crate::domain::user::UserEvent;
use crate::domain::{AssetId, MarketEvent, OrderId, UserId};
use crate::events::user_payload::decode_user_event;
use crate::events::{canonical_json, decode_market_event, EventEnvelope, StreamId};
use crate::queue::{Queue, MARKET_QUEUE, SETTLEMENT_QUEUE, USER_QUEUE};
use crate::store::MemoryEventStore;

/// What the traders were told.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Orders `place` answered Ok for: each must be found at its market and accounted for.
    pub acked: Vec<(UserId, OrderId)>,
}

/// A broken invariant, with the one command that replays the run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("seed {seed} failed after step {step}: {message}\nreplay it with: hob sim --seed {seed}{flags}")]
pub struct SimFailure {
    pub seed: u64,
    pub step: u32,
    pub message: String,
    /// The `hob sim` flags of the run's configuration (`SimConfig::flags`).
    pub flags: String,
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn market_events(events: &[EventEnvelope], stream: &StreamId) -> Result<Vec<MarketEvent>, String> {
    let mut out = Vec::new();
    for e in events.iter().filter(|e| &e.stream == stream && !is_bookkeeping(&e.event_type)) {
        let decoded = decode_market_event(&e.event_type, e.schema_version, e.payload.clone())
            .map_err(|err| format!("{} v{}: {err}", e.stream, e.version))?;
        out.push(decoded);
    }
    Ok(out)
}

fn user_events(events: &[EventEnvelope], stream: &StreamId) -> Result<Vec<UserEvent>, String> {
    let mut out = Vec::new();
    for e in events.iter().filter(|e| &e.stream == stream && !is_bookkeeping(&e.event_type)) {
        let decoded = decode_user_event(&e.event_type, e.schema_version, e.payload.clone())
            .map_err(|err| format!("{} v{}: {err}", e.stream, e.version))?;
        out.push(decoded);
    }
    Ok(out)
}

/// Every invariant; the first one broken is the error.
pub(super) async fn check_all(world: &mut World, node: &Node) -> Result<(), String> {
    let events = world.disk.all_events();
    let mut by_stream: BTreeMap<&StreamId, Vec<&EventEnvelope>> = BTreeMap::new();
    for e in &events {
        by_stream.entry(&e.stream).or_default().push(e);
    }
    // Every stream: gapless versions and an intact hash chain.
    for (stream, stream_events) in &by_stream {
        let owned: Vec<EventEnvelope> = stream_events.iter().map(|e| (*e).clone()).collect();
        crate::events::verify_chain(&owned).map_err(|e| format!("{stream}: {e}"))?;
    }

    let market_stream = StreamId::market(world.spec.id);
    let mut accepted: HashMap<OrderId, usize> = HashMap::new();
    let mut rejected: HashSet<OrderId> = HashSet::new();
    let mut terminal: HashMap<OrderId, usize> = HashMap::new();
    let mut trade_ids = HashSet::new();
    let mut trade_sides: HashSet<(UserId, OrderId, u64)> = HashSet::new();
    let mut trades = Vec::new();
    for event in market_events(&events, &market_stream)? {
        match event {
            MarketEvent::Accepted(o) => *accepted.entry(o.id).or_default() += 1,
            MarketEvent::Rejected { order, .. } => {
                rejected.insert(order);
            }
            MarketEvent::Filled { order }
            | MarketEvent::Cancelled { order, .. }
            | MarketEvent::Expired { order, .. } => *terminal.entry(order).or_default() += 1,
            MarketEvent::Traded(t) => {
                ensure!(trade_ids.insert(t.id), "trade {:?} stored twice", t.id);
                trade_sides.insert((t.maker_user, t.maker_order, t.id.0));
                trade_sides.insert((t.taker_user, t.taker_order, t.id.0));
                trades.push(t);
            }
            _ => {}
        }
    }
    world.report.trades = trade_ids.len() as u64;
    for (order, n) in &accepted {
        ensure!(*n == 1, "order {order:?} accepted {n} times");
    }
    for (order, n) in &terminal {
        ensure!(*n == 1, "order {order:?} left the book {n} times");
    }

    // Users: each order placed once, each trade side applied once, and the applied fills are
    // exactly the market's trades; funds in equal funds held plus fees.
    let mut fills: HashSet<(UserId, OrderId, u64)> = HashSet::new();
    let mut voided: HashSet<(UserId, OrderId, u64)> = HashSet::new();
    let mut flows: BTreeMap<AssetId, i128> = BTreeMap::new();
    let mut held: BTreeMap<AssetId, u128> = BTreeMap::new();
    let mut open_total = 0;
    for n in 0..world.config.users {
        let u = super::runner::user(n);
        let mut placed = HashSet::new();
        for event in user_events(&events, &StreamId::user(u))? {
            match event {
                UserEvent::OrderPlaced { order, .. } => {
                    ensure!(placed.insert(order.id), "order {:?} placed twice", order.id)
                }
                UserEvent::FillApplied { order, trade, .. } => {
                    ensure!(fills.insert((u, order, trade.id.0)), "fill of trade {:?} applied twice", trade.id)
                }
                UserEvent::Deposited { asset, amount } | UserEvent::DepositCredited { asset, amount, .. } => {
                    *flows.entry(asset).or_default() += amount.0 as i128
                }
                UserEvent::Withdrawn { asset, amount } | UserEvent::WithdrawalCompleted { asset, amount, .. } => {
                    *flows.entry(asset).or_default() -= amount.0 as i128
                }
                UserEvent::TradeVoided { order, trade, .. } => {
                    ensure!(voided.insert((u, order, trade.0)), "void of trade {trade:?} applied twice")
                }
                _ => {}
            }
        }
        let view = node.engine.user(u).await.map_err(|e| format!("user {u:?}: {e}"))?;
        for (id, open) in view.state.open_orders() {
            open_total += 1;
            let book = node.engine.market(open.market, 0, Some(id)).await.map_err(|e| e.to_string())?;
            ensure!(book.order.is_some(), "order {id:?} open for its user but not on the book");
        }
        for (asset, balance) in view.balances {
            *held.entry(asset).or_default() += balance.available.0 + balance.locked.0 + balance.settling.0;
        }
    }
    let unapplied: Vec<_> = trade_sides.difference(&fills).take(5).collect();
    let invented: Vec<_> = fills.difference(&trade_sides).take(5).collect();
    ensure!(
        unapplied.is_empty() && invented.is_empty(),
        "the users' fills differ from the market's trades: trade sides never applied {unapplied:?}, fills with no trade {invented:?}"
    );
    // A voided side's fee was given back.
    let mut fees: u128 = 0;
    for t in &trades {
        for (user, order, fee) in
            [(t.maker_user, t.maker_order, t.maker_fee), (t.taker_user, t.taker_order, t.taker_fee)]
        {
            if !voided.contains(&(user, order, t.id.0)) {
                fees += fee.0;
            }
        }
    }
    *held.entry(world.spec.quote).or_default() += fees;
    for (asset, flow) in &flows {
        let holding = held.get(asset).copied().unwrap_or(0) as i128;
        ensure!(holding == *flow, "{asset:?} not conserved: {flow} deposited net of withdrawals, {holding} held");
    }

    // Every acknowledged order reached the market and is open or accounted for.
    for (u, order) in &world.ledger.acked {
        let view = node.engine.user(*u).await.map_err(|e| e.to_string())?;
        let open = view.state.open_order(*order).is_some();
        ensure!(
            accepted.contains_key(order) || rejected.contains(order),
            "acknowledged order {order:?} never reached the market"
        );
        ensure!(
            open || terminal.contains_key(order) || rejected.contains(order),
            "acknowledged order {order:?} vanished"
        );
    }

    // The book agrees with the users and is not crossed.
    let book = node.engine.market(world.spec.id, usize::MAX, None).await.map_err(|e| e.to_string())?;
    ensure!(book.resting_orders == open_total, "book has {} orders, users {open_total}", book.resting_orders);
    if let (Some(bid), Some(ask)) = (book.bids.first(), book.asks.first()) {
        ensure!(bid.price < ask.price, "crossed book: {bid:?} / {ask:?}");
    }

    // Nothing left behind.
    let queues: &[&str] =
        if world.chain.is_some() { &[MARKET_QUEUE, USER_QUEUE, SETTLEMENT_QUEUE] } else { &[MARKET_QUEUE, USER_QUEUE] };
    for d in queues {
        let dead = node.queue.dead_letters(d).await.map_err(|e| e.to_string())?;
        ensure!(dead.is_empty(), "{} dead letters in {d}", dead.len());
    }
    Ok(())
}

/// What the actors hold: every user's canonical state and the whole book.
#[derive(Debug, PartialEq)]
pub(super) struct Visible {
    users: Vec<Vec<u8>>,
    market: MarketView,
}

pub(super) async fn visible(world: &World, node: &Node) -> Result<Visible, String> {
    let mut users = Vec::new();
    for n in 0..world.config.users {
        let view = node.engine.user(super::runner::user(n)).await.map_err(|e| e.to_string())?;
        users.push(view.state.canonical_bytes());
    }
    let market = node.engine.market(world.spec.id, usize::MAX, None).await.map_err(|e| e.to_string())?;
    Ok(Visible { users, market })
}

/// (events, trades, digest) of the disk. The digest leaves out event ids, which are random
/// by design (UUIDv7), and keeps everything the seed decides.
pub(super) fn digest(disk: &MemoryEventStore) -> (u64, u64, [u8; 32]) {
    let mut hash = Sha256::new();
    let mut events = 0;
    let mut trades = 0;
    for e in disk.all_events() {
        events += 1;
        if e.event_type == crate::events::payload::TRADED {
            trades += 1;
        }
        hash.update(e.stream.as_str().as_bytes());
        hash.update(e.version.to_be_bytes());
        hash.update(e.event_type.as_bytes());
        hash.update(canonical_json(&e.payload));
    }
    (events, trades, hash.finalize().into())
}
