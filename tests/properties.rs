//! Properties of the matching core and the ledger together, checked after every command of
//! random command sequences: four users trading over a narrow band of prices so that most
//! orders cross, with every order kind, time in force, post-only and self-trade mode, plus
//! cancels and amends of live and dead ids, expiries, halts, deposits and a clock that moves.
//!
//! Each property is its own proptest over the same generator; a failure shrinks to a short
//! command sequence and names the step, the command and its events.

#[path = "support/venue.rs"]
mod venue;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::ControlFlow;

use hob::domain::{
    Amount, AssetId, ExpireReason, Market, MarketCommand, MarketEvent, MarketStatus, NewOrder, OrderId, OrderType,
    PriceTicks, QtyLots, RejectReason, RestingOrder, Side, StpMode, TimeInForce, TimestampMs, UserId,
};
use proptest::prelude::*;
use proptest::sample::Index;
use venue::{Outcome, Venue};

const USERS: u8 = 4;
const LOW_PRICE_TICKS: u64 = 99;
const HIGH_PRICE_TICKS: u64 = 101;

fn user(n: u8) -> UserId {
    UserId([n + 1; 20])
}

// ---------------------------------------------------------------------------------------------
// Scripts: what the generator produces, before ids and times are resolved.

#[derive(Clone, Copy, Debug)]
enum Tif {
    Gtc,
    Ioc,
    Fok,
    /// Good till `now + ttl_ms`; a ttl of 0 is already expired.
    Gtd {
        ttl_ms: u64,
    },
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Limit {
        price_ticks: u64,
    },
    /// A buy always gets a worst price: without one its cost cannot be locked.
    Market {
        worst_price_ticks: Option<u64>,
    },
}

#[derive(Clone, Debug)]
enum Op {
    Place {
        user: u8,
        side: Side,
        kind: Kind,
        qty_lots: u64,
        tif: Tif,
        post_only: bool,
        stp: StpMode,
    },
    /// `by: None` is the order's owner; `Some` is any user (often not the owner).
    Cancel {
        target: Target,
        by: Option<u8>,
    },
    Amend {
        target: Target,
        by: Option<u8>,
        price: NewPrice,
        qty: NewQty,
    },
    ExpireDue,
    Halt,
    Resume,
    Deposit {
        user: u8,
        base: bool,
        amount: u128,
    },
}

/// Which order a cancel or amend names: one resting now, one placed earlier (live or not),
/// or one never placed.
#[derive(Clone, Copy, Debug)]
enum Target {
    Resting(Index),
    Placed(Index),
    Unknown,
}

/// An amend's price, relative to the order's when it rests, so that amends that keep or lose
/// priority are both frequent.
#[derive(Clone, Copy, Debug)]
enum NewPrice {
    Same,
    Ticks(i64),
    Absolute(u64),
}

#[derive(Clone, Copy, Debug)]
enum NewQty {
    Same,
    Less(u64),
    More(u64),
    Absolute(u64),
}

#[derive(Clone, Debug)]
struct Step {
    dt_ms: u64,
    op: Op,
}

#[derive(Clone, Debug)]
struct Script {
    /// Per user: base and quote deposited before the first step.
    funds: Vec<(u128, u128)>,
    steps: Vec<Step>,
}

// Choices are drawn as small integers and mapped, not with `prop_oneof!` over `Just`s: in a
// debug build that is an order of magnitude faster to generate, and an integer shrinks towards
// 0, which every mapping below makes the plainest choice.

/// Mostly a price in the band; sometimes one far from it, so the book grows levels away from
/// the touch; now and then 0, which is off the grid.
fn price_ticks() -> impl Strategy<Value = u64> {
    let band = HIGH_PRICE_TICKS - LOW_PRICE_TICKS + 1;
    (0u64..=36, 80u64..=120).prop_map(move |(n, far)| match n {
        0 => 0,
        1..=30 => LOW_PRICE_TICKS + (n - 1) % band,
        _ => far,
    })
}

/// Mostly 1 to 10 lots; now and then 0 or more than the market's maximum.
fn qty_lots() -> impl Strategy<Value = u64> {
    (0u64..=31).prop_map(|n| match n {
        0 => 0,
        31 => 1_001,
        n => (n - 1) % 10 + 1,
    })
}

fn side() -> impl Strategy<Value = Side> {
    any::<bool>().prop_map(|sell| if sell { Side::Sell } else { Side::Buy })
}

fn stp() -> impl Strategy<Value = StpMode> {
    (0u8..3).prop_map(|n| match n {
        0 => StpMode::ExpireMaker,
        1 => StpMode::ExpireTaker,
        _ => StpMode::ExpireBoth,
    })
}

fn tif() -> impl Strategy<Value = Tif> {
    (0u8..13, 0u64..70).prop_map(|(n, ttl)| match n {
        0..=5 => Tif::Gtc,
        6..=7 => Tif::Ioc,
        8..=9 => Tif::Fok,
        // One in seven is already expired when placed.
        _ => Tif::Gtd { ttl_ms: ttl.saturating_sub(9) },
    })
}

fn place() -> impl Strategy<Value = Op> {
    let kind = (0u8..7, price_ticks(), any::<bool>()).prop_map(|(n, price_ticks, bounded)| match n {
        0..=5 => Kind::Limit { price_ticks },
        _ => Kind::Market { worst_price_ticks: bounded.then_some(price_ticks) },
    });
    (0..USERS, side(), kind, qty_lots(), tif(), proptest::bool::weighted(0.15), stp()).prop_map(
        |(user, side, kind, qty_lots, tif, post_only, stp)| {
            let kind = match kind {
                Kind::Market { worst_price_ticks: None } if side == Side::Buy => {
                    Kind::Market { worst_price_ticks: Some(HIGH_PRICE_TICKS) }
                }
                kind => kind,
            };
            Op::Place { user, side, kind, qty_lots, tif, post_only, stp }
        },
    )
}

fn target() -> impl Strategy<Value = Target> {
    (0u8..12, any::<Index>()).prop_map(|(n, i)| match n {
        0..=7 => Target::Resting(i),
        8..=10 => Target::Placed(i),
        _ => Target::Unknown,
    })
}

/// Four times in five the owner, else any user.
fn by() -> impl Strategy<Value = Option<u8>> {
    (0u8..5 * USERS).prop_map(|n| n.checked_sub(4 * USERS))
}

fn new_price() -> impl Strategy<Value = NewPrice> {
    (0u8..6, -3i64..=3, price_ticks()).prop_map(|(n, ticks, price)| match n {
        0..=2 => NewPrice::Same,
        3..=4 => NewPrice::Ticks(ticks),
        _ => NewPrice::Absolute(price),
    })
}

fn new_qty() -> impl Strategy<Value = NewQty> {
    (0u8..7, 1u64..=5, qty_lots()).prop_map(|(n, d, qty)| match n {
        0 => NewQty::Same,
        1..=3 => NewQty::Less(d),
        4..=5 => NewQty::More(d),
        _ => NewQty::Absolute(qty),
    })
}

fn op() -> impl Strategy<Value = Op> {
    // Every step draws the arguments of every kind of op and keeps those it needs: cheaper to
    // generate than a union of strategies, and just as good to shrink.
    let deposit = (0..USERS, any::<bool>(), 1u128..=50_000);
    (0u8..49, place(), target(), by(), new_price(), new_qty(), deposit).prop_map(
        |(n, place, target, by, price, qty, (user, base, amount))| match n {
            0..=23 => place,
            24..=29 => Op::Cancel { target, by },
            30..=35 => Op::Amend { target, by, price, qty },
            36..=37 => Op::ExpireDue,
            38 => Op::Halt,
            39..=46 => Op::Resume,
            _ => Op::Deposit { user, base, amount },
        },
    )
}

/// Mostly no time passes or a few ms, sometimes up to 10 ms.
fn step() -> impl Strategy<Value = Step> {
    let dt_ms = (0u64..14).prop_map(|n| match n {
        0..=5 => 0,
        6..=11 => (n - 6) / 2 + 1,
        _ => (n - 11) * 5,
    });
    (dt_ms, op()).prop_map(|(dt_ms, op)| Step { dt_ms, op })
}

fn script() -> impl Strategy<Value = Script> {
    // A buy of 10 lots at the top of the band locks about 10,100 quote; 10 lots sell 10,000
    // base. Funds range from nothing to a dozen such orders, so some orders are refused.
    let funds = (0u128..=120_000, 0u128..=120_000);
    (proptest::collection::vec(funds, USERS as usize), proptest::collection::vec(step(), 1..150))
        .prop_map(|(funds, steps)| Script { funds, steps })
}

// ---------------------------------------------------------------------------------------------
// Running a script through a venue, with an observer after every command.

/// A script step with ids, users and times made concrete.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Command {
    Place(NewOrder),
    Cancel { order: OrderId, user: UserId },
    Amend { order: OrderId, user: UserId, price: PriceTicks, qty: QtyLots },
    ExpireDue,
    Halt,
    Resume,
    Deposit { user: UserId, asset: AssetId, amount: Amount },
}

/// What an observer sees after one command.
struct Ctx<'a> {
    venue: &'a Venue,
    command: &'a Command,
    outcome: &'a Outcome,
    now: TimestampMs,
}

impl Ctx<'_> {
    fn events(&self) -> &[MarketEvent] {
        self.outcome.events()
    }
}

type Check = Result<(), String>;

/// Runs `script` through a fresh venue, calling `observe` after every command; returns the
/// venue and every command's outcome.
fn run(script: &Script, mut observe: impl FnMut(&Ctx) -> Check) -> Result<(Venue, Vec<Outcome>), TestCaseError> {
    let mut venue = Venue::new();
    let (base, quote) = (venue.spec().base, venue.spec().quote);
    for (n, &(b, q)) in script.funds.iter().enumerate() {
        venue.deposit(user(n as u8), base, Amount(b));
        venue.deposit(user(n as u8), quote, Amount(q));
    }
    let mut placed: Vec<(OrderId, UserId)> = Vec::new();
    let mut now = 1_000u64;
    let mut outcomes = Vec::with_capacity(script.steps.len());
    for (i, step) in script.steps.iter().enumerate() {
        now += step.dt_ms;
        let at = TimestampMs(now);
        let market = venue.market();
        let live: Vec<RestingOrder> =
            resting(market, Side::Buy).into_iter().chain(resting(market, Side::Sell)).collect();
        let command = resolve(&step.op, &placed, &live, at, base, quote);
        let outcome = match command {
            Command::Place(order) => {
                placed.push((order.id, order.user));
                venue.place(order, at)
            }
            Command::Cancel { order, user } => venue.cancel(order, user, at),
            Command::Amend { order, user, price, qty } => venue.amend(order, user, price, qty, at),
            Command::ExpireDue => venue.expire_due(at),
            Command::Halt => venue.halt(at),
            Command::Resume => venue.resume(at),
            Command::Deposit { user, asset, amount } => {
                venue.deposit(user, asset, amount);
                Outcome::Decided(vec![])
            }
        };
        let ctx = Ctx { venue: &venue, command: &command, outcome: &outcome, now: at };
        if let Err(why) = observe(&ctx) {
            return Err(TestCaseError::fail(format!(
                "step {i} at {now} ms: {command:?}\n  outcome: {outcome:?}\n  violated: {why}"
            )));
        }
        outcomes.push(outcome);
    }
    Ok((venue, outcomes))
}

fn resolve(
    op: &Op,
    placed: &[(OrderId, UserId)],
    live: &[RestingOrder],
    now: TimestampMs,
    base: AssetId,
    quote: AssetId,
) -> Command {
    // The order named, its owner, and its price and size if it rests.
    let target = |t: Target, by: Option<u8>| -> (OrderId, UserId, Option<(u64, u64)>) {
        let (order, owner) = match t {
            Target::Resting(i) if !live.is_empty() => (i.get(live).id, i.get(live).user),
            Target::Resting(i) | Target::Placed(i) if !placed.is_empty() => *i.get(placed),
            _ => (OrderId(999_999), user(0)),
        };
        let terms = live.iter().find(|o| o.id == order).map(|o| (o.price.0, o.qty.0));
        (order, by.map_or(owner, user), terms)
    };
    match *op {
        Op::Place { user: u, side, kind, qty_lots, tif, post_only, stp } => Command::Place(NewOrder {
            id: OrderId(placed.len() as u64 + 1),
            user: user(u),
            side,
            order_type: match kind {
                Kind::Limit { price_ticks } => OrderType::Limit { price: PriceTicks(price_ticks) },
                Kind::Market { worst_price_ticks } => {
                    OrderType::Market { worst_price: worst_price_ticks.map(PriceTicks) }
                }
            },
            qty: QtyLots(qty_lots),
            tif: match tif {
                Tif::Gtc => TimeInForce::Gtc,
                Tif::Ioc => TimeInForce::Ioc,
                Tif::Fok => TimeInForce::Fok,
                Tif::Gtd { ttl_ms } => TimeInForce::Gtd(TimestampMs(now.0 + ttl_ms)),
            },
            post_only,
            stp,
        }),
        Op::Cancel { target: t, by } => {
            let (order, user, _) = target(t, by);
            Command::Cancel { order, user }
        }
        Op::Amend { target: t, by, price, qty } => {
            let (order, user, terms) = target(t, by);
            let (old_price, old_qty) = terms.unwrap_or((100, 5));
            let price = match price {
                NewPrice::Same => old_price,
                NewPrice::Ticks(d) => old_price.saturating_add_signed(d),
                NewPrice::Absolute(p) => p,
            };
            let qty = match qty {
                NewQty::Same => old_qty,
                NewQty::Less(d) => old_qty.saturating_sub(d).max(1),
                NewQty::More(d) => old_qty + d,
                NewQty::Absolute(q) => q,
            };
            Command::Amend { order, user, price: PriceTicks(price), qty: QtyLots(qty) }
        }
        Op::ExpireDue => Command::ExpireDue,
        Op::Halt => Command::Halt,
        Op::Resume => Command::Resume,
        Op::Deposit { user: u, base: is_base, amount } => {
            Command::Deposit { user: user(u), asset: if is_base { base } else { quote }, amount: Amount(amount) }
        }
    }
}

fn resting(market: &Market, side: Side) -> Vec<RestingOrder> {
    let mut out = Vec::new();
    market.book().walk::<()>(side, |o| {
        out.push(o);
        ControlFlow::Continue(())
    });
    out
}

/// 256 cases a property by default; `PROPTEST_CASES=20000` for a deeper run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// A reference model of the book, kept from the events alone, for price-time priority.

/// Resting orders per side and price, each level in the order its orders (last) rested.
#[derive(Default)]
struct BookModel {
    levels: BTreeMap<(SideKey, PriceTicks), VecDeque<(OrderId, QtyLots)>>,
    /// The side and price of every resting order.
    at: BTreeMap<OrderId, (Side, PriceTicks)>,
    /// The order currently matching: its side, worst price and what it has left to trade.
    taker: Option<(OrderId, Side, Option<PriceTicks>, QtyLots)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SideKey {
    Buy,
    Sell,
}

fn key(side: Side) -> SideKey {
    match side {
        Side::Buy => SideKey::Buy,
        Side::Sell => SideKey::Sell,
    }
}

impl BookModel {
    /// The side's orders best price first, earliest first within a price.
    fn walk(&self, side: Side) -> Vec<(OrderId, PriceTicks, QtyLots)> {
        let levels = self.levels.iter().filter(|((s, _), _)| *s == key(side));
        let flat = |((_, p), q): (&(SideKey, PriceTicks), &VecDeque<(OrderId, QtyLots)>)| {
            q.iter().map(move |&(id, qty)| (id, *p, qty)).collect::<Vec<_>>()
        };
        match side {
            Side::Buy => levels.rev().flat_map(flat).collect(),
            Side::Sell => levels.flat_map(flat).collect(),
        }
    }

    fn remove(&mut self, order: OrderId) -> Option<QtyLots> {
        let (side, price) = self.at.remove(&order)?;
        let level = self.levels.get_mut(&(key(side), price))?;
        let pos = level.iter().position(|(id, _)| *id == order)?;
        let (_, qty) = level.remove(pos)?;
        if level.is_empty() {
            self.levels.remove(&(key(side), price));
        }
        Some(qty)
    }

    fn apply(&mut self, event: &MarketEvent) -> Check {
        match *event {
            MarketEvent::Accepted(o) => self.taker = Some((o.id, o.side, o.order_type.price_bound(), o.qty)),
            MarketEvent::Rested { order, side, price, qty, .. } => {
                if self.at.insert(order, (side, price)).is_some() {
                    return Err(format!("{order} rested twice"));
                }
                self.levels.entry((key(side), price)).or_default().push_back((order, qty));
            }
            MarketEvent::Traded(t) => {
                let maker_side = t.taker_side.opposite();
                let Some((taker, side, limit, left)) = self.taker else {
                    return Err(format!("trade {} with no taker matching", t.id));
                };
                if (taker, side) != (t.taker_order, t.taker_side) {
                    return Err(format!(
                        "trade {} names taker {} ({:?}), but {taker} ({side:?}) is matching",
                        t.id, t.taker_order, t.taker_side
                    ));
                }
                if limit.is_some_and(|limit| !side.crosses(limit, t.price)) {
                    return Err(format!("trade {} at {} is beyond the taker's worst price {limit:?}", t.id, t.price.0));
                }
                let first = self.walk(maker_side).first().copied();
                let Some((maker, price, qty)) = first else {
                    return Err(format!("trade {} against an empty {maker_side:?} side", t.id));
                };
                if (maker, price) != (t.maker_order, t.price) {
                    return Err(format!(
                        "trade {} hit maker {} at {}, but the first in price-time priority is {maker} at {}",
                        t.id, t.maker_order, t.price.0, price.0
                    ));
                }
                if t.qty != qty.min(left) {
                    return Err(format!(
                        "trade {} is for {} lots; maker has {}, taker {}",
                        t.id, t.qty.0, qty.0, left.0
                    ));
                }
                self.taker = Some((taker, side, limit, left - t.qty));
                if t.qty == qty {
                    self.remove(maker);
                } else if let Some(level) = self.levels.get_mut(&(key(maker_side), price)) {
                    level[0].1 = qty - t.qty;
                }
            }
            MarketEvent::Filled { order } => {
                if self.at.contains_key(&order) {
                    return Err(format!("{order} reported filled while it still rests"));
                }
            }
            MarketEvent::Cancelled { order, remaining, .. } | MarketEvent::Expired { order, remaining, .. } => {
                if let Some(qty) = self.remove(order) {
                    if qty != remaining {
                        return Err(format!("{order} left with {} lots reported, {} resting", remaining.0, qty.0));
                    }
                } else if let Some((taker, _, _, left)) = self.taker.filter(|t| t.0 == order) {
                    if remaining != left {
                        return Err(format!(
                            "taker {taker} left with {} lots reported, {} unmatched",
                            remaining.0, left.0
                        ));
                    }
                }
            }
            MarketEvent::Amended { order, price, qty, keeps_priority } => {
                let Some(&(side, old_price)) = self.at.get(&order) else {
                    return Err(format!("{order} amended but not resting"));
                };
                if keeps_priority {
                    if price != old_price {
                        return Err(format!("{order} kept priority while moving from {} to {}", old_price.0, price.0));
                    }
                    let level = self.levels.get_mut(&(key(side), price)).ok_or("no level")?;
                    let entry = level.iter_mut().find(|(id, _)| *id == order).ok_or("not in level")?;
                    if qty >= entry.1 {
                        return Err(format!("{order} kept priority while growing from {} to {}", entry.1 .0, qty.0));
                    }
                    entry.1 = qty;
                } else {
                    self.remove(order);
                    self.taker = Some((order, side, Some(price), qty));
                }
            }
            MarketEvent::Rejected { .. } | MarketEvent::Halted | MarketEvent::Resumed => {}
        }
        Ok(())
    }
}

fn same_book(model: &BookModel, market: &Market) -> Check {
    for side in [Side::Buy, Side::Sell] {
        let live: Vec<_> = resting(market, side).iter().map(|o| (o.id, o.price, o.qty)).collect();
        let expected = model.walk(side);
        if live != expected {
            return Err(format!("{side:?} side walks as {live:?}, the model says {expected:?}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(config())]

    /// After every command the best bid is below the best ask.
    #[test]
    fn book_is_never_crossed(script in script()) {
        run(&script, |ctx| {
            let book = ctx.venue.market().book();
            if book.is_crossed() {
                return Err(format!("crossed: bids {:?} asks {:?}", book.depth(Side::Buy, 3), book.depth(Side::Sell, 3)));
            }
            let best = |side| book.depth(side, 1).first().map(|l| l.price);
            if book.best_price(Side::Buy) != best(Side::Buy) || book.best_price(Side::Sell) != best(Side::Sell) {
                return Err("best_price disagrees with depth".into());
            }
            Ok(())
        })?;
    }

    /// No order trades more than its quantity; after an amend, no more than what it had traded
    /// plus the amended quantity. What rests is exactly what is left.
    #[test]
    fn no_order_fills_beyond_its_quantity(script in script()) {
        // Per order: lots traded, lots it may trade in all.
        let mut fills: BTreeMap<OrderId, (QtyLots, QtyLots)> = BTreeMap::new();
        run(&script, |ctx| {
            for event in ctx.events() {
                match *event {
                    MarketEvent::Accepted(o) => {
                        fills.insert(o.id, (QtyLots::ZERO, o.qty));
                    }
                    MarketEvent::Amended { order, qty, .. } => {
                        let entry = fills.get_mut(&order).ok_or(format!("amend of unknown {order}"))?;
                        entry.1 = entry.0 + qty;
                    }
                    MarketEvent::Traded(t) => {
                        for order in [t.maker_order, t.taker_order] {
                            let entry = fills.get_mut(&order).ok_or(format!("trade of unknown {order}"))?;
                            entry.0 += t.qty;
                            if entry.0 > entry.1 {
                                return Err(format!("{order} traded {} lots of {}", entry.0 .0, entry.1 .0));
                            }
                        }
                    }
                    _ => {}
                }
            }
            let market = ctx.venue.market();
            for o in resting(market, Side::Buy).into_iter().chain(resting(market, Side::Sell)) {
                let (traded, allowed) = fills[&o.id];
                if traded + o.qty != allowed {
                    return Err(format!("{} rests {} lots after trading {} of {}", o.id, o.qty.0, traded.0, allowed.0));
                }
            }
            Ok(())
        })?;
    }

    /// Price-time priority: every trade takes the first order of the best opposite level, in
    /// the order orders (last) rested there, for min(maker, taker remaining) lots and never
    /// beyond the taker's price; the book always equals a model folded from the events.
    #[test]
    fn trades_follow_price_time_priority(script in script()) {
        let mut model = BookModel::default();
        run(&script, |ctx| {
            model.taker = None;
            for event in ctx.events() {
                model.apply(event).map_err(|e| format!("{e} (at {event:?})"))?;
            }
            same_book(&model, ctx.venue.market())
        })?;
    }

    /// Per asset: users' available + locked + settling plus fees collected equals everything
    /// deposited, after every command; and each user's locked balance is exactly the sum of
    /// their orders' locks.
    #[test]
    fn every_asset_is_conserved(script in script()) {
        let mut orders: BTreeSet<OrderId> = BTreeSet::new();
        run(&script, |ctx| {
            if let Command::Place(o) = ctx.command {
                orders.insert(o.id);
            }
            let venue = ctx.venue;
            let spec = venue.spec();
            for asset in [spec.base, spec.quote] {
                let mut sum = venue.fees().collected(asset);
                for (u, account) in venue.users() {
                    let total = account.balance(asset).total().ok_or("balance overflow")?;
                    sum = sum.checked_add(total).ok_or("sum overflow")?;
                    let locks = orders
                        .iter()
                        .filter_map(|&o| account.lock(o))
                        .filter(|l| l.asset == asset)
                        .fold(Amount::ZERO, |acc, l| Amount(acc.0 + l.amount.0));
                    if locks != account.balance(asset).locked {
                        return Err(format!("{u} has {} {asset} locked but its orders lock {}", account.balance(asset).locked.0, locks.0));
                    }
                }
                if sum != venue.deposited(asset) {
                    return Err(format!("{asset}: {} held + fees, {} deposited", sum.0, venue.deposited(asset).0));
                }
            }
            Ok(())
        })?;
    }

    /// A user's locks are exactly their resting orders, each sized for what is left of it: so
    /// a user with nothing on the book has nothing locked, in either asset.
    #[test]
    fn locks_follow_resting_orders(script in script()) {
        run(&script, |ctx| {
            let venue = ctx.venue;
            let spec = venue.spec();
            let market = venue.market();
            let all: Vec<RestingOrder> = resting(market, Side::Buy).into_iter().chain(resting(market, Side::Sell)).collect();
            for (u, account) in venue.users() {
                let mine: Vec<&RestingOrder> = all.iter().filter(|o| o.user == u).collect();
                if account.open_orders() != mine.len() {
                    return Err(format!("{u} holds {} locks for {} resting orders", account.open_orders(), mine.len()));
                }
                for o in &mine {
                    let lock = account.lock(o.id).ok_or(format!("{} rests without a lock", o.id))?;
                    if lock.qty != o.qty || lock.side != o.side {
                        return Err(format!("{} rests {:?} {} lots, its lock is {lock:?}", o.id, o.side, o.qty.0));
                    }
                }
                if mine.is_empty() {
                    for asset in [spec.base, spec.quote] {
                        if !account.balance(asset).locked.is_zero() {
                            return Err(format!("{u} has no orders but {} {asset} locked", account.balance(asset).locked.0));
                        }
                    }
                }
            }
            Ok(())
        })?;
    }

    /// The same commands give the same events, balances and fees; and the events alone,
    /// folded through `Market::apply` on a fresh market, rebuild the live market after every
    /// command.
    #[test]
    fn matching_is_deterministic_and_replayable(script in script()) {
        let mut replica = Market::new(venue::spec());
        let (first, first_outcomes) = run(&script, |ctx| {
            for event in ctx.events() {
                replica.apply(event).map_err(|e| format!("replaying {event:?}: {e}"))?;
            }
            let live = ctx.venue.market();
            for side in [Side::Buy, Side::Sell] {
                if resting(&replica, side) != resting(live, side) {
                    return Err(format!("replayed {side:?} side {:?} != live {:?}", resting(&replica, side), resting(live, side)));
                }
                if replica.book().depth(side, usize::MAX) != live.book().depth(side, usize::MAX) {
                    return Err(format!("replayed {side:?} depth differs"));
                }
            }
            if replica.next_trade_id() != live.next_trade_id() || replica.status() != live.status() {
                return Err(format!(
                    "replayed next trade {:?} / {:?}, live {:?} / {:?}",
                    replica.next_trade_id(), replica.status(), live.next_trade_id(), live.status()
                ));
            }
            Ok(())
        })?;
        let (second, second_outcomes) = run(&script, |_| Ok(()))?;
        prop_assert_eq!(first_outcomes, second_outcomes);
        prop_assert_eq!(first.log(), second.log());
        prop_assert_eq!(first.fees(), second.fees());
        let users = |v: &Venue| v.users().map(|(u, a)| (u, a.clone())).collect::<Vec<_>>();
        prop_assert_eq!(users(&first), users(&second));
    }

    /// Self-trade prevention: no trade has the same user on both sides, and a prevented
    /// self-trade cancels exactly what the taker's mode says.
    #[test]
    fn no_user_trades_with_itself(script in script()) {
        run(&script, |ctx| {
            for event in ctx.events() {
                if let MarketEvent::Traded(t) = event {
                    if t.maker_user == t.taker_user {
                        return Err(format!("self-trade {t:?}"));
                    }
                }
            }
            Ok(())
        })?;
    }

    /// Orders do what their terms say: only GTC and GTD limit orders rest, at their limit (or
    /// amended) price; a FOK order trades its whole quantity or is rejected; a post-only order
    /// never takes; a GTD order never trades, nor rests, at or after its expiry; nothing is
    /// accepted or trades while the market is halted.
    #[test]
    fn orders_keep_their_terms(script in script()) {
        let mut orders: BTreeMap<OrderId, NewOrder> = BTreeMap::new();
        let mut expiry: BTreeMap<OrderId, Option<TimestampMs>> = BTreeMap::new();
        let mut open = true;
        run(&script, |ctx| {
            let open_before = open;
            let mut traded: BTreeMap<OrderId, QtyLots> = BTreeMap::new();
            let mut amended: BTreeMap<OrderId, PriceTicks> = BTreeMap::new();
            for event in ctx.events() {
                match *event {
                    MarketEvent::Accepted(o) => {
                        if !open_before {
                            return Err(format!("{} accepted while halted", o.id));
                        }
                        orders.insert(o.id, o);
                    }
                    MarketEvent::Amended { order, price, .. } => {
                        if !open_before {
                            return Err(format!("{order} amended while halted"));
                        }
                        amended.insert(order, price);
                    }
                    MarketEvent::Rested { order, price, expiry: at, post_only, .. } => {
                        let o = orders.get(&order).ok_or(format!("{order} rests but was never accepted"))?;
                        if !o.may_rest() {
                            return Err(format!("{order} rests but is {:?} {:?}", o.order_type, o.tif));
                        }
                        let limit = amended.get(&order).copied().or(o.order_type.price_bound());
                        if Some(price) != limit || at != o.expiry() || post_only != o.post_only {
                            return Err(format!("{order} rests at {} (expiry {at:?}) but its terms are {o:?}", price.0));
                        }
                        expiry.insert(order, at);
                    }
                    MarketEvent::Traded(t) => {
                        if !open_before {
                            return Err(format!("trade {} while halted", t.id));
                        }
                        if orders.get(&t.taker_order).is_some_and(|o| o.post_only) {
                            return Err(format!("post-only {} took liquidity in trade {}", t.taker_order, t.id));
                        }
                        if let Some(Some(at)) = expiry.get(&t.maker_order) {
                            if *at <= ctx.now {
                                return Err(format!("{} traded at {} ms, expired at {} ms", t.maker_order, ctx.now.0, at.0));
                            }
                        }
                        *traded.entry(t.taker_order).or_default() += t.qty;
                    }
                    MarketEvent::Halted => open = false,
                    MarketEvent::Resumed => open = true,
                    _ => {}
                }
            }
            // Every command the market decides expires what is due first; a deposit or an order
            // the ledger refused never reaches it.
            let decided = matches!(ctx.outcome, Outcome::Decided(_)) && !matches!(ctx.command, Command::Deposit { .. });
            let market = ctx.venue.market();
            for o in resting(market, Side::Buy).into_iter().chain(resting(market, Side::Sell)) {
                if decided && o.expiry.is_some_and(|at| at <= ctx.now) {
                    return Err(format!("{} still rests at {} ms, past its expiry {:?}", o.id, ctx.now.0, o.expiry));
                }
            }
            if let Command::Place(o) = ctx.command {
                let accepted = ctx.events().iter().any(|e| matches!(e, MarketEvent::Accepted(a) if a.id == o.id));
                let filled = traded.get(&o.id).copied().unwrap_or_default();
                if o.tif == TimeInForce::Fok && accepted && filled != o.qty {
                    return Err(format!("FOK {} traded {} of {} lots", o.id, filled.0, o.qty.0));
                }
            }
            Ok(())
        })?;
    }

    /// An order ends once: after it is filled, cancelled, expired or its placement rejected,
    /// no event but a rejection names it again. Trades and fills name only live orders.
    #[test]
    fn every_order_ends_exactly_once(script in script()) {
        let mut ended: BTreeMap<OrderId, String> = BTreeMap::new();
        let mut live: BTreeSet<OrderId> = BTreeSet::new();
        run(&script, |ctx| {
            let placing = match ctx.command {
                Command::Place(o) => Some(o.id),
                _ => None,
            };
            for event in ctx.events() {
                let (orders, ends): (Vec<OrderId>, bool) = match *event {
                    MarketEvent::Accepted(o) => {
                        live.insert(o.id);
                        (vec![], false)
                    }
                    MarketEvent::Rested { order, .. } | MarketEvent::Amended { order, .. } => (vec![order], false),
                    MarketEvent::Traded(t) => (vec![t.maker_order, t.taker_order], false),
                    MarketEvent::Filled { order }
                    | MarketEvent::Cancelled { order, .. }
                    | MarketEvent::Expired { order, .. } => (vec![order], true),
                    MarketEvent::Rejected { order, .. } if Some(order) == placing => {
                        ended.insert(order, format!("{event:?}"));
                        (vec![], false)
                    }
                    MarketEvent::Rejected { .. } | MarketEvent::Halted | MarketEvent::Resumed => (vec![], false),
                };
                for order in orders {
                    if let Some(end) = ended.get(&order) {
                        return Err(format!("{event:?} names {order}, which already ended with {end}"));
                    }
                    if !live.contains(&order) {
                        return Err(format!("{event:?} names {order}, which was never accepted"));
                    }
                    if ends {
                        live.remove(&order);
                        ended.insert(order, format!("{event:?}"));
                    }
                }
            }
            Ok(())
        })?;
    }
}

/// The generator is worth its cases only if the commands it makes reach every path: this
/// counts what 256 scripts produce and fails if some outcome became rare (say, a change made
/// every order rejected, and the properties above passed vacuously).
#[test]
fn generated_scripts_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..256 {
        let script = script().new_tree(&mut runner).expect("a script").current();
        let (_, outcomes) = run(&script, |_| Ok(())).expect("runs");
        for outcome in &outcomes {
            let kinds: Vec<String> = match outcome {
                Outcome::Refused(_) => vec!["refused".into()],
                Outcome::Decided(events) => events
                    .iter()
                    .map(|e| match e {
                        MarketEvent::Rejected { reason, .. } => format!("rejected {}", reason.code()),
                        MarketEvent::Cancelled { reason, .. } => format!("cancelled {}", reason.code()),
                        MarketEvent::Expired { reason, .. } => format!("expired {}", reason.code()),
                        MarketEvent::Amended { keeps_priority, .. } => format!("amended {keeps_priority}"),
                        MarketEvent::Traded(t) => format!("traded {:?}", t.taker_side),
                        other => format!("{other:?}").split(|c: char| !c.is_alphanumeric()).next().unwrap_or("").into(),
                    })
                    .collect(),
            };
            for kind in kinds {
                *seen.entry(kind).or_default() += 1;
            }
        }
    }
    let expected = [
        ("Accepted", 2_000),
        ("Rested", 1_000),
        ("traded Buy", 300),
        ("traded Sell", 300),
        ("Filled", 500),
        ("amended true", 50),
        ("amended false", 100),
        ("cancelled user", 200),
        ("cancelled stp", 100),
        ("expired gtd", 100),
        ("expired ioc", 100),
        ("expired market", 100),
        ("rejected post_only_would_cross", 20),
        ("rejected fok_cannot_fill", 100),
        ("rejected already_expired", 20),
        ("rejected market_halted", 50),
        ("rejected not_owner", 50),
        ("rejected unknown_order", 50),
        ("rejected amend_no_change", 20),
        ("rejected below_min_notional", 20),
        ("Halted", 50),
        ("Resumed", 50),
        ("refused", 100),
    ];
    for (kind, at_least) in expected {
        let n = seen.get(kind).copied().unwrap_or(0);
        assert!(n >= at_least, "only {n} {kind:?} in 256 scripts (want {at_least}); all: {seen:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed cases: the venue's own routing, and what the generator found, kept as specifications.

fn limit(id: u64, u: u8, side: Side, price: u64, qty: u64, tif: TimeInForce) -> NewOrder {
    NewOrder {
        id: OrderId(id),
        user: user(u),
        side,
        order_type: OrderType::Limit { price: PriceTicks(price) },
        qty: QtyLots(qty),
        tif,
        post_only: false,
        stp: StpMode::ExpireMaker,
    }
}

fn funded_venue() -> Venue {
    let mut venue = Venue::new();
    let (base, quote) = (venue.spec().base, venue.spec().quote);
    for u in 0..USERS {
        venue.deposit(user(u), base, Amount(1_000_000));
        venue.deposit(user(u), quote, Amount(1_000_000));
    }
    venue
}

#[test]
fn a_cross_trades_at_the_makers_price_and_settles_both_sides() {
    let mut venue = funded_venue();
    let (base, quote) = (venue.spec().base, venue.spec().quote);
    venue.place(limit(1, 0, Side::Sell, 100, 3, TimeInForce::Gtc), TimestampMs(1));
    let out = venue.place(limit(2, 1, Side::Buy, 101, 2, TimeInForce::Gtc), TimestampMs(2));
    let trade = out.events().iter().find_map(|e| if let MarketEvent::Traded(t) = e { Some(*t) } else { None });
    let trade = trade.expect("a trade");
    assert_eq!((trade.price, trade.qty), (PriceTicks(100), QtyLots(2)));
    // 2 lots at 100 ticks of 10 quote: 2,000 quote; maker 10 bps = 2, taker 25 bps = 5.
    assert_eq!((trade.quote_amount, trade.maker_fee, trade.taker_fee), (Amount(2_000), Amount(2), Amount(5)));
    let buyer = venue.account(user(1));
    assert_eq!(buyer.balance(quote).available, Amount(1_000_000 - 2_005));
    assert_eq!(buyer.balance(quote).locked, Amount::ZERO);
    assert_eq!(buyer.balance(base).settling, Amount(2_000));
    let seller = venue.account(user(0));
    assert_eq!(seller.balance(base).locked, Amount(1_000));
    assert_eq!(seller.balance(quote).settling, Amount(1_998));
    assert_eq!(venue.fees().collected(quote), Amount(7));
}

#[test]
fn an_amend_the_market_refuses_restores_the_old_lock() {
    let mut venue = funded_venue();
    let quote = venue.spec().quote;
    venue.place(limit(1, 0, Side::Buy, 100, 2, TimeInForce::Gtc), TimestampMs(1));
    let before = venue.account(user(0));
    let out = venue.amend(OrderId(1), user(0), PriceTicks(100), QtyLots(2), TimestampMs(2));
    assert!(matches!(out.events(), [MarketEvent::Rejected { reason: RejectReason::AmendNoChange, .. }]));
    assert_eq!(venue.account(user(0)).balance(quote), before.balance(quote));
    venue.halt(TimestampMs(3));
    let out = venue.amend(OrderId(1), user(0), PriceTicks(99), QtyLots(5), TimestampMs(4));
    assert!(matches!(out.events(), [MarketEvent::Rejected { reason: RejectReason::MarketHalted, .. }]));
    assert_eq!(venue.account(user(0)).balance(quote), before.balance(quote));
    assert_eq!(venue.market().status(), MarketStatus::Halted);
}

/// Found by `every_order_ends_exactly_once` (fixed in 605d971): a cancel arriving at or after
/// a good-till-date order's expiry. The order expires first (every command expires what is
/// due), so the cancel must find nothing to cancel, as an amend in the same position does;
/// it used to yield `Expired` and then `Cancelled`, and a ledger released the lock twice.
#[test]
fn a_due_order_is_not_also_cancelled() {
    let mut market = Market::new(venue::spec());
    let mut events = Vec::new();
    market.execute(
        MarketCommand::Place(limit(1, 0, Side::Buy, 100, 1, TimeInForce::Gtd(TimestampMs(10)))),
        TimestampMs(1),
        &mut events,
    );
    events.clear();
    market.execute(MarketCommand::Cancel { order: OrderId(1), user: user(0) }, TimestampMs(10), &mut events);
    assert_eq!(
        events,
        vec![
            MarketEvent::Expired { order: OrderId(1), remaining: QtyLots(1), reason: ExpireReason::GoodTillDate },
            MarketEvent::Rejected { order: OrderId(1), reason: RejectReason::UnknownOrder },
        ]
    );
}
