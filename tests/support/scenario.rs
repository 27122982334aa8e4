//! Given / when / then for a market. A scenario builds a [`Market`] from one fixed spec,
//! brings it to a state with the `given` commands or events, decides the `when` command and
//! asserts the decided events equal `then` exactly. Every scenario also checks what must hold
//! after any command, so each case only has to state what is special about it:
//!
//! - the events decided also apply, and the book is not crossed afterwards;
//! - no trade has the same user on both sides;
//! - a command answered only by rejections leaves the market exactly as it was;
//! - replaying the whole event log into a fresh market rebuilds the same state.
//!
//! Amounts in expected trades are computed here from the spec's numbers with plain integer
//! arithmetic, independently of the crate's own `notional` and `fee_on`.

// Each test binary uses a different part of this module.
#![allow(dead_code, unused_macros)]

use std::ops::ControlFlow;

use hob::domain::{
    Amount, AssetId, Bps, CancelReason, ExpireReason, LevelSummary, Market, MarketCommand, MarketEvent, MarketId,
    MarketSpec, MarketStatus, NewOrder, OrderId, OrderType, PriceTicks, QtyLots, RejectReason, RestingOrder, Side,
    StpMode, TimeInForce, TimestampMs, Trade, TradeId, UserId,
};

/// The time every command is decided at unless a case says otherwise.
pub const NOW: TimestampMs = TimestampMs(1_000);

pub const BASE_LOT: u128 = 1_000;
pub const QUOTE_TICK: u128 = 10;
pub const MAKER_BPS: u128 = 10;
pub const TAKER_BPS: u128 = 20;
/// Quote units: a price of 50 ticks times 1 lot is the smallest order (50 * 1 * 10 = 500).
pub const MIN_NOTIONAL: u128 = 500;

pub const ALICE: UserId = UserId([0xA1; 20]);
pub const BOB: UserId = UserId([0xB0; 20]);
pub const CAROL: UserId = UserId([0xC0; 20]);
pub const DAVE: UserId = UserId([0xD0; 20]);

/// The market every scenario trades on: nonzero, different maker and taker fees so that
/// every expected trade pins both.
pub fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("BTC-USDT").unwrap(),
        base: base(),
        quote: quote(),
        base_lot: Amount(BASE_LOT),
        quote_tick: Amount(QUOTE_TICK),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000_000),
        min_notional: Amount(MIN_NOTIONAL),
        maker_fee: Bps(MAKER_BPS as u16),
        taker_fee: Bps(TAKER_BPS as u16),
    }
}

pub fn base() -> AssetId {
    AssetId::new("BTC").unwrap()
}

pub fn quote() -> AssetId {
    AssetId::new("USDT").unwrap()
}

// ---------------------------------------------------------------------------------------
// Orders and commands

fn order(id: u64, user: UserId, side: Side, order_type: OrderType, qty: u64) -> NewOrder {
    NewOrder {
        id: OrderId(id),
        user,
        side,
        order_type,
        qty: QtyLots(qty),
        tif: TimeInForce::Gtc,
        post_only: false,
        stp: StpMode::ExpireMaker,
    }
}

/// A GTC limit buy of `qty` lots at `price` ticks.
pub fn buy(id: u64, user: UserId, price: u64, qty: u64) -> NewOrder {
    order(id, user, Side::Buy, OrderType::Limit { price: PriceTicks(price) }, qty)
}

/// A GTC limit sell of `qty` lots at `price` ticks.
pub fn sell(id: u64, user: UserId, price: u64, qty: u64) -> NewOrder {
    order(id, user, Side::Sell, OrderType::Limit { price: PriceTicks(price) }, qty)
}

pub fn market_buy(id: u64, user: UserId, qty: u64, worst: Option<u64>) -> NewOrder {
    order(id, user, Side::Buy, OrderType::Market { worst_price: worst.map(PriceTicks) }, qty)
}

pub fn market_sell(id: u64, user: UserId, qty: u64, worst: Option<u64>) -> NewOrder {
    order(id, user, Side::Sell, OrderType::Market { worst_price: worst.map(PriceTicks) }, qty)
}

/// Variations on an order, chained after `buy`/`sell`/`market_*`.
pub trait OrderBuilder {
    fn ioc(self) -> NewOrder;
    fn fok(self) -> NewOrder;
    fn gtd(self, expiry_ms: u64) -> NewOrder;
    fn post_only(self) -> NewOrder;
    fn stp(self, mode: StpMode) -> NewOrder;
}

impl OrderBuilder for NewOrder {
    fn ioc(self) -> NewOrder {
        NewOrder { tif: TimeInForce::Ioc, ..self }
    }
    fn fok(self) -> NewOrder {
        NewOrder { tif: TimeInForce::Fok, ..self }
    }
    fn gtd(self, expiry_ms: u64) -> NewOrder {
        NewOrder { tif: TimeInForce::Gtd(TimestampMs(expiry_ms)), ..self }
    }
    fn post_only(self) -> NewOrder {
        NewOrder { post_only: true, ..self }
    }
    fn stp(self, mode: StpMode) -> NewOrder {
        NewOrder { stp: mode, ..self }
    }
}

/// Anything that names an order: a [`NewOrder`] or a bare id.
pub trait OrderRef {
    fn order_id(&self) -> OrderId;
}

impl OrderRef for NewOrder {
    fn order_id(&self) -> OrderId {
        self.id
    }
}

impl OrderRef for u64 {
    fn order_id(&self) -> OrderId {
        OrderId(*self)
    }
}

pub fn place(order: NewOrder) -> MarketCommand {
    MarketCommand::Place(order)
}

pub fn cancel(order: impl OrderRef, user: UserId) -> MarketCommand {
    MarketCommand::Cancel { order: order.order_id(), user }
}

pub fn amend(order: impl OrderRef, user: UserId, price: u64, qty: u64) -> MarketCommand {
    MarketCommand::Amend { order: order.order_id(), user, price: PriceTicks(price), qty: QtyLots(qty) }
}

// ---------------------------------------------------------------------------------------
// Expected events

pub fn accepted(order: NewOrder) -> MarketEvent {
    MarketEvent::Accepted(order)
}

/// The order's remainder of `qty` lots rests at its limit price, on its own terms.
pub fn rested(order: NewOrder, qty: u64) -> MarketEvent {
    let OrderType::Limit { price } = order.order_type else { panic!("only a limit order rests: {order:?}") };
    rested_at(order, price.0, qty)
}

/// As [`rested`], at `price` (an amended order rests at its new price).
pub fn rested_at(order: NewOrder, price: u64, qty: u64) -> MarketEvent {
    MarketEvent::Rested {
        order: order.id,
        user: order.user,
        side: order.side,
        price: PriceTicks(price),
        qty: QtyLots(qty),
        expiry: order.expiry(),
        post_only: order.post_only,
        stp: order.stp,
    }
}

/// Trade number `id` of `qty` lots at `price` between a resting `maker` and an incoming
/// `taker`, with amounts and fees from the spec's numbers, fees rounded down.
pub fn trade(id: u64, maker: NewOrder, taker: NewOrder, price: u64, qty: u64) -> Trade {
    let quote_amount = price as u128 * qty as u128 * QUOTE_TICK;
    Trade {
        id: TradeId(id),
        maker_order: maker.id,
        maker_user: maker.user,
        taker_order: taker.id,
        taker_user: taker.user,
        taker_side: taker.side,
        price: PriceTicks(price),
        qty: QtyLots(qty),
        base_amount: Amount(qty as u128 * BASE_LOT),
        quote_amount: Amount(quote_amount),
        maker_fee: Amount(quote_amount * MAKER_BPS / 10_000),
        taker_fee: Amount(quote_amount * TAKER_BPS / 10_000),
    }
}

pub fn traded(id: u64, maker: NewOrder, taker: NewOrder, price: u64, qty: u64) -> MarketEvent {
    MarketEvent::Traded(trade(id, maker, taker, price, qty))
}

pub fn filled(order: impl OrderRef) -> MarketEvent {
    MarketEvent::Filled { order: order.order_id() }
}

pub fn expired(order: impl OrderRef, remaining: u64, reason: ExpireReason) -> MarketEvent {
    MarketEvent::Expired { order: order.order_id(), remaining: QtyLots(remaining), reason }
}

pub fn cancelled(order: impl OrderRef, remaining: u64, reason: CancelReason) -> MarketEvent {
    MarketEvent::Cancelled { order: order.order_id(), remaining: QtyLots(remaining), reason }
}

pub fn amended(order: impl OrderRef, price: u64, qty: u64, keeps_priority: bool) -> MarketEvent {
    MarketEvent::Amended { order: order.order_id(), price: PriceTicks(price), qty: QtyLots(qty), keeps_priority }
}

pub fn rejected(order: impl OrderRef, reason: RejectReason) -> MarketEvent {
    MarketEvent::Rejected { order: order.order_id(), reason }
}

// ---------------------------------------------------------------------------------------
// Given, when

/// One step that brings the market to the state a case starts from.
#[derive(Clone, Debug)]
pub enum Given {
    /// A command decided and applied at [`NOW`].
    Command(MarketCommand),
    /// A command decided and applied at the given time.
    CommandAt(TimestampMs, MarketCommand),
    /// An event applied as it is, as when replaying a stored stream.
    Event(MarketEvent),
}

impl From<MarketCommand> for Given {
    fn from(c: MarketCommand) -> Given {
        Given::Command(c)
    }
}

impl From<NewOrder> for Given {
    fn from(o: NewOrder) -> Given {
        Given::Command(MarketCommand::Place(o))
    }
}

impl From<MarketEvent> for Given {
    fn from(e: MarketEvent) -> Given {
        Given::Event(e)
    }
}

impl From<Timed> for Given {
    fn from(t: Timed) -> Given {
        Given::CommandAt(t.now, t.command)
    }
}

/// A command and the time it is decided at.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    pub now: TimestampMs,
    pub command: MarketCommand,
}

/// `command` at time `now_ms`, for a `given` or a `when`.
pub fn at(now_ms: u64, command: impl Into<Timed>) -> Timed {
    Timed { now: TimestampMs(now_ms), ..command.into() }
}

impl From<MarketCommand> for Timed {
    fn from(command: MarketCommand) -> Timed {
        Timed { now: NOW, command }
    }
}

impl From<NewOrder> for Timed {
    fn from(o: NewOrder) -> Timed {
        Timed { now: NOW, command: MarketCommand::Place(o) }
    }
}

/// A `given` for a case that starts from a fresh market.
pub const EMPTY_MARKET: &[Given] = &[];

/// A `given` of mixed steps: orders, commands, timed commands and events, in order.
macro_rules! given {
    ($($step:expr),* $(,)?) => { [$($crate::scenario::Given::from($step)),*] };
}

// ---------------------------------------------------------------------------------------
// The check

/// Everything observable about a market's state, for before/after and live/replay equality.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub status: MarketStatus,
    pub next_trade: TradeId,
    pub bid_depth: Vec<LevelSummary>,
    pub ask_depth: Vec<LevelSummary>,
    /// Every resting order, best first, earliest first within a level.
    pub bids: Vec<RestingOrder>,
    pub asks: Vec<RestingOrder>,
}

pub fn snapshot(market: &Market) -> Snapshot {
    Snapshot {
        status: market.status(),
        next_trade: market.next_trade_id(),
        bid_depth: market.book().depth(Side::Buy, usize::MAX),
        ask_depth: market.book().depth(Side::Sell, usize::MAX),
        bids: resting(market, Side::Buy),
        asks: resting(market, Side::Sell),
    }
}

/// A side's resting orders in matching order.
pub fn resting(market: &Market, side: Side) -> Vec<RestingOrder> {
    let mut out = vec![];
    market.book().walk::<()>(side, |o| {
        out.push(o);
        ControlFlow::Continue(())
    });
    out
}

/// A side's resting order ids in matching order.
pub fn queue(market: &Market, side: Side) -> Vec<u64> {
    resting(market, side).iter().map(|o| o.id.0).collect()
}

/// The market after `given`, with the event log that produced it.
pub fn arrange<G: Clone + Into<Given>>(spec: &MarketSpec, given: &[G]) -> (Market, Vec<MarketEvent>) {
    let mut market = Market::new(spec.clone());
    let mut log = vec![];
    for step in given {
        let start = log.len();
        let step: Given = step.clone().into();
        match &step {
            Given::Command(command) => market.execute(*command, NOW, &mut log),
            Given::CommandAt(now, command) => market.execute(*command, *now, &mut log),
            Given::Event(event) => {
                market.apply(event).unwrap_or_else(|e| panic!("given event {event:?} does not apply: {e}"));
                log.push(event.clone());
            }
        }
        // A rejected given is a mistake in the case: it would silently start elsewhere.
        if let Some(r) = log[start..].iter().find(|e| matches!(e, MarketEvent::Rejected { .. })) {
            panic!("given {step:?} was rejected: {r:?}");
        }
    }
    (market, log)
}

/// Given `given`, when `when` is decided, then exactly `then` is produced. Returns the market
/// with those events applied, for cases that go on to inspect the book.
pub fn check<G: Clone + Into<Given>>(given: &[G], when: impl Into<Timed>, then: &[MarketEvent]) -> Market {
    check_on(&spec(), given, when, then)
}

/// As [`check`], on a market with another spec (for bounds the usual one cannot reach).
pub fn check_on<G: Clone + Into<Given>>(
    spec: &MarketSpec,
    given: &[G],
    when: impl Into<Timed>,
    then: &[MarketEvent],
) -> Market {
    let (mut market, mut log) = arrange(spec, given);
    let Timed { now, command } = when.into();
    let before = snapshot(&market);

    let mut decided = vec![];
    market.decide(command, now, &mut decided);
    assert_eq!(decided, then, "\nwhen {command:?} at {now:?}");
    assert_eq!(snapshot(&market), before, "decide must not change the market");

    for event in &decided {
        market.apply(event).unwrap_or_else(|e| panic!("decided event {event:?} does not apply: {e}"));
    }
    assert_invariants(&market, &decided);
    if decided.iter().all(|e| matches!(e, MarketEvent::Rejected { .. })) {
        assert_eq!(snapshot(&market), before, "a rejected command changes nothing");
    }

    log.extend(decided);
    let mut replayed = Market::new(spec.clone());
    for event in &log {
        replayed.apply(event).unwrap_or_else(|e| panic!("replaying {event:?}: {e}"));
    }
    assert_eq!(snapshot(&replayed), snapshot(&market), "replaying the event log rebuilds the market");
    market
}

/// What holds after every command, whatever it was.
pub fn assert_invariants(market: &Market, events: &[MarketEvent]) {
    assert!(!market.book().is_crossed(), "book crossed after {events:?}");
    for event in events {
        if let MarketEvent::Traded(t) = event {
            assert_ne!(t.maker_user, t.taker_user, "self-trade: {t:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scripts

/// A small deterministic generator (64-bit LCG): the same seed always gives the same script.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A mixed script of every command kind at advancing times. Cancels and amends mostly aim
/// at orders on the book, so the script is written against a market it runs as it goes.
pub fn script(seed: u64, len: usize) -> Vec<Timed> {
    let mut rng = Lcg(seed);
    let users = [ALICE, BOB, CAROL, DAVE];
    let stps = [StpMode::ExpireMaker, StpMode::ExpireTaker, StpMode::ExpireBoth];
    let mut market = Market::new(spec());
    let mut events = vec![];
    let mut now = NOW.0;
    let mut next_id = 1;
    let mut out = vec![];
    for _ in 0..len {
        now += rng.below(40);
        let user = users[rng.below(4) as usize];
        let side_buy = rng.below(2) == 0;
        let price = 95 + rng.below(11);
        let qty = 1 + rng.below(10);
        let limit = if side_buy { buy(next_id, user, price, qty) } else { sell(next_id, user, price, qty) };
        let limit = limit.stp(stps[rng.below(3) as usize]);
        // A resting order and its owner most of the time; otherwise any id and any user.
        let book = [resting(&market, Side::Buy), resting(&market, Side::Sell)].concat();
        let target = match (rng.below(5), book.is_empty()) {
            (0, _) | (_, true) => None,
            _ => Some(book[rng.below(book.len() as u64) as usize]),
        };
        let (some_id, some_user) = target.map_or((1 + rng.below(next_id), user), |o| (o.id.0, o.user));
        let command = match rng.below(100) {
            0..=39 => place(limit),
            40..=49 => place(limit.ioc()),
            50..=54 => place(limit.fok()),
            55..=64 => place(limit.gtd(now + 1 + rng.below(400))),
            65..=69 => place(limit.post_only()),
            70..=74 => {
                let worst = (rng.below(2) == 0).then_some(price);
                if side_buy {
                    place(market_buy(next_id, user, qty, worst))
                } else {
                    place(market_sell(next_id, user, qty, worst))
                }
            }
            75..=84 => cancel(some_id, some_user),
            85..=94 => match (target, rng.below(3)) {
                (Some(o), 0) => amend(some_id, some_user, o.price.0, rng.below(o.qty.0 + 1)),
                _ => amend(some_id, some_user, price, rng.below(12)),
            },
            95..=97 => MarketCommand::ExpireDue,
            98 => MarketCommand::Halt,
            _ => MarketCommand::Resume,
        };
        if matches!(command, MarketCommand::Place(_)) {
            next_id += 1;
        }
        market.execute(command, TimestampMs(now), &mut events);
        out.push(at(now, command));
    }
    out
}
