//! Adapters that drive peer order-book crates with the same [`Op`] stream
//! as hob. See `PEERS.md` next to this file for the APIs and data
//! structures behind each adapter.
//!
//! Common conventions:
//! * Every op is really executed by the peer, including matching, and the
//!   fills the peer reports back are consumed (summed into
//!   `traded_volume`), as an exchange would have to.
//! * Cancels of ids that are no longer resting are forwarded to the peer
//!   anyway (it pays its own lookup) and are no-ops.
//! * `Move` of an id that is no longer resting is a no-op (no new order).
//! * None of the peers gets self-trade prevention: matchcore and lobster
//!   have no owner field at all; orderbook-rs receives the user but its STP
//!   is off by default and left off.

#![allow(dead_code)]

use super::workload::*;

pub trait BenchBook {
    fn name(&self) -> &'static str;
    /// Really perform `op` in the peer book (matching where the peer matches).
    fn apply(&mut self, op: &Op);
    /// Number of resting orders (exact for all adapters here; O(n) for
    /// orderbook-rs, so keep it out of timed loops).
    fn resting_orders(&self) -> usize;
    /// Total quantity traded so far, as reported back by the peer
    /// (0 if an implementation does not track it).
    fn traded_volume(&self) -> u64 {
        0
    }
}

/// Dense `u64 id -> T` map: workload ids are small, unique and increasing
/// from 1, so a growable `Vec` indexed by id is the fastest possible map.
#[derive(Clone, Debug)]
struct DenseMap<T: Copy> {
    v: Vec<T>,
    none: T,
}

impl<T: Copy> DenseMap<T> {
    fn new(none: T) -> Self {
        DenseMap { v: Vec::with_capacity(1 << 16), none }
    }

    #[inline]
    fn get(&self, id: u64) -> T {
        match self.v.get(id as usize) {
            Some(x) => *x,
            None => self.none,
        }
    }

    #[inline]
    fn set(&mut self, id: u64, x: T) {
        let i = id as usize;
        if i >= self.v.len() {
            let new_len = (i + 1).max(self.v.len() * 2);
            self.v.resize(new_len, self.none);
        }
        self.v[i] = x;
    }
}

// ---------------------------------------------------------------------------
// Reference model (workload.rs), handy as a baseline / oracle.
// ---------------------------------------------------------------------------

impl BenchBook for RefBook {
    fn name(&self) -> &'static str {
        "reference"
    }
    fn apply(&mut self, op: &Op) {
        RefBook::apply(self, op)
    }
    fn resting_orders(&self) -> usize {
        RefBook::resting_orders(self)
    }
    fn traded_volume(&self) -> u64 {
        RefBook::traded_volume(self)
    }
}

// ---------------------------------------------------------------------------
// matchcore 0.4
// ---------------------------------------------------------------------------

/// [matchcore](https://crates.io/crates/matchcore) 0.4: single-threaded
/// command -> outcome state machine.
///
/// * Limit / IOC: `CommandKind::Submit` of a `LimitOrder` with
///   `TimeInForce::Gtc` / `TimeInForce::Ioc` (native IOC).
/// * Cancel: `CommandKind::Cancel { order_kind: Limit }`.
/// * Move: native `CommandKind::Amend` with a `LimitOrderPatch` setting
///   price and quantity. A price change loses time priority and re-matches,
///   i.e. the same as cancel + new order; the generator always changes the
///   price. (A same-price amend that lowers quantity would keep priority —
///   never generated.) Amend keeps matchcore's order id, so `new_id` is
///   mapped to the old matchcore id.
/// * matchcore assigns the order id itself (= the submit's sequence
///   number, which must be consecutive per command), so we keep a dense
///   `our id -> OrderId` map (the side is packed into the top bit).
///
/// **matchcore 0.4.0 bug (trade-through):** once a limit order crosses at
/// all, submit and amend call `match_order(.., limit_price: None, ..)`, so
/// the order sweeps *past its limit price* like a market order (e.g. a buy
/// 20 @ 100 against asks 10 @ 100 and 10 @ 105 fills both). `new()` guards
/// against this: before a crossing submit/amend it sums the resting
/// quantity within the limit (public `limit().asks()/bids()/levels()`),
/// and if that is less than the order quantity it sends an IOC for exactly
/// that quantity and then (GTC only) a second, now non-crossing, GTC for the
/// remainder (a Move in that situation becomes Cancel + those submits).
/// That makes matchcore's book track the reference model exactly, at the
/// price of a best-opposite-price lookup per order plus, rarely, an extra
/// command. `new_unguarded()` sends the plain commands (buggy semantics,
/// book state diverges from the other peers).
pub struct MatchcoreBook {
    book: matchcore::OrderBook,
    seq: u64,
    /// our id -> matchcore OrderId | (SELL_BIT if sell); MC_NONE if never placed.
    ids: DenseMap<u64>,
    volume: u64,
    guard: bool,
}

const MC_NONE: u64 = u64::MAX;
const MC_SELL_BIT: u64 = 1 << 63;

impl MatchcoreBook {
    /// Guarded against the trade-through bug (see type docs).
    pub fn new() -> Self {
        MatchcoreBook {
            book: matchcore::OrderBook::new("BENCH"),
            seq: 0,
            ids: DenseMap::new(MC_NONE),
            volume: 0,
            guard: true,
        }
    }

    /// Plain native commands only (matchcore 0.4.0 trade-through semantics).
    pub fn new_unguarded() -> Self {
        MatchcoreBook { guard: false, ..Self::new() }
    }

    #[inline]
    fn side(s: BenchSide) -> matchcore::Side {
        match s {
            BenchSide::Buy => matchcore::Side::Buy,
            BenchSide::Sell => matchcore::Side::Sell,
        }
    }

    #[inline]
    fn pack(oid: u64, side: BenchSide) -> u64 {
        match side {
            BenchSide::Buy => oid,
            BenchSide::Sell => oid | MC_SELL_BIT,
        }
    }

    /// Execute one command; returns (its sequence number = new order id, applied?).
    #[inline]
    fn exec(&mut self, kind: matchcore::CommandKind) -> (u64, bool) {
        use matchcore::*;
        let seq = self.seq;
        self.seq += 1;
        let cmd =
            Command { meta: CommandMeta { sequence_number: SequenceNumber(seq), timestamp: Timestamp(seq) }, kind };
        let outcome = self.book.execute(&cmd);
        let applied = match &outcome {
            CommandOutcome::Applied(CommandReport::Submit(eff))
            | CommandOutcome::Applied(CommandReport::Amend(eff)) => {
                if let Some(m) = eff.target_order().match_result() {
                    self.volume += m.executed_quantity().0;
                }
                true
            }
            CommandOutcome::Applied(CommandReport::Cancel) => true,
            CommandOutcome::Rejected(_) => false,
        };
        (seq, applied)
    }

    #[inline]
    fn submit(&mut self, side: BenchSide, price: u64, qty: u64, tif: matchcore::TimeInForce) -> u64 {
        use matchcore::*;
        let order = LimitOrder::new(
            Price(price),
            QuantityPolicy::Standard { quantity: Quantity(qty) },
            OrderFlags::new(Self::side(side), false, tif),
        );
        self.exec(CommandKind::Submit(SubmitCmd { order: NewOrder::Limit(order) })).0
    }

    /// Resting quantity an order (side, limit price) can take without
    /// trading through its limit, capped at `want`.
    #[inline]
    fn executable_within(&self, side: BenchSide, limit: u64, want: u64) -> u64 {
        let lb = self.book.limit();
        let levels = lb.levels();
        let mut got = 0;
        match side {
            BenchSide::Buy => {
                for (p, lid) in lb.asks() {
                    if p.0 > limit {
                        break;
                    }
                    got += levels[*lid].total_quantity().0;
                    if got >= want {
                        return want;
                    }
                }
            }
            BenchSide::Sell => {
                for (p, lid) in lb.bids().iter().rev() {
                    if p.0 < limit {
                        break;
                    }
                    got += levels[*lid].total_quantity().0;
                    if got >= want {
                        return want;
                    }
                }
            }
        }
        got
    }

    /// Place a limit order (GTC if `id` is Some, else IOC), splitting it
    /// when guarded and matchcore would trade through the limit.
    #[inline]
    fn place(&mut self, id: Option<u64>, side: BenchSide, price: u64, qty: u64) {
        use matchcore::TimeInForce;
        if self.guard {
            let avail = self.executable_within(side, price, qty);
            if avail > 0 && avail < qty {
                self.submit(side, price, avail, TimeInForce::Ioc);
                if let Some(id) = id {
                    let oid = self.submit(side, price, qty - avail, TimeInForce::Gtc);
                    self.ids.set(id, Self::pack(oid, side));
                }
                return;
            }
        }
        match id {
            Some(id) => {
                let oid = self.submit(side, price, qty, TimeInForce::Gtc);
                self.ids.set(id, Self::pack(oid, side));
            }
            None => {
                self.submit(side, price, qty, TimeInForce::Ioc);
            }
        }
    }
}

impl Default for MatchcoreBook {
    fn default() -> Self {
        Self::new()
    }
}

impl BenchBook for MatchcoreBook {
    fn name(&self) -> &'static str {
        if self.guard {
            "matchcore"
        } else {
            "matchcore-raw"
        }
    }

    fn apply(&mut self, op: &Op) {
        use matchcore::*;
        match *op {
            Op::Limit { id, side, price, qty, .. } => self.place(Some(id), side, price, qty),
            Op::Ioc { side, price, qty, .. } => self.place(None, side, price, qty),
            Op::Cancel { id } => {
                let packed = self.ids.get(id);
                if packed != MC_NONE {
                    let order_id = OrderId(packed & !MC_SELL_BIT);
                    self.exec(CommandKind::Cancel(CancelCmd { order_id, order_kind: OrderKind::Limit }));
                }
            }
            Op::Move { id, new_id, price, qty } => {
                let packed = self.ids.get(id);
                if packed == MC_NONE {
                    return;
                }
                let order_id = OrderId(packed & !MC_SELL_BIT);
                let side = if packed & MC_SELL_BIT != 0 { BenchSide::Sell } else { BenchSide::Buy };
                if self.guard {
                    let avail = self.executable_within(side, price, qty);
                    if avail > 0 && avail < qty {
                        let (_, live) =
                            self.exec(CommandKind::Cancel(CancelCmd { order_id, order_kind: OrderKind::Limit }));
                        if live {
                            self.place(Some(new_id), side, price, qty);
                        }
                        return;
                    }
                }
                let patch = LimitOrderPatch::new()
                    .with_price(Price(price))
                    .with_quantity_policy(QuantityPolicy::Standard { quantity: Quantity(qty) });
                let (_, applied) =
                    self.exec(CommandKind::Amend(AmendCmd { order_id, patch: AmendPatch::Limit(patch) }));
                if applied {
                    self.ids.set(new_id, packed);
                }
            }
        }
    }

    fn resting_orders(&self) -> usize {
        self.book.limit().orders().len()
    }

    fn traded_volume(&self) -> u64 {
        self.volume
    }
}

// ---------------------------------------------------------------------------
// lobster 0.7
// ---------------------------------------------------------------------------

/// [lobster](https://crates.io/crates/lobster) 0.7: single-threaded
/// `OrderBook::execute(OrderType) -> OrderEvent`.
///
/// * Limit: `OrderType::Limit` (u128 id = our id).
/// * IOC: lobster has no IOC (its `Market` order has no price limit), so we
///   emulate it with `OrderType::Limit` followed by `OrderType::Cancel` of
///   the same id when the event says a remainder rested (`Placed` /
///   `PartiallyFilled`). Nothing can interleave, so the semantics are exact;
///   the cost includes lobster's cancel.
/// * Cancel: `OrderType::Cancel`. Lobster always answers `Canceled`, even
///   for unknown ids.
/// * Move: no native replace: `Cancel` + `Limit` with `new_id`. Lobster
///   cannot tell us an order's side, so the adapter keeps a dense per-id
///   state byte (resting bid / resting ask / not resting) maintained from
///   the returned events (`FillMetadata::total_fill` marks a maker gone).
///   The same state gives an exact `resting_orders`.
/// * Known lobster behaviour: fully filled makers are dropped from the
///   price queue but stay in its id -> arena-slot map until cancelled, and
///   emptied price levels are never removed from its `BTreeMap`s.
pub struct LobsterBook {
    book: lobster::OrderBook,
    state: DenseMap<u8>,
    resting: usize,
    volume: u64,
}

const LOB_DEAD: u8 = 0;
const LOB_BID: u8 = 1;
const LOB_ASK: u8 = 2;

impl LobsterBook {
    pub fn new() -> Self {
        LobsterBook { book: lobster::OrderBook::default(), state: DenseMap::new(LOB_DEAD), resting: 0, volume: 0 }
    }

    #[inline]
    fn on_fills(&mut self, filled_qty: u64, fills: &[lobster::FillMetadata]) {
        self.volume += filled_qty;
        for f in fills {
            if f.total_fill {
                self.state.set(f.order_2 as u64, LOB_DEAD);
                self.resting -= 1;
            }
        }
    }

    /// Submit a limit order; returns true if a remainder rests.
    #[inline]
    fn limit(&mut self, id: u64, side: BenchSide, price: u64, qty: u64) -> bool {
        use lobster::{OrderEvent, OrderType, Side};
        let lside = match side {
            BenchSide::Buy => Side::Bid,
            BenchSide::Sell => Side::Ask,
        };
        match self.book.execute(OrderType::Limit { id: id as u128, side: lside, qty, price }) {
            OrderEvent::Placed { .. } => true,
            OrderEvent::PartiallyFilled { filled_qty, fills, .. } => {
                self.on_fills(filled_qty, &fills);
                true
            }
            OrderEvent::Filled { filled_qty, fills, .. } => {
                self.on_fills(filled_qty, &fills);
                false
            }
            _ => false,
        }
    }

    #[inline]
    fn place_gtc(&mut self, id: u64, side: BenchSide, price: u64, qty: u64) {
        if self.limit(id, side, price, qty) {
            let st = match side {
                BenchSide::Buy => LOB_BID,
                BenchSide::Sell => LOB_ASK,
            };
            self.state.set(id, st);
            self.resting += 1;
        }
    }

    /// Cancel in lobster; returns the side if the order was resting.
    #[inline]
    fn cancel(&mut self, id: u64) -> Option<BenchSide> {
        self.book.execute(lobster::OrderType::Cancel { id: id as u128 });
        let side = match self.state.get(id) {
            LOB_BID => BenchSide::Buy,
            LOB_ASK => BenchSide::Sell,
            _ => return None,
        };
        self.state.set(id, LOB_DEAD);
        self.resting -= 1;
        Some(side)
    }
}

impl Default for LobsterBook {
    fn default() -> Self {
        Self::new()
    }
}

impl BenchBook for LobsterBook {
    fn name(&self) -> &'static str {
        "lobster"
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Limit { id, side, price, qty, .. } => self.place_gtc(id, side, price, qty),
            Op::Ioc { id, side, price, qty, .. } => {
                if self.limit(id, side, price, qty) {
                    self.book.execute(lobster::OrderType::Cancel { id: id as u128 });
                }
            }
            Op::Cancel { id } => {
                self.cancel(id);
            }
            Op::Move { id, new_id, price, qty } => {
                if let Some(side) = self.cancel(id) {
                    self.place_gtc(new_id, side, price, qty);
                }
            }
        }
    }

    fn resting_orders(&self) -> usize {
        self.resting
    }

    fn traded_volume(&self) -> u64 {
        self.volume
    }
}

// ---------------------------------------------------------------------------
// orderbook-rs 0.15
// ---------------------------------------------------------------------------

/// [orderbook-rs](https://crates.io/crates/orderbook-rs) 0.15 (lib
/// `orderbook_rs`): concurrent (`&self`) book built on crossbeam
/// `SkipMap` price maps, `DashMap` id index and lock-free price levels.
///
/// * Limit / IOC: `add_limit_order_with_user_and_result` with
///   `TimeInForce::Gtc` / `TimeInForce::Ioc` (native IOC), id
///   `Id::Sequential(our id)`, user as a 32-byte `Hash32` (STP stays off).
///   The `_and_result` variant hands the fills back to the caller (as the
///   other peers do); an IOC with an unfilled remainder returns
///   `Err(InsufficientLiquidity { available = filled, .. })` instead.
/// * Cancel: `cancel_order(Id)`.
/// * Move: `cancel_order` + `add_limit_order_with_user_and_result(new_id)`
///   with the side and user taken from the cancelled order. orderbook-rs
///   does have a native replace, `update_order(OrderUpdate::
///   UpdatePriceAndQuantity { .. })`, which internally is the same
///   cancel-then-re-add (keeping the old id) plus extra validation, but
///   `OrderUpdate` lives in the `pricelevel` crate, which orderbook-rs does
///   not re-export and hob does not depend on.
/// * Uses `OrderBook::new`, i.e. the default `MonotonicClock` (wall-clock
///   read per order) and UUID trade ids, as a normal user would.
pub struct OrderbookRsBook {
    book: orderbook_rs::OrderBook<()>,
    volume: u64,
}

impl OrderbookRsBook {
    pub fn new() -> Self {
        OrderbookRsBook { book: orderbook_rs::OrderBook::new("BENCH"), volume: 0 }
    }

    #[inline]
    fn user_bytes(user: u64) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&user.to_le_bytes());
        b
    }

    #[inline]
    fn side(s: BenchSide) -> orderbook_rs::Side {
        match s {
            BenchSide::Buy => orderbook_rs::Side::Buy,
            BenchSide::Sell => orderbook_rs::Side::Sell,
        }
    }

    /// `user` is converted into pricelevel's `Hash32` (`From<[u8; 32]>`);
    /// that type is not re-exported by orderbook-rs.
    #[inline]
    fn add(
        &mut self,
        id: u64,
        side: orderbook_rs::Side,
        user: [u8; 32],
        price: u64,
        qty: u64,
        tif: orderbook_rs::TimeInForce,
    ) {
        let res = self.book.add_limit_order_with_user_and_result(
            orderbook_rs::Id::Sequential(id),
            price as u128,
            qty,
            side,
            tif,
            user.into(),
            None,
        );
        match res {
            Ok((_, Some(tr))) => {
                if let Ok(q) = tr.match_result.executed_quantity() {
                    self.volume += q.as_u64();
                }
            }
            Ok((_, None)) => {}
            Err(orderbook_rs::OrderBookError::InsufficientLiquidity { available, .. }) => self.volume += available,
            Err(_) => {}
        }
    }
}

impl Default for OrderbookRsBook {
    fn default() -> Self {
        Self::new()
    }
}

impl BenchBook for OrderbookRsBook {
    fn name(&self) -> &'static str {
        "orderbook-rs"
    }

    fn apply(&mut self, op: &Op) {
        use orderbook_rs::{Id, TimeInForce};
        match *op {
            Op::Limit { id, user, side, price, qty } => {
                self.add(id, Self::side(side), Self::user_bytes(user), price, qty, TimeInForce::Gtc)
            }
            Op::Ioc { id, user, side, price, qty } => {
                self.add(id, Self::side(side), Self::user_bytes(user), price, qty, TimeInForce::Ioc)
            }
            Op::Cancel { id } => {
                let _ = self.book.cancel_order(Id::Sequential(id));
            }
            Op::Move { id, new_id, price, qty } => {
                if let Ok(Some(old)) = self.book.cancel_order(Id::Sequential(id)) {
                    let user = *old.user_id().as_bytes();
                    self.add(new_id, old.side(), user, price, qty, TimeInForce::Gtc);
                }
            }
        }
    }

    /// O(resting orders): copies orderbook-rs's id -> location index.
    fn resting_orders(&self) -> usize {
        self.book.get_order_locations_arc().len()
    }

    fn traded_volume(&self) -> u64 {
        self.volume
    }
}
